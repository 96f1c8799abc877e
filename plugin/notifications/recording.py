"""A test hook for hosts and for the plugin's own tests: record the messages the worker sends.

Flask-Mail's ``record_messages()`` lives on the ``Mail`` object, which the plugin
creates for a host that has none; this is the same hook without needing it.
With ``MAIL_SUPPRESS_SEND`` (Flask-Mail's default when ``TESTING``) nothing
reaches an SMTP server, yet every message is recorded and its row marked sent::

    with record_messages() as sent:
        run_worker(once=True)
    assert "ORD-1" in sent[0].subject
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask_mail import Message, email_dispatched


@contextmanager
def record_messages() -> Iterator[list[Message]]:
    """Collect every ``flask_mail.Message`` dispatched while the block runs (any app, any thread)."""
    sent: list[Message] = []

    def record(_app: Any, message: Message, **_kwargs: Any) -> None:
        sent.append(message)

    with email_dispatched.connected_to(record):
        yield sent

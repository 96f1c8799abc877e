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

    def record(sender: Any, message: Message | None = None, **_kwargs: Any) -> None:
        # Flask-Mail 0.10 sends (app, message=message); 0.9 sends (message, app=app).
        sent.append(message if message is not None else sender)

    with email_dispatched.connected_to(record):
        yield sent

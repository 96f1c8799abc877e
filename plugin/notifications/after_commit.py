"""``SELF_BILLING_MAIL_SEND_AFTER_COMMIT``: try fresh emails right after their transaction commits.

For small installs that run no worker all the time. :func:`~.outbox.enqueue`
notes the rows it adds in ``session.info``; once the transaction commits (never
before: an email must not go out for a change that may still roll back), this
listener hands their ids to :func:`.worker.send_now`, which claims and sends
them through the outbox like the worker does, with its own database session.
If the mail server is down the rows simply stay queued, with a retry time, for
the worker or the next ``worker --once``. A rollback forgets the noted rows.

The listeners are on the app's own Flask-SQLAlchemy session (its ``scoped_session``, as
Flask-SQLAlchemy's own listeners are), never on SQLAlchemy's ``Session`` class: other
sessions of the process are not touched. They cost one dict lookup per commit when
nothing was noted.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from .outbox import PENDING_KEY
from .worker import send_now

log = logging.getLogger(__name__)


def _after_commit(session: Session) -> None:
    rows = session.info.pop(PENDING_KEY, None)
    if not rows or not has_app_context():
        return
    ids = []
    for row in rows:
        identity = inspect(row).identity
        if identity:
            ids.append(identity[0])
    if not ids:
        return
    try:
        report = send_now(ids)
    except Exception:  # noqa: BLE001 - the change is committed; the worker will send the email later
        log.exception("Could not send %d email(s) right after commit; they stay queued for the worker.", len(ids))
        return
    if report.retried or report.failed:
        log.warning("Right after commit: %s", report.summary())


def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def install(sessions: Any) -> None:
    """Listen on ``sessions``, the app's Flask-SQLAlchemy ``db.session`` (idempotent)."""
    for name, fn in (("after_commit", _after_commit), ("after_rollback", _after_rollback)):
        if not event.contains(sessions, name, fn):
            event.listen(sessions, name, fn)

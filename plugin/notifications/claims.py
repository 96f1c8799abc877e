"""Claiming outbox rows for one batch of one worker, and recording each row's outcome under that claim.

A round claims up to ``SELF_BILLING_MAIL_BATCH_SIZE`` due rows in one statement,
``UPDATE ... SET status='sending', claimed_by=<token> WHERE id IN (SELECT ... LIMIT n)
AND <still due>``, and commits before any SMTP traffic:

* on PostgreSQL the inner select has ``FOR UPDATE SKIP LOCKED``, so workers on
  several machines take disjoint batches without waiting for each other;
* on SQLite the statement takes the database's single write lock before it
  reads (an ``UPDATE`` starts a write transaction), and the outer ``<still
  due>`` re-check means a row another worker claimed first is never claimed
  again. Writers queue on ``busy_timeout``.

Each batch has its own token, so the worker reads back exactly the rows it won.
A row left in ``sending`` by a worker that died is due again after
``SELF_BILLING_MAIL_LEASE_SECONDS``. :func:`finish` records an outcome only while
the batch still holds the row; :func:`release` hands rows back unsent and uncounted.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from .models import OutboxEmail

#: The worker's logger, whichever of its modules logs (hosts filter on this one name).
log = logging.getLogger("plugin.notifications.worker")


def _due(now: datetime, lease: timedelta) -> Any:
    T = OutboxEmail
    return or_(
        and_(T.status == "queued", T.next_attempt_at <= now),
        and_(T.status == "sending", T.claimed_at < now - lease),
    )


def new_claim_token() -> str:
    """A token naming one batch of one worker: host, process, thread and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{threading.get_ident() % 100000}:{uuid.uuid4().hex[:12]}"


def claim_batch(session: Session, now: datetime, limit: int, lease: timedelta,
                ids: Iterable[int] | None = None) -> tuple[str, list[OutboxEmail]]:
    """Atomically mark up to ``limit`` due rows ``sending`` for a new token; commit; return them."""
    T = OutboxEmail
    token = new_claim_token()
    due = _due(now, lease)
    inner = select(T.id).where(due).order_by(T.next_attempt_at, T.id).limit(limit)
    if ids is not None:
        inner = inner.where(T.id.in_(list(ids)))
    if session.get_bind().dialect.name == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(T)
        .where(T.id.in_(inner.scalar_subquery()), due)
        .values(status="sending", claimed_by=token, claimed_at=now, attempts=T.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(stmt)
    session.commit()
    rows = session.execute(
        select(T).where(T.claimed_by == token, T.status == "sending").order_by(T.id)
    ).scalars().all()
    return token, list(rows)


_FINISH_STATEMENTS: dict[tuple[str, ...], Any] = {}


def _finish_statement(names: tuple[str, ...]) -> Any:
    """``UPDATE ... SET <names> WHERE id = :row_id AND claimed_by = :token AND status = 'sending'``, built once."""
    stmt = _FINISH_STATEMENTS.get(names)
    if stmt is None:
        T = OutboxEmail.__table__
        stmt = (
            T.update()
            .where(T.c.id == bindparam("row_id"), T.c.claimed_by == bindparam("token"), T.c.status == "sending")
            .values({name: bindparam(f"v_{name}") for name in names})
        )
        _FINISH_STATEMENTS[names] = stmt
    return stmt


def finish(session: Session, row: OutboxEmail, token: str, **values: Any) -> bool:
    """Record an outcome for a row this batch still holds, and commit; False when the claim was lost."""
    values.setdefault("claimed_by", None)
    names = tuple(sorted(values))
    params = {f"v_{name}": values[name] for name in names}
    # Core on the session's connection: one UPDATE and a commit, without the ORM's bookkeeping.
    result = session.connection().execute(_finish_statement(names), dict(params, row_id=row.id, token=token))
    session.commit()
    if result.rowcount != 1:
        log.warning("Email #%s was reclaimed by another worker while this one held it "
                    "(raise SELF_BILLING_MAIL_LEASE_SECONDS).", row.id)
        return False
    return True


def release(session: Session, rows: list[OutboxEmail], token: str) -> int:
    """Hand rows back unsent and uncounted (the batch ran out of time or the worker is stopping).

    Returns how many rows were handed back.
    """
    if not rows:
        return 0
    session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id.in_([r.id for r in rows]), OutboxEmail.claimed_by == token,
               OutboxEmail.status == "sending")
        .values(status="queued", claimed_by=None, claimed_at=None, attempts=OutboxEmail.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return len(rows)

"""``Idempotency-Key`` on every state-changing JSON endpoint: a retried request is answered, not redone.

A client that lost an answer (a timeout, a dropped connection) sends the same request again with
the same ``Idempotency-Key`` header. Within ``SELF_BILLING_IDEMPOTENCY_HOURS`` (24) of the first,
from the same caller (the portal's logged-in lead, the merchant's token, the signed-in agent), the
first answer is replayed, status and body, with ``Idempotent-Replayed: true``, and nothing is done
again. The same key with another method, path or body is 422 ``idempotency_key_reused``; a repeat
that arrives while the first is still running is 409 ``idempotency_key_in_use``. Answers that say
"try again" are not kept (401, 429, 5xx), so a retry after them runs for real.

The key is claimed by inserting its row on its own short transaction before the view runs (the
primary key makes one request the owner, on SQLite and PostgreSQL alike); the answer is written
after it. Keys are stored as SHA-256 of caller and key; ``tick`` deletes expired ones.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy import Integer, String, Text, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, db, utcnow
from ..errors import BillingError, Conflict
from ..tokens import digest_parts

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Answers that mean "try again": never replayed.
_NOT_KEPT = frozenset({401, 429})
_CLAIM = "_self_billing_idempotency_claim"
#: A claim left unanswered this long belongs to a request that died (a killed worker): claimed anew.
#: The operations behind the routes are idempotent themselves, so running one again is safe.
ABANDONED_AFTER = timedelta(minutes=5)


class IdempotencyRecord(Base):
    """A claimed key: what the request was (its fingerprint) and, once answered, the answer."""

    __tablename__ = "sb_idempotency_keys"

    #: SHA-256 (hex) of the caller and the client's key.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: SHA-256 (hex) of method, path and body: the same key must come with the same request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: None while the first request runs.
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)


class KeyReused(BillingError):
    status, code = 422, "idempotency_key_reused"


def _lifetime() -> timedelta:
    return timedelta(hours=float(current_app.config["SELF_BILLING_IDEMPOTENCY_HOURS"]))


def _claim(key_hash: str, fingerprint: str) -> IdempotencyRecord | None:
    """Claim the key for this request; the earlier record when it was claimed before (None: ours now)."""
    engine = db.engine
    table = IdempotencyRecord.__table__
    for _ in range(2):
        try:
            with engine.begin() as connection:
                connection.execute(table.insert().values(key_hash=key_hash, fingerprint=fingerprint,
                                                         created_at=utcnow()))
            return None
        except IntegrityError:
            with engine.begin() as connection:
                row = connection.execute(select(table).where(table.c.key_hash == key_hash)).first()
                now = utcnow()
                if row is not None and row.created_at > now - _lifetime() and not (
                        row.status is None and row.created_at < now - ABANDONED_AFTER):
                    return IdempotencyRecord(**row._mapping)
                # expired, or abandoned by a request that died: start anew
                connection.execute(delete(table).where(table.c.key_hash == key_hash))
    raise Conflict("This Idempotency-Key is being claimed by another request; retry in a moment.",
                   code="idempotency_key_in_use")


def _before(principal: Callable[[], str]) -> Response | None:
    if request.method not in _STATE_CHANGING:
        return None
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BillingError(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
                           "(a UUID is a good choice).", code="invalid_idempotency_key", status=400)
    key_hash = digest_parts(principal().encode(), key.encode())
    fingerprint = digest_parts(request.method.encode(), request.path.encode(), request.get_data(cache=True))
    earlier = _claim(key_hash, fingerprint)
    if earlier is None:
        setattr(g, _CLAIM, key_hash)
        return None
    if earlier.fingerprint != fingerprint:
        raise KeyReused(f"This {HEADER} was already used for another request (another method, address or body). "
                        "Use a new key for a new request.")
    if earlier.status is None:
        raise Conflict("The first request with this Idempotency-Key is still being processed; "
                       "retry in a moment to get its answer.", code="idempotency_key_in_use")
    replay = Response(earlier.body or "", status=earlier.status, content_type=earlier.content_type)
    replay.headers["Idempotent-Replayed"] = "true"
    return replay


def _after(response: Response) -> Response:
    key_hash = g.pop(_CLAIM, None)
    if key_hash is None:
        return response
    table = IdempotencyRecord.__table__
    with db.engine.begin() as connection:
        if response.status_code >= 500 or response.status_code in _NOT_KEPT or response.is_streamed:
            connection.execute(delete(table).where(table.c.key_hash == key_hash))
        else:
            connection.execute(update(table).where(table.c.key_hash == key_hash).values(
                status=response.status_code, content_type=response.content_type,
                body=response.get_data(as_text=True)))
    return response


def _teardown(error: BaseException | None) -> None:
    key_hash = g.pop(_CLAIM, None)  # still claimed: the request died before an answer
    if key_hash is not None:
        with db.engine.begin() as connection:
            connection.execute(delete(IdempotencyRecord.__table__)
                               .where(IdempotencyRecord.key_hash == key_hash))


def install_idempotency(bp: Blueprint, principal: Callable[[], str]) -> None:
    """Honour ``Idempotency-Key`` on ``bp``'s state-changing routes; ``principal()`` names the caller.

    Call it after the blueprint's own guards are registered: they run first (authentication, CSRF).
    """
    bp.before_request(lambda: _before(principal))
    bp.after_request(_after)
    bp.teardown_request(_teardown)


def prune_idempotency_keys(now: datetime) -> int:
    """Delete keys older than their lifetime; how many."""
    result = db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - _lifetime()))
    db.session.commit()
    return result.rowcount or 0

"""Reading and writing :class:`.models.StripeLink` rows.

The gateway reads on its own connection (it is called holding no transaction, see
:mod:`plugin.payments.processor`); the webhook and the import write in the session's
transaction, next to the ledger rows they link.
"""
from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ...db import db, utcnow
from .models import StripeLink


def lookup(kind: str, our_id: str) -> str | None:
    """The Stripe id linked to ``our_id``, read on a connection of its own (no session transaction)."""
    with db.engine.connect() as conn:
        return conn.execute(
            select(StripeLink.stripe_id).where(StripeLink.kind == kind, StripeLink.our_id == our_id)
        ).scalar_one_or_none()


def get(kind: str, our_id: str) -> str | None:
    """The Stripe id linked to ``our_id``, in the session's transaction."""
    return db.session.execute(
        select(StripeLink.stripe_id).where(StripeLink.kind == kind, StripeLink.our_id == our_id)
    ).scalar_one_or_none()


def ours(kind: str, stripe_id: str) -> list[str]:
    """Our ids linked to ``stripe_id`` (e.g. the Order IDs of a Stripe customer)."""
    return list(db.session.execute(
        select(StripeLink.our_id).where(StripeLink.kind == kind, StripeLink.stripe_id == stripe_id)
        .order_by(StripeLink.id)
    ).scalars())


def put(kind: str, our_id: str, stripe_id: str) -> None:
    """Link ``our_id`` to ``stripe_id`` (replacing an earlier link of the same kind), in the session."""
    updated = db.session.execute(
        update(StripeLink).where(StripeLink.kind == kind, StripeLink.our_id == our_id)
        .values(stripe_id=stripe_id, updated_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount
    if updated:
        return
    try:
        with db.session.begin_nested():  # a concurrent put of the same link may insert it first
            db.session.execute(insert(StripeLink).values(kind=kind, our_id=our_id, stripe_id=stripe_id,
                                                         created_at=utcnow(), updated_at=utcnow()))
    except IntegrityError:
        db.session.execute(
            update(StripeLink).where(StripeLink.kind == kind, StripeLink.our_id == our_id)
            .values(stripe_id=stripe_id, updated_at=utcnow()).execution_options(synchronize_session=False))


def claim(kind: str, our_id: str, stripe_id: str) -> bool:
    """Insert the link on its own committed transaction; False when it was already there (a repeat)."""
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(StripeLink).values(kind=kind, our_id=our_id, stripe_id=stripe_id,
                                                   created_at=utcnow(), updated_at=utcnow()))
    except IntegrityError:
        return False
    return True


def release(kind: str, our_id: str) -> None:
    """Remove a link on its own committed transaction (a claim whose work failed)."""
    with db.engine.begin() as conn:
        conn.execute(delete(StripeLink).where(StripeLink.kind == kind, StripeLink.our_id == our_id))


def drop(kind: str, our_id: str) -> None:
    """Remove a link in the session's transaction."""
    db.session.execute(delete(StripeLink).where(StripeLink.kind == kind, StripeLink.our_id == our_id)
                       .execution_options(synchronize_session=False))

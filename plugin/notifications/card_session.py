"""One "payment method changed" email per card session, however many changes it made.

A customer who adds a card, makes it the default and removes the old one changes their payment
method three times in a minute; three emails (five, with a mistake or two) say less than one. So the
email of a card change is not due at once: it waits :data:`QUIET` after the latest change (at most
:data:`LONGEST` after the first), and a change made while it waits is merged into it. What the
customer receives lists every change of the session in order and the cards on file at its end
(which one is the default), so it states the final state.

A waiting email can be merged into only while it is ``queued`` and not rendered yet: the merge is
one ``UPDATE ... WHERE status = 'queued' AND subject IS NULL``, so a worker that claimed the row a
moment before (it renders before it sends) is never raced. Then the change gets an email of its own.
Card changes hold the purchase's row lock (:mod:`plugin.locking`), so two merges into one row never
interleave.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from ..db import db
from ..ledger.models import PaymentMethod
from .models import OutboxEmail

if TYPE_CHECKING:  # pragma: no cover
    from ..ledger.models import Purchase

#: The kinds sent once per session.
KINDS = ("payment_method_changed",)
#: A card session ends when the customer has changed nothing for this long.
QUIET = timedelta(minutes=5)
#: However long the session goes on, its email leaves at most this long after its first change.
LONGEST = timedelta(minutes=15)


def due(now: datetime, first_change: datetime) -> datetime:
    """When the email of a session whose first change was at ``first_change`` is due, after a change ``now``."""
    return min(now + QUIET, first_change + LONGEST)


def _card(method: PaymentMethod) -> dict[str, Any]:
    return {"brand": method.brand or "", "last4": method.last4 or "", "default": bool(method.is_default)}


def with_cards(purchase: Purchase, context: dict[str, Any]) -> dict[str, Any]:
    """The context of one change, with the change listed and the purchase's cards once it is made.

    The card being removed is still in the table when its email is queued; it is left out here.
    """
    extra = dict(context.get("extra") or {})
    change = {"change": extra.get("change") or "", "brand": extra.get("brand") or "",
              "last4": extra.get("last4") or "", "at": context.get("date")}
    methods = list(db.session.execute(
        select(PaymentMethod).where(PaymentMethod.purchase_id == purchase.id).order_by(PaymentMethod.id)
    ).scalars())
    cards = [_card(method) for method in methods]
    if change["change"] == "removed":
        same = [i for i, card in enumerate(cards) if (card["brand"], card["last4"]) == (change["brand"], change["last4"])]
        if same:  # a card that is not the default, when two rows show the same card
            cards.pop(next((i for i in same if not cards[i]["default"]), same[0]))
    extra["changes"] = [change]
    extra["cards"] = cards
    return dict(context, extra=extra)


def merge(order_id: str, kind: str, context: dict[str, Any], now: datetime) -> bool:
    """Merge one change into the session's email still waiting, if there is one; False if there is none."""
    T = OutboxEmail
    waiting = db.session.execute(
        select(T).where(T.order_id == order_id, T.kind == kind, T.status == "queued", T.subject.is_(None))
        .order_by(T.id.desc()).limit(1)
    ).scalar_one_or_none()
    if waiting is None:
        return False
    before = dict(waiting.context or {})
    extra = dict(context["extra"])
    extra["changes"] = list((before.get("extra") or {}).get("changes") or []) + extra["changes"]
    merged = dict(context, extra=extra)
    first = waiting.created_at or now
    result = db.session.execute(
        update(T).where(T.id == waiting.id, T.status == "queued", T.subject.is_(None))
        .values(context=merged, next_attempt_at=due(now, first))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # a worker took it just now: this change gets its own email
        return False
    db.session.expire(waiting)
    return True

""""Forgot your Order ID?": the Order IDs of an email's purchases, emailed to that address.

The customer gives an email address; when a lead has it, that lead gets one ``order_lookup`` email
listing its purchases (product, Order ID, purchase date, status in words), newest first, with the
portal's login link. The answer is the same whether or not the email is known
(:data:`LOOKUP_SENT_MESSAGE`), so the page and the JSON door reveal nothing about who bought; only
the owner of the mailbox reads the Order IDs. Requests are limited per email and per client address
on counters of their own (``SELF_BILLING_ORDER_LOOKUP_LIMIT_PER_EMAIL``, ``..._PER_ADDRESS``;
:func:`plugin.portal.limits.limit_lookup_view`), never counted as failed logins.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError
from sqlalchemy import select

from ..db import db
from ..errors import InvalidInput
from ..ledger.models import Lead, Purchase
from ..notifications import enqueue
from .display import status as status_words
from .login import MAX_EMAIL

#: What every lookup answers, known email or not.
LOOKUP_SENT_MESSAGE = "If we have purchases under that email, we have sent their Order IDs to it."
#: The most purchases one email lists (the newest); more are counted, not listed.
MAX_LISTED = 50
_EMAIL_MESSAGE = "Enter the email address you used when you bought (for example ann@example.com)."


class LookupIn(BaseModel):
    """The lookup's one field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: Annotated[EmailStr, Field(max_length=MAX_EMAIL)]


def parse_lookup(data: object) -> str:
    """The email asked about; InvalidInput (400) naming ``email`` when it is missing or not an email
    address, or the unknown fields sent beside it."""
    if not isinstance(data, dict):
        raise InvalidInput("Send the email address you used when you bought, as {\"email\": \"...\"}.",
                           fields={"email": _EMAIL_MESSAGE})
    unknown = sorted(set(data) - {"email"})
    if unknown:
        raise InvalidInput(f"Only 'email' may be sent; unknown: {', '.join(unknown)}.",
                           fields={name: "unknown field" for name in unknown})
    email = data.get("email")
    try:
        LookupIn.model_validate({"email": email})
    except ValidationError:
        raise InvalidInput(_EMAIL_MESSAGE, fields={"email": _EMAIL_MESSAGE}) from None
    return str(email).strip()


def _listed(purchase: Purchase) -> dict[str, Any]:
    return {"order_id": purchase.order_id, "product": purchase.product,
            "purchased_at": purchase.purchased_at, "status": status_words(purchase.status)}


def send_order_ids(email: str, login_url: str | None) -> None:
    """Queue the ``order_lookup`` email when a lead has ``email`` and purchases; else nothing.

    ``login_url`` is the portal's login page (absolute), or None when no portal page is mounted.
    The caller answers :data:`LOOKUP_SENT_MESSAGE` either way.
    """
    purchases = list(db.session.execute(
        select(Purchase).join(Lead, Lead.id == Purchase.lead_id)
        .where(Lead.email_normalized == Lead.normalize_email(email))
        .order_by(Purchase.purchased_at.desc(), Purchase.id.desc())
        .limit(MAX_LISTED + 1)
    ).scalars())
    if not purchases:
        return
    # The outbox files every email under a purchase: the newest, whose Order ID the subject carries.
    enqueue("order_lookup", purchases[0], extra={
        "purchases": [_listed(p) for p in purchases[:MAX_LISTED]],
        "more": len(purchases) > MAX_LISTED,
        "link": login_url,
    })
    db.session.commit()

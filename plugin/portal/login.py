"""Order-ID login: the Order ID and the email must belong to the same lead.

The email is trimmed and compared case-insensitively. Whatever is wrong (an
unknown order, an unknown email, or both known but of different leads) the
answer is the same :data:`WRONG_PAIR_MESSAGE`, so nobody learns which orders
or emails exist. Input too long or empty is refused before any lookup.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from sqlalchemy import select

from ..db import db
from ..errors import InvalidInput, NotLoggedIn
from ..ledger.models import Lead, Purchase

WRONG_PAIR_MESSAGE = (
    "We could not find an order with that Order ID and email address. "
    "Check both: the Order ID is at the top right of your invoice or in your purchase confirmation email, "
    "and the email is the one you used when you bought."
)
MAX_ORDER_ID = 64
MAX_EMAIL = 320


class LoginIn(BaseModel):
    """The login form's two fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ORDER_ID)]
    email: Annotated[StrictStr, Field(min_length=1, max_length=MAX_EMAIL)]


_FIELD_MESSAGES = {
    "order_id": f"Enter your Order ID (at most {MAX_ORDER_ID} characters).",
    "email": f"Enter the email address you used when you bought (at most {MAX_EMAIL} characters).",
}


def parse_login(data: object) -> LoginIn:
    """Validate the login fields; InvalidInput (400) naming each missing or too long field."""
    if not isinstance(data, dict):
        raise InvalidInput("Send your Order ID and email address.", fields=dict(_FIELD_MESSAGES))
    try:
        return LoginIn.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else "body"
            fields.setdefault(name, _FIELD_MESSAGES.get(name, "unknown field"))
        if set(fields) <= set(_FIELD_MESSAGES):
            message = " ".join(fields[name] for name in _FIELD_MESSAGES if name in fields)
        else:
            message = "Only order_id and email are accepted."
        raise InvalidInput(message, code="invalid", fields=fields) from None


def authenticate(order_id: str, email: str) -> Lead:
    """The lead owning order ``order_id`` whose email is ``email``; NotLoggedIn (401) otherwise."""
    normalized = Lead.normalize_email(email)
    lead = db.session.execute(
        select(Lead)
        .join(Purchase, Purchase.lead_id == Lead.id)
        .where(Purchase.order_id == order_id.strip(), Lead.email_normalized == normalized)
    ).scalar_one_or_none()
    if lead is None:
        raise NotLoggedIn(WRONG_PAIR_MESSAGE, code="login_failed")
    return lead

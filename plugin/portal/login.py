"""Order-ID login: the Order ID and the email must belong to the same lead.

The email is trimmed and compared case-insensitively. Whatever is wrong (an
unknown order, an unknown email, or both known but of different leads) the
answer is the same :data:`WRONG_PAIR_MESSAGE`, so nobody learns which orders
or emails exist. Input too long or empty is refused before any lookup.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from sqlalchemy import case, func, select

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


def purchase_for_login(order_id: str, email: str) -> tuple[Purchase, Lead] | None:
    """The purchase a customer names by its Order ID and their email, with its lead; None if they do not match.

    The Order ID matches in any letter case (people retype what an email showed them, "demo-1001" for
    "DEMO-1001"); an exact match wins where a merchant has two IDs differing in case only. The email
    is found through its unique index and only that lead's orders are compared, so no index on the
    upper-cased ID is needed.
    """
    given = order_id.strip()
    row = db.session.execute(
        select(Purchase, Lead).join(Lead, Lead.id == Purchase.lead_id)
        .where(Lead.email_normalized == Lead.normalize_email(email), func.upper(Purchase.order_id) == given.upper())
        .order_by(case((Purchase.order_id == given, 0), else_=1))
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def authenticate(order_id: str, email: str) -> Lead:
    """The lead owning order ``order_id`` (in any letter case) whose email is ``email``; NotLoggedIn (401)
    otherwise."""
    found = purchase_for_login(order_id, email)
    if found is None:
        raise NotLoggedIn(WRONG_PAIR_MESSAGE, code="login_failed")
    return found[1]

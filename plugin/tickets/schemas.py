"""Input schemas of the agent API (contract section 5), shared by the JSON API and the desk's forms.

Amounts are decimal strings with at most two places and more than zero; whether
an amount fits the payment (no more than what remains) depends on the ledger and
is checked by :func:`plugin.tickets.actions.validate_refund_amount`.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from ..money import to_cents

#: Longest reply or event message an agent may send, in characters.
MAX_MESSAGE_CHARS = 10_000
#: Longest lead search.
MAX_QUERY_CHARS = 200
#: Amounts from 10 digits before the point up are refused (the merchant API's prices stop there too).
MAX_AMOUNT = Decimal(10) ** 10


def _not_a_float(value: object) -> object:
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueError('send the amount as a decimal string, e.g. "10.50" (never a JSON number)')
    return value


def parse_amount(value: str) -> int:
    """Cents of a positive amount with at most two places; ValueError saying what is wrong."""
    text = (value or "").strip()
    if not text:
        raise ValueError('enter an amount, e.g. "10.50"')
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f'{text!r} is not a number; enter an amount such as "10.50"') from None
    if not number.is_finite():
        raise ValueError(f'{text!r} is not a number; enter an amount such as "10.50"')
    if number <= 0:
        raise ValueError("the amount must be more than 0")
    if number >= MAX_AMOUNT:
        raise ValueError("the amount is too large; no payment is that big")
    try:
        return to_cents(number)
    except ValueError:
        raise ValueError("use at most two decimal places, e.g. \"10.50\"") from None


def _amount(value: str) -> str:
    parse_amount(value)
    return value.strip()


def _message(value: str) -> str:
    return value.strip()


AmountStr = Annotated[StrictStr, BeforeValidator(_not_a_float), AfterValidator(_amount)]
MessageStr = Annotated[StrictStr, AfterValidator(_message), Field(max_length=MAX_MESSAGE_CHARS)]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EventIn(Schema):
    """``POST /tickets/<id>/events``."""

    event: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    amount: AmountStr | None = None
    message: MessageStr | None = None

    @property
    def amount_cents(self) -> int | None:
        return parse_amount(self.amount) if self.amount is not None else None


class ReplyIn(Schema):
    """``POST /tickets/<id>/replies``: 1 to 10,000 characters."""

    message: Annotated[StrictStr, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]


class CancelIn(Schema):
    """``POST /purchases/<order_id>/cancel``."""

    when: Literal["now", "period_end"]
    message: MessageStr | None = None


class RefundIn(Schema):
    """``POST /payments/<payment_id>/refunds``."""

    amount: AmountStr
    message: MessageStr | None = None

    @property
    def amount_cents(self) -> int:
        return parse_amount(self.amount)

"""Input schemas of the agent API (contract section 5), shared by the JSON API and the desk's forms.

Amounts are decimal strings with at most two places and more than zero
(:data:`plugin.validation.AmountStr`); whether an amount fits the payment (no
more than what remains) depends on the ledger and is checked by
:func:`plugin.tickets.actions.validate_refund_amount`. Messages are free text
(:func:`plugin.validation.free_text`): stripped, at most 10,000 characters, card numbers masked.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictStr

from ..validation import (
    MAX_MESSAGE_CHARS,
    AmountStr,
    Message,
    Reply,
    Schema,
    parse_amount,
)

__all__ = ["MAX_MESSAGE_CHARS", "MAX_QUERY_CHARS", "CancelIn", "EventIn", "RefundIn", "ReplyIn"]

#: Longest lead search.
MAX_QUERY_CHARS = 200


class EventIn(Schema):
    """``event``, ``amount`` (refund_partial only) and ``message`` of an agent's event."""

    event: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    amount: AmountStr | None = None
    message: Message | None = None

    @property
    def amount_cents(self) -> int | None:
        return parse_amount(self.amount) if self.amount is not None else None


class ReplyIn(Schema):
    """An agent's reply to the customer: 1 to 10,000 characters."""

    message: Reply


class CancelIn(Schema):
    """A manual cancellation: now or at the end of the paid period."""

    when: Literal["now", "period_end"]
    message: Message | None = None


class RefundIn(Schema):
    """A manual refund of all or part of a payment."""

    amount: AmountStr
    message: Message | None = None

    @property
    def amount_cents(self) -> int:
        return parse_amount(self.amount)

"""The model the request machines act on: a request with what its rules read.

:class:`RequestContext` wraps one :class:`BillingRequest` row with its purchase,
payment, the merchant's settings and the time, for the length of one
transaction. Its predicates are the machines' conditions; its effects are the
names in the tables' ``after`` lists (:mod:`.machines`), each doing one thing
in the caller's transaction: a ledger change, a ticket, the outcome, closing
the request, the customer's email; ``write_history`` writes every transition's
audit row. Conditions and effects get the trigger's keyword arguments
(:func:`plugin.workflows.engine.fire` passes ``event``, ``source`` and ``actor``).
It is a plain object: creating one costs nothing and no machine keeps it alive.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from ..db import db
from ..invoices.issuing import issue_credit_note
from ..ledger.models import Payment, PricePoint, Purchase, Refund, Settings
from ..notifications import enqueue
from ..tickets.service import close_ticket_for_request, open_ticket_for_request
from ..tickets.wording import say
from .machines import CUSTOMER, OUTCOMES, SYSTEM, is_agent
from .models import BillingRequest, RequestEvent
from .rules import is_live_subscription, refundable_until

__all__ = ["CUSTOMER", "SYSTEM", "RequestContext"]

#: The customer's email when a request ends (or a cancellation is scheduled), by outcome.
EMAIL_FOR_OUTCOME = {
    "cancelled": "cancellation_done",
    "cancel_scheduled": "cancellation_scheduled",
    "resumed": "cancellation_undone",
    "refunded": "refund_done",
    "partially_refunded": "refund_done",
    "declined": "request_declined",
    "failed": "request_declined",
}

TOLD_TICKETED = (
    "We have received your {what} and passed it to our billing team. "
    "We will email you when it has been handled."
)
TOLD_PROCESSOR_FAILED = (
    "We could not process your {what} automatically, so our billing team will handle it. "
    "We will email you when it is done."
)


class RequestContext:
    """One request and everything its machine's conditions and effects read."""

    def __init__(
        self,
        request: BillingRequest,
        purchase: Purchase,
        payment: Payment | None,
        settings: Settings,
        now: datetime,
    ) -> None:
        self.request = request
        self.purchase = purchase
        self.payment = payment
        self.settings = settings
        self.now = now
        #: The credit note ``record_refund`` issued, for the refund email to name.
        self.credit_note: Any = None

    # The machine's state attribute is the request's column.
    @property
    def state(self) -> str:
        return self.request.state

    @state.setter
    def state(self, value: str) -> None:
        self.request.state = value

    @property
    def price_point(self) -> PricePoint:
        return self.purchase.price_point

    # -- conditions ----------------------------------------------------------------------

    def self_service_on(self, **_: Any) -> bool:
        return self.settings.enabled

    def cancellation_offered(self, **_: Any) -> bool:
        return self.settings.cancellation_mode != "disabled"

    def cancellation_automatic(self, **_: Any) -> bool:
        return self.settings.cancellation_mode == "automatic"

    def cancellation_by_request(self, **_: Any) -> bool:
        return self.settings.cancellation_mode == "request"

    def refunds_offered(self, **_: Any) -> bool:
        return self.settings.refund_mode != "disabled"

    def refunds_automatic(self, **_: Any) -> bool:
        return self.settings.refund_mode == "automatic"

    def refunds_by_request(self, **_: Any) -> bool:
        return self.settings.refund_mode == "request"

    def by_customer(self, **_: Any) -> bool:
        return self.request.created_by == CUSTOMER

    def by_agent(self, actor: str = SYSTEM, **_: Any) -> bool:
        return is_agent(actor)

    def is_subscription(self, **_: Any) -> bool:
        return self.purchase.kind == "subscription"

    def is_active(self, **_: Any) -> bool:
        return self.purchase.status == "active"

    def not_cancelled(self, **_: Any) -> bool:
        return is_live_subscription(self.purchase)

    def has_next_payment(self, **_: Any) -> bool:
        return self.purchase.next_payment_at is not None

    def cancels_instantly(self, **_: Any) -> bool:
        return self.price_point.cancellation == "instant"

    def cancels_at_period_end(self, **_: Any) -> bool:
        return self.price_point.cancellation == "delayed"

    def is_scheduled(self, **_: Any) -> bool:
        return self.request.outcome == "cancel_scheduled" and self.purchase.status == "cancel_scheduled"

    def schedule_due(self, **_: Any) -> bool:
        return self.purchase.cancels_at is not None and self.purchase.cancels_at <= self.now

    def schedule_not_due(self, **_: Any) -> bool:
        return self.purchase.cancels_at is not None and self.now < self.purchase.cancels_at

    def has_remaining(self, **_: Any) -> bool:
        return self.payment is not None and self.payment.remaining_cents > 0

    def within_refund_window(self, **_: Any) -> bool:
        return self.payment is not None and self.now <= refundable_until(
            self.payment.paid_at, self.price_point.refund_window_days)

    def partial_amount_valid(self, amount_cents: int | None = None, **_: Any) -> bool:
        if amount_cents is None:  # asked "is this event possible at all?"
            return self.payment is not None and self.payment.remaining_cents > 1
        return self.payment is not None and 0 < amount_cents < self.payment.remaining_cents

    def has_processor_error(self, **_: Any) -> bool:
        return bool(self.request.error)

    # -- effects: what the processor is to do --------------------------------------------

    def queue_step(self, event_name: str, actor: str) -> None:
        """A processor step decided outside the tables (the customer's ``resume``), saved as pending."""
        self._set_pending(event_name, None, actor)

    def _set_pending(self, event_name: str, amount_cents: int | None, actor: str) -> None:
        self.request.pending_event = event_name
        self.request.pending_amount_cents = amount_cents
        self.request.pending_actor = actor
        self.request.pending_since = self.now

    def queue_cancellation(self, **_: Any) -> None:
        self._set_pending("complete" if self.price_point.cancellation == "instant" else "schedule", None, SYSTEM)

    def queue_full_refund(self, **_: Any) -> None:
        assert self.payment is not None
        self._set_pending("complete", self.payment.remaining_cents, SYSTEM)

    # -- effects: the ledger ------------------------------------------------------------

    def cancel_purchase_now(self, **_: Any) -> None:
        self.purchase.status = "cancelled"
        self.purchase.cancelled_at = self.now
        self.purchase.next_payment_at = None
        self.purchase.cancels_at = None

    def schedule_purchase_cancellation(self, **_: Any) -> None:
        self.purchase.status = "cancel_scheduled"
        self.purchase.cancels_at = self.purchase.next_payment_at
        self.purchase.next_payment_at = None

    def end_scheduled_purchase(self, **_: Any) -> None:
        self.purchase.status = "cancelled"
        self.purchase.cancelled_at = self.purchase.cancels_at

    def resume_purchase(self, **_: Any) -> None:
        """The scheduled end is undone: active again, renewing on the day it would have ended."""
        self.purchase.status = "active"
        self.purchase.next_payment_at = self.purchase.cancels_at
        self.purchase.cancels_at = None

    def record_refund(self, amount_cents: int, reference: str = "", actor: str = SYSTEM, **_: Any) -> None:
        """Append the refund the processor confirmed, update the running totals, issue its credit note."""
        payment = self.payment
        assert payment is not None
        refund = Refund(
            payment_id=payment.id,
            amount_cents=amount_cents,
            currency=payment.currency,
            idempotency_key=self.request.public_id,
            processor_reference=reference,
            request_id=self.request.id,
            actor=actor,
            refunded_at=self.now,
        )
        db.session.add(refund)
        db.session.flush()
        self.credit_note = issue_credit_note(refund, payment, self.purchase, self.request.reason)
        payment.refunded_cents += amount_cents
        payment.status = "refunded" if payment.remaining_cents <= 0 else "partially_refunded"
        self.request.amount_cents = amount_cents
        self.request.currency = payment.currency
        if self.purchase.kind == "one_time":
            self.purchase.status = payment.status

    # -- effects: tickets, outcome, closing ------------------------------------------------

    def _what(self) -> str:
        return "cancellation request" if self.request.type == "cancellation" else "refund request"

    def open_ticket(self, **_: Any) -> None:
        self._flush_new()
        open_ticket_for_request(self.request, TOLD_TICKETED.format(what=self._what()))

    def open_ticket_after_failure(self, **_: Any) -> None:
        self._flush_new()
        open_ticket_for_request(self.request, TOLD_PROCESSOR_FAILED.format(what=self._what()))

    def settle_outcome(self, event: str, **_: Any) -> None:
        """How the request ends: the table's outcome, or for a refund, by what remains of the payment."""
        outcome = OUTCOMES[self.request.type][event]
        if self.request.type == "refund" and outcome in ("refunded", "partially_refunded"):
            assert self.payment is not None
            outcome = "refunded" if self.payment.remaining_cents <= 0 else "partially_refunded"
        self.request.outcome = outcome

    def close_request(self, event: str, actor: str = SYSTEM, **_: Any) -> None:
        """Resolved: the open slot is free for a new request, and the request's ticket is closed."""
        request = self.request
        request.open_slot = None
        request.resolved_at = self.now
        if request.ticket_id is not None:
            # in words, as agents and the host's helpdesk read it (the desk's tables: tickets.wording)
            close_ticket_for_request(request, f"Resolved: {say(request.outcome, 'outcome')} "
                                              f"({say(event, 'event')}, by {say(actor, 'actor')}).")

    # -- effects: the customer's email ---------------------------------------------------

    def email_ticketed(self, message: str | None = None, **_: Any) -> None:
        self._email("request_ticketed", message)

    def email_outcome(self, message: str | None = None, **_: Any) -> None:
        extra = {"credit_note": self.credit_note.number} if self.credit_note is not None else None
        self._email(EMAIL_FOR_OUTCOME[self.request.outcome], message, extra)

    def _email(self, kind: str, message: str | None, extra: dict[str, Any] | None = None) -> None:
        enqueue(kind, self.purchase, request=self.request, payment=self.payment, message=message, extra=extra)

    # -- every transition -----------------------------------------------------------------

    def _flush_new(self) -> None:
        if self.request.id is None:
            db.session.flush()

    def write_history(self, event: str, source: str, actor: str = SYSTEM, note: str | None = "",
                      **_: Any) -> None:
        """The transition's audit row: from, to, event, time, who, and their note."""
        self._flush_new()
        db.session.add(RequestEvent(request_id=self.request.id, from_state=source, to_state=self.state,
                                    event=event, at=self.now, actor=actor, note=note or ""))

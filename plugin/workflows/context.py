"""The model the request machines act on: a request with what its rules read.

:class:`RequestContext` wraps one :class:`BillingRequest` row with its purchase,
payment, the merchant's settings and the time, for the length of one
transaction. Its predicates are the machines' conditions; its callbacks do the
transitions' work (ledger changes, tickets, emails) in the caller's transaction.
It is a plain object: creating one costs nothing and no machine keeps it alive.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from transitions import EventData

from ..db import db
from ..ledger.models import Payment, PricePoint, Purchase, Refund, Settings
from .machines import OUTCOMES
from .models import BillingRequest, RequestEvent

CUSTOMER, SYSTEM = "customer", "system"

_EMAIL_FOR_OUTCOME = {
    "cancelled": "cancellation_done",
    "cancel_scheduled": "cancellation_scheduled",
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


def refundable_until(payment: Payment, price_point: PricePoint) -> datetime:
    """The last moment a customer may ask for a refund of ``payment``."""
    return payment.paid_at + timedelta(days=price_point.refund_window_days)


class RequestContext:
    """One request and everything its machine's conditions and callbacks read."""

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

    @staticmethod
    def _actor(event: EventData) -> str:
        return event.kwargs.get("actor", SYSTEM)

    def self_service_on(self, event: EventData) -> bool:
        return self.settings.enabled

    def cancellation_offered(self, event: EventData) -> bool:
        return self.settings.cancellation_mode != "disabled"

    def cancellation_automatic(self, event: EventData) -> bool:
        return self.settings.cancellation_mode == "automatic"

    def cancellation_by_request(self, event: EventData) -> bool:
        return self.settings.cancellation_mode == "request"

    def refunds_offered(self, event: EventData) -> bool:
        return self.settings.refund_mode != "disabled"

    def refunds_automatic(self, event: EventData) -> bool:
        return self.settings.refund_mode == "automatic"

    def refunds_by_request(self, event: EventData) -> bool:
        return self.settings.refund_mode == "request"

    def by_customer(self, event: EventData) -> bool:
        return self.request.created_by == CUSTOMER

    def by_agent(self, event: EventData) -> bool:
        return self._actor(event) not in (CUSTOMER, SYSTEM)

    def is_subscription(self, event: EventData) -> bool:
        return self.purchase.kind == "subscription"

    def is_active(self, event: EventData) -> bool:
        return self.purchase.status == "active"

    def not_cancelled(self, event: EventData) -> bool:
        return self.purchase.status in ("active", "cancel_scheduled")

    def has_next_payment(self, event: EventData) -> bool:
        return self.purchase.next_payment_at is not None

    def cancels_instantly(self, event: EventData) -> bool:
        return self.price_point.cancellation == "instant"

    def cancels_at_period_end(self, event: EventData) -> bool:
        return self.price_point.cancellation == "delayed"

    def is_scheduled(self, event: EventData) -> bool:
        return self.request.outcome == "cancel_scheduled" and self.purchase.status == "cancel_scheduled"

    def schedule_due(self, event: EventData) -> bool:
        return self.purchase.cancels_at is not None and self.purchase.cancels_at <= self.now

    def has_remaining(self, event: EventData) -> bool:
        return self.payment is not None and self.payment.remaining_cents > 0

    def within_refund_window(self, event: EventData) -> bool:
        return self.payment is not None and self.now <= refundable_until(self.payment, self.price_point)

    def partial_amount_valid(self, event: EventData) -> bool:
        amount = event.kwargs.get("amount_cents")
        if amount is None:  # asked "is this event possible at all?"
            return self.payment is not None and self.payment.remaining_cents > 1
        return self.payment is not None and 0 < amount < self.payment.remaining_cents

    def has_processor_error(self, event: EventData) -> bool:
        return bool(self.request.error)

    # -- callbacks -------------------------------------------------------------------------

    def _set_pending(self, event_name: str, amount_cents: int | None, actor: str) -> None:
        self.request.pending_event = event_name
        self.request.pending_amount_cents = amount_cents
        self.request.pending_actor = actor
        self.request.pending_since = self.now

    def queue_cancellation(self, event: EventData) -> None:
        self._set_pending("complete" if self.price_point.cancellation == "instant" else "schedule", None, SYSTEM)

    def queue_full_refund(self, event: EventData) -> None:
        assert self.payment is not None
        self._set_pending("complete", self.payment.remaining_cents, SYSTEM)

    def cancel_purchase_now(self, event: EventData) -> None:
        self.purchase.status = "cancelled"
        self.purchase.cancelled_at = self.now
        self.purchase.next_payment_at = None
        self.purchase.cancels_at = None

    def schedule_purchase_cancellation(self, event: EventData) -> None:
        self.purchase.status = "cancel_scheduled"
        self.purchase.cancels_at = self.purchase.next_payment_at
        self.purchase.next_payment_at = None

    def end_scheduled_purchase(self, event: EventData) -> None:
        self.purchase.status = "cancelled"
        self.purchase.cancelled_at = self.purchase.cancels_at

    def record_refund(self, event: EventData) -> None:
        """Append the refund the processor confirmed and update the running totals."""
        payment = self.payment
        assert payment is not None
        amount = event.kwargs["amount_cents"]
        db.session.add(
            Refund(
                payment_id=payment.id,
                amount_cents=amount,
                currency=payment.currency,
                idempotency_key=self.request.public_id,
                processor_reference=event.kwargs.get("reference", ""),
                request_id=self.request.id,
                actor=self._actor(event),
                refunded_at=self.now,
            )
        )
        payment.refunded_cents += amount
        payment.status = "refunded" if payment.remaining_cents <= 0 else "partially_refunded"
        self.request.amount_cents = amount
        self.request.currency = payment.currency
        if self.purchase.kind == "one_time":
            self.purchase.status = payment.status

    def open_ticket(self, event: EventData) -> None:
        from ..tickets.service import open_ticket_for_request

        what = "cancellation request" if self.request.type == "cancellation" else "refund request"
        template = TOLD_PROCESSOR_FAILED if event.event.name == "processor_failed" else TOLD_TICKETED
        open_ticket_for_request(self.request, template.format(what=what))

    def after_transition(self, event: EventData) -> None:
        """Write the audit row, settle the outcome and queue the customer's email."""
        request = self.request
        name = event.event.name
        actor = self._actor(event)
        source = event.transition.source
        dest = event.transition.dest
        if request.id is None:
            db.session.flush()
        db.session.add(
            RequestEvent(
                request_id=request.id,
                from_state=source,
                to_state=dest,
                event=name,
                at=self.now,
                actor=actor,
                note=event.kwargs.get("note", "") or "",
            )
        )
        outcome = OUTCOMES[request.type].get(name)
        if name in ("complete", "refund_full", "refund_partial") and request.type == "refund":
            assert self.payment is not None
            outcome = "refunded" if self.payment.remaining_cents <= 0 else "partially_refunded"
        if outcome:
            request.outcome = outcome
        if dest == "resolved" and source != "resolved":
            request.open_slot = None
            request.resolved_at = self.now
            if request.ticket_id is not None:
                from ..tickets.service import close_ticket_for_request

                close_ticket_for_request(request, f"Resolved: {outcome} ({name} by {actor}).")
        self._queue_email(name, dest, outcome, event)

    def _queue_email(self, name: str, dest: str, outcome: str | None, event: EventData) -> None:
        kind = None
        if dest == "ticketed":
            kind = "request_ticketed"
        elif outcome and (dest == "resolved" or name == "schedule"):
            kind = _EMAIL_FOR_OUTCOME.get(outcome)
            if name == "period_end":
                kind = "cancellation_done"
        if kind is None:
            return
        from ..notifications import enqueue

        enqueue(
            kind,
            self.purchase,
            request=self.request,
            payment=self.payment,
            message=event.kwargs.get("message"),
        )

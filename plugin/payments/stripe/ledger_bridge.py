"""Ledger changes that come from Stripe and that :mod:`plugin.ledger.service` has no function for yet.

A refund made in Stripe's dashboard, and a subscription cancelled, scheduled or resumed there, are
facts to record, not requests to process: no request, no ticket, no processor call. Each takes the
purchase's row lock first (:func:`plugin.locking.lock_purchase`), like every money step, and
writes what the workflow effects write (``plugin.workflows.context``): an append-only ``Refund``
row with the running total, or the purchase's status and dates. They belong in the ledger's
public API (``record_external_refund``, ``set_subscription_state``); until it has them, here.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from ...db import db
from ...invoices.issuing import issue_credit_note
from ...ledger.models import Payment, Purchase, Refund
from ...locking import lock_purchase
from ...workflows.context import SYSTEM
from ...workflows.engine import accepts, fire
from ...workflows.models import BillingRequest
from ...workflows.steps import context_for, scheduled_request
from . import links

ACTOR = "stripe"


class Deferred(Exception):
    """A step of ours on this purchase is waiting for Stripe's answer: apply the event later."""


def _payment(payment_id: str) -> Payment | None:
    return db.session.execute(select(Payment).where(Payment.payment_id == payment_id)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def record_external_refund(payment_id: str, amount_cents: int, reference: str, refunded_at: datetime) -> bool:
    """Record Stripe's refund ``reference`` of the payment once; True when it was new. Commits."""
    try:
        payment = _payment(payment_id)
        if payment is None:
            db.session.rollback()
            return False
        purchase = lock_purchase(payment.purchase_id)
        payment = _payment(payment_id)
        assert payment is not None
        key = f"stripe:{reference}"
        seen = db.session.execute(select(Refund.id).where(
            or_(Refund.processor_reference == reference, Refund.idempotency_key == key))).first()
        amount = min(amount_cents, payment.remaining_cents)
        if seen is not None or amount <= 0:
            links.put("refund", reference, payment_id)
            db.session.commit()
            return False
        refund = Refund(payment_id=payment.id, amount_cents=amount, currency=payment.currency,
                        idempotency_key=key, processor_reference=reference, request_id=None,
                        actor=ACTOR, refunded_at=refunded_at)
        db.session.add(refund)
        db.session.flush()
        issue_credit_note(refund, payment, purchase, "Refunded in Stripe")
        payment.refunded_cents += amount
        payment.status = "refunded" if payment.remaining_cents <= 0 else "partially_refunded"
        if purchase.kind == "one_time":
            purchase.status = payment.status
        links.put("refund", reference, payment_id)
        db.session.commit()
        return True
    except BaseException:
        db.session.rollback()
        raise


def _step_in_flight(purchase: Purchase) -> bool:
    return db.session.execute(select(BillingRequest.id).where(
        BillingRequest.purchase_id == purchase.id, BillingRequest.type == "cancellation",
        # Open, or resolved with a customer's "keep my subscription" waiting for Stripe's answer.
        BillingRequest.pending_event.is_not(None))).first() is not None


def _scheduled_end_undone(purchase: Purchase) -> None:
    """Stripe renews a subscription whose end we scheduled (undone in Stripe's own portal or dashboard):
    the request that scheduled it ends as "Keep my subscription" ends it (resumed, slot freed, the
    customer told), so a new cancellation can be asked for and the schedule is never ended by ``tick``."""
    request = scheduled_request(purchase.id)
    if request is None or request.pending_event:
        return
    ctx = context_for(request, purchase)
    if accepts(ctx, "resumed_at_processor", actor=SYSTEM):
        fire(ctx, "resumed_at_processor", actor=SYSTEM,
             note="Stripe reports the subscription renewing: its cancellation was undone there.")


def set_subscription_state(order_id: str, *, canceled_at: datetime | None, cancels_at: datetime | None,
                           next_payment_at: datetime | None) -> str | None:
    """Follow Stripe's subscription: cancelled, scheduled to cancel, or active. Returns the new status.

    Raises :class:`Deferred` while a cancellation step of ours waits for Stripe's answer (its own
    record follows). Commits.
    """
    try:
        found = db.session.execute(select(Purchase.id).where(Purchase.order_id == order_id)).scalar_one_or_none()
        if found is None:
            db.session.rollback()
            return None
        purchase = lock_purchase(found)
        if purchase.kind != "subscription":
            db.session.commit()
            return purchase.status
        if _step_in_flight(purchase):
            db.session.rollback()
            raise Deferred(f"A cancellation of {order_id} is waiting for Stripe's answer.")
        if canceled_at is not None:
            if purchase.status != "cancelled":
                purchase.status = "cancelled"
                purchase.cancelled_at = canceled_at
            purchase.next_payment_at = None
            purchase.cancels_at = None
        elif cancels_at is not None:
            purchase.status = "cancel_scheduled"
            purchase.cancels_at = cancels_at
            purchase.next_payment_at = None
        elif purchase.status != "cancelled":
            if purchase.status == "cancel_scheduled":
                _scheduled_end_undone(purchase)
            purchase.status = "active"
            purchase.cancels_at = None
            if next_payment_at is not None:
                purchase.next_payment_at = next_payment_at
        db.session.commit()
        return purchase.status
    except BaseException:
        db.session.rollback()
        raise

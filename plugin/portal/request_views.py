"""The portal's cancel and refund pages: what confirming will do, then what happened."""
from __future__ import annotations

from typing import Any

from flask import redirect, request

from ..db import utcnow
from ..ledger.models import Purchase
from ..ledger.service import get_settings
from ..ledger.settings import cancellation_reasons
from ..money import format_amount
from ..workflows import policy
from . import actions
from .auth import require_lead
from .display import date, money
from .forms import CSRF_MESSAGE, CancelForm, ReasonForm
from .notices import notify
from .pages import bp, csrf_failed, page_url, render

# -- cancellation and refund --------------------------------------------------------------------


def _cancel_preview(purchase: Purchase) -> str:
    """What confirming will do (the machine's path for this cancellation), told before the customer confirms."""
    path = policy.cancellation_path(purchase, get_settings(), utcnow())
    if path == "at_period_end":
        until = f"until {date(purchase.next_payment_at)}" if purchase.next_payment_at else "until its paid period ends"
        return f"Your subscription will stay active {until} and then end. You will not be charged again."
    if path == "now":
        return "Your subscription will end right away. You will not be charged again."
    return ("Your request will be sent to our billing team, who will handle it and email you. "
            "Until then, your subscription stays as it is.")


def _refund_preview(purchase: Purchase, payment: Any) -> str:
    if policy.refund_path(purchase, payment, get_settings(), utcnow()) == "now":
        return "The full remaining amount of this payment will be refunded to you right away."
    return "Your request will be sent to our billing team, who will handle it and email you."


def _cancel_outcome(purchase: Purchase, billing_request: Any) -> str:
    product = purchase.product
    if billing_request.outcome == "cancelled":
        return f"Your subscription to {product} is cancelled. You will not be charged again."
    if billing_request.outcome == "cancel_scheduled":
        return (f"Your subscription to {product} will end on {date(purchase.cancels_at)}. "
                "You will not be charged again.")
    if billing_request.outcome == "declined":
        return f"Your cancellation request for {product} was declined. Check your email for the reason."
    if billing_request.state == "ticketed":
        return (f"Your cancellation request for {product} was sent to our billing team as ticket "
                f"{billing_request.ticket_id}. We will email you when it is handled.")
    return f"Your cancellation request for {product} is being processed. Reload this page in a minute to see it."


def _refund_outcome(payment: Any, billing_request: Any) -> str:
    amount_cents = billing_request.amount_cents if billing_request.amount_cents is not None else payment.remaining_cents
    amount = money(format_amount(amount_cents), payment.currency)
    if billing_request.outcome in ("refunded", "partially_refunded"):
        return (f"Your payment was refunded: {amount} is on its way back to you. "
                "It can take a few days to show on your statement.")
    if billing_request.outcome == "declined":
        return "Your refund request was declined. Check your email for the reason."
    if billing_request.state == "ticketed":
        return (f"Your refund request was sent to our billing team as ticket {billing_request.ticket_id}. "
                "We will email you when it is handled.")
    return "Your refund request is being processed. Reload this page in a minute to see it."


@bp.route("/purchases/<order_id>/cancel", methods=["GET", "POST"])
def cancel(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    form = CancelForm(reasons=cancellation_reasons())
    if request.method == "POST":
        if form.validate_on_submit():
            billing_request = actions.cancel_purchase(lead.id, order_id, form.reason.data or "",
                                                      form.reason_choice.data or None)
            purchase = actions.own_purchase(lead.id, order_id)
            notify(_cancel_outcome(purchase, billing_request))
            return redirect(page_url("index"))
        status = 400
    else:
        status = 200
        actions.require_cancel_offered(purchase)
    return render(
        "confirm.html", status, lead=lead, form=form, kind="cancel", purchase=purchase,
        preview=_cancel_preview(purchase),
        error=CSRF_MESSAGE if csrf_failed(form) else None,
    )


@bp.route("/payments/<payment_id>/refund", methods=["GET", "POST"])
def refund(payment_id: str):
    lead = require_lead()
    purchase, payment = actions.own_payment(lead.id, payment_id)
    form = ReasonForm()
    if request.method == "POST":
        if form.validate_on_submit():
            billing_request = actions.refund_payment(lead.id, payment_id, form.reason.data or "")
            _purchase, payment = actions.own_payment(lead.id, payment_id)
            notify(_refund_outcome(payment, billing_request))
            return redirect(page_url("index"))
        status = 400
    else:
        status = 200
        actions.require_refund_offered(purchase, payment)
    preview = _refund_preview(purchase, payment)
    return render(
        "confirm.html", status, lead=lead, form=form, kind="refund", purchase=purchase, payment=payment,
        preview=preview, error=CSRF_MESSAGE if csrf_failed(form) else None,
    )

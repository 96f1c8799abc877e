"""What a logged-in customer may do, as plain functions the portal's pages and JSON API call.

Every function takes the logged-in lead's id and an order or payment ID and first finds it
among THAT lead's purchases (:mod:`.ownership`): another lead's order or payment is reported
exactly like one that does not exist (404). Whether an action may happen is the policy's answer
(:mod:`plugin.workflows.policy`), the same one that decides the page's ``actions``, so the server
refuses exactly what the page does not offer. Cards: :mod:`.cards` (re-exported here).
"""
from __future__ import annotations

from typing import Any

from ..db import db, utcnow
from ..errors import BillingError, Conflict
from ..ledger.models import Payment, Purchase
from ..ledger.schemas import Address
from ..ledger.service import charge_of
from ..ledger.settings import get_settings
from ..locking import lock_purchase
from ..notifications import enqueue
from ..presenters import payment_history_page, purchase_to_dict
from ..validation import free_text
from ..workflows import policy
from ..workflows.models import BillingRequest
from ..workflows.service import keep_subscription, submit_cancellation, submit_refund
from ..workflows.steps import scheduled_request
from .cards import (
    CARD_NOT_FOUND,
    add_card,
    card_to_dict,
    list_cards,
    remove_card,
    set_default_card,
)
from .ownership import (
    ORDER_NOT_FOUND,
    PAYMENT_NOT_FOUND,
    open_request_of,
    own_payment,
    own_purchase,
)

__all__ = [
    "CARD_NOT_FOUND", "ORDER_NOT_FOUND", "PAYMENT_NOT_FOUND", "add_card", "cancel_own_purchase", "cancel_purchase",
    "card_to_dict", "keep_own_subscription", "refund_own_payment", "require_resume_offered",
    "list_cards", "own_payment", "own_purchase", "payment_history", "present", "refund_payment",
    "remove_card", "require_cancel_offered", "require_refund_offered", "set_default_card",
    "update_billing_address",
]


def present(purchase: Purchase) -> dict[str, Any]:
    """The purchase as the customer's portal shows it."""
    return purchase_to_dict(purchase, for_customer=True)


def payment_history(lead_id: int, order_id: str, after: str | None = None) -> tuple[Purchase, dict[str, Any]]:
    """The lead's purchase and a page of its payments, newest first: ``{"payments", "next"}``.

    ``after`` None is the latest page, else the ``next`` cursor of the page before; a cursor that is
    not ours is InvalidInput (400 ``bad_cursor``). Another lead's order is NotFound, like elsewhere.
    """
    purchase = own_purchase(lead_id, order_id)
    return purchase, payment_history_page(purchase, after)


# -- cancellation and refund ----------------------------------------------------------------


def require_cancel_offered(purchase: Purchase) -> None:
    """Raise why "Cancel subscription" is not offered now (an open request included)."""
    settings = get_settings()
    request_open = open_request_of(purchase, "cancellation") is not None
    if not policy.can_cancel(purchase, settings, utcnow(), request_open=request_open):
        raise policy.cancel_refusal(settings, request_open=request_open)


def require_refund_offered(purchase: Purchase, payment: Payment) -> None:
    """Raise why "Request refund" is not offered for this payment now (an open request included)."""
    settings = get_settings()
    request_open = open_request_of(purchase, "refund", payment) is not None
    if not policy.can_refund(purchase, payment, settings, utcnow(), request_open=request_open):
        raise policy.refund_refusal(settings, request_open=request_open)


def cancel_purchase(lead_id: int, order_id: str, reason: Any = None, reason_choice: str | None = None) -> BillingRequest:
    """Ask to cancel the lead's subscription; returns the BillingRequest.

    Safe to repeat: while a request is open, a repeat answers with it. What the machine refuses is
    told in the portal's words (:func:`plugin.workflows.policy.cancel_refusal`).
    """
    return cancel_own_purchase(own_purchase(lead_id, order_id), reason, reason_choice)


def cancel_own_purchase(purchase: Purchase, reason: Any = None, reason_choice: str | None = None) -> BillingRequest:
    """:func:`cancel_purchase` for a purchase already found among the lead's (:func:`own_purchase`)."""
    return submit_cancellation(purchase, reason=free_text(reason, "reason"), reason_choice=reason_choice or None,
                               explain=_explained(policy.cancel_refusal))


def require_resume_offered(purchase: Purchase) -> None:
    """Raise why "Keep my subscription" is not offered now (nothing scheduled, too late, in flight)."""
    scheduled, now = scheduled_request(purchase.id), utcnow()
    if not policy.can_resume(purchase, scheduled, get_settings(), now):
        raise policy.resume_refusal(purchase, scheduled, now)


def keep_own_subscription(purchase: Purchase) -> Purchase:
    """Undo the scheduled cancellation of the lead's subscription (found with :func:`own_purchase`).

    Returns the purchase, active again. What the machine refuses (nothing to undo, already over, a
    resume in flight) is told in the portal's words; a processor failure changes nothing (503).
    """
    keep_subscription(purchase, explain=lambda p, scheduled, _error: policy.resume_refusal(p, scheduled, utcnow()))
    return own_purchase(purchase.lead_id, purchase.order_id)


def refund_payment(lead_id: int, payment_id: str, reason: Any = None) -> BillingRequest:
    """Ask for a refund of the full remaining amount of the lead's payment; returns the BillingRequest.

    Safe to repeat: while a request is open, a repeat answers with it.
    """
    _purchase, payment = own_payment(lead_id, payment_id)
    return refund_own_payment(payment, reason)


def refund_own_payment(payment: Payment, reason: Any = None) -> BillingRequest:
    """:func:`refund_payment` for a payment already found among the lead's (:func:`own_payment`)."""
    return submit_refund(payment, reason=free_text(reason, "reason"), explain=_explained(policy.refund_refusal))


def _explained(refusal: Any) -> Any:
    def explain(_machine_error: BillingError) -> BillingError:
        return refusal(get_settings(), request_open=False)

    return explain


# -- billing address -------------------------------------------------------------------------


def update_billing_address(lead_id: int, order_id: str, address: Address) -> Purchase:
    """Set the bill-to address of future invoices; past invoices keep the address they were made with."""
    purchase = own_purchase(lead_id, order_id)
    if not policy.can_change_address(purchase, get_settings()):
        raise Conflict(
            "The billing address can be changed only for an active subscription, which has future invoices. "
            "Contact support if an invoice you already have needs a correction.",
            code="address_change_not_available",
        )
    purchase = lock_purchase(purchase.id)
    purchase.billing_address = address.model_dump()
    purchase.amount_cents = charge_of(purchase)  # a VAT ID may reverse-charge the next payments
    enqueue("address_changed", purchase)
    db.session.commit()
    return purchase

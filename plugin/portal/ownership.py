"""Finding what is yours: a logged-in customer's purchases, payments and open requests.

Every portal action starts here with the logged-in lead's id: another lead's order or
payment is reported exactly like one that does not exist (:class:`NotFound`, 404).
"""
from __future__ import annotations

from sqlalchemy import select

from ..db import db
from ..errors import NotFound
from ..ledger.models import Payment, Purchase
from ..workflows.models import BillingRequest, open_slot

ORDER_NOT_FOUND = "We could not find that order among your purchases. Check the Order ID and try again."
PAYMENT_NOT_FOUND = "We could not find that payment among your purchases. Check the link and try again."


def own_purchase(lead_id: int, order_id: str) -> Purchase:
    """The lead's purchase ``order_id``; NotFound when it does not exist or is another lead's."""
    if not isinstance(order_id, str) or len(order_id) > 64:
        raise NotFound(ORDER_NOT_FOUND, code="order_not_found")
    purchase = db.session.execute(
        select(Purchase).where(Purchase.order_id == order_id, Purchase.lead_id == lead_id)
    ).scalar_one_or_none()
    if purchase is None:
        raise NotFound(ORDER_NOT_FOUND, code="order_not_found")
    return purchase


def own_payment(lead_id: int, payment_id: str) -> tuple[Purchase, Payment]:
    """The lead's payment ``payment_id`` with its purchase (one query); NotFound when it is not theirs."""
    if not isinstance(payment_id, str) or len(payment_id) > 64:
        raise NotFound(PAYMENT_NOT_FOUND, code="payment_not_found")
    row = db.session.execute(
        select(Purchase, Payment)
        .join(Payment, Payment.purchase_id == Purchase.id)
        .where(Payment.payment_id == payment_id, Purchase.lead_id == lead_id)
    ).one_or_none()
    if row is None:
        raise NotFound(PAYMENT_NOT_FOUND, code="payment_not_found")
    return row[0], row[1]


def open_request_of(purchase: Purchase, request_type: str, payment: Payment | None = None) -> BillingRequest | None:
    """The open request of this kind, if any (a retried submit answers with it, as the contract asks)."""
    slot = open_slot(request_type, purchase.id, payment.id if payment else None)
    return db.session.execute(
        select(BillingRequest).where(BillingRequest.open_slot == slot)
    ).scalar_one_or_none()

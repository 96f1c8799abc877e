"""The merchant's operations on the ledger, as a Python API: price points, orders, payments.

Hosts that sync orders in-process call these directly; the merchant HTTP API
(``plugin.api.admin``) validates with the same schemas and calls these too, so
both give the same answers and the same errors. Each write function takes its
schema model or a plain mapping (validated with :func:`plugin.validation.validate`),
commits its own transaction, and is idempotent: the same input twice leaves the
same rows. A function that fails rolls back and writes nothing.

The settings are :mod:`.settings` (re-exported here); what the merchant reads back
of an order is :func:`plugin.ledger.present.order_to_dict`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from ..db import db
from ..errors import Conflict, InvalidInput, NotFound
from ..invoices.issuing import issue_invoice
from ..locking import lock_purchase
from ..notifications import enqueue, queue_receipt
from ..validation import check_id, parse_amount
from .models import Lead, Payment, PaymentMethod, PricePoint, Purchase
from .periods import add_interval
from .schemas import CardMethodIn, OrderIn, PaymentIn, PricePointIn, validate
from .settings import SETTINGS_ID, get_settings, reverse_charged, settings_to_dict, update_settings
from .tax import TaxRule, charge_cents
from .transaction import one_transaction

__all__ = [
    "SETTINGS_ID", "charge_of", "check_id", "find_or_create_lead", "get_price_point", "get_purchase", "get_settings",
    "read_price_point", "record_payment", "settings_to_dict", "update_settings", "upsert_order",
    "upsert_price_point",
]


# -- price points ----------------------------------------------------------------------


@one_transaction
def upsert_price_point(code: str, data: PricePointIn | Mapping[str, Any]) -> tuple[PricePoint, bool]:
    """Create or replace the price point ``code``. Returns it and whether it was created."""
    check_id(code, "code")
    data = validate(PricePointIn, data)
    price = db.session.execute(select(PricePoint).where(PricePoint.code == code)).scalar_one_or_none()
    created = price is None
    if created:
        price = PricePoint(code=code)
        db.session.add(price)
    price.product = data.product
    price.amount_cents = parse_amount(data.amount, allow_zero=True)
    price.currency = data.currency
    price.interval = data.interval
    price.interval_count = data.interval_count if data.interval else 1
    price.cancellation = data.cancellation
    price.refund_window_days = data.refund_window_days
    price.tax = data.tax.model_dump() if data.tax is not None else None
    db.session.commit()
    return price, created


def charge_of(purchase: Purchase) -> int:
    """What the purchase charges its customer now: the price, plus exclusive tax unless reverse-charged
    (:mod:`.tax`), which depends on the bill-to address and the merchant's settings."""
    price = purchase.price_point
    with db.session.no_autoflush:  # the purchase may be new and not complete yet
        settings = get_settings()
    return charge_cents(price.amount_cents, TaxRule.from_dict(price.tax),
                        reverse_charged(purchase.billing_address, settings))


# -- leads and orders ------------------------------------------------------------------


def find_or_create_lead(email: str, first_name: str = "", last_name: str = "") -> Lead:
    """The lead with this email (case-insensitive, trimmed), created if new; names updated when given."""
    normalized = Lead.normalize_email(email)
    lead = db.session.execute(select(Lead).where(Lead.email_normalized == normalized)).scalar_one_or_none()
    if lead is None:
        lead = Lead(email=email.strip(), email_normalized=normalized, first_name=first_name, last_name=last_name)
        db.session.add(lead)
    if first_name:
        lead.first_name = first_name
    if last_name:
        lead.last_name = last_name
    return lead


def _apply_card(purchase: Purchase, card: CardMethodIn) -> None:
    methods = db.session.execute(
        select(PaymentMethod).where(PaymentMethod.purchase_id == purchase.id)
    ).scalars().all()
    match = next(
        (m for m in methods if (m.brand, m.last4, m.exp_month, m.exp_year)
         == (card.brand.lower(), card.last4, card.exp_month, card.exp_year)),
        None,
    )
    if match is None:
        match = PaymentMethod(
            purchase_id=purchase.id,
            type="card",
            processor_token=f"pm_import_{purchase.order_id}_{card.last4}_{card.exp_month}{card.exp_year}",
            brand=card.brand.lower(),
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )
        db.session.add(match)
    for method in methods:
        method.is_default = method is match
    match.is_default = True


def read_price_point(code: str) -> PricePoint:
    """The price point ``code``, or a 404 (for reading it back)."""
    check_id(code, "code")
    price = db.session.execute(select(PricePoint).where(PricePoint.code == code)).scalar_one_or_none()
    if price is None:
        raise NotFound(
            f"There is no price point {code!r}; create it first.",
            code="price_point_not_found",
        )
    return price


def get_price_point(code: str) -> PricePoint:
    """The price point ``code``; an unknown one is a 400 on ``price_point`` (orders name it)."""
    price = db.session.execute(select(PricePoint).where(PricePoint.code == code)).scalar_one_or_none()
    if price is None:
        raise InvalidInput(
            f"There is no price point {code!r}; create it before the orders that name it.",
            code="unknown_price_point",
            fields={"price_point": "unknown price point"},
        )
    return price


@one_transaction
def upsert_order(order_id: str, data: OrderIn | Mapping[str, Any]) -> tuple[Purchase, bool]:
    """Create or replace the purchase ``order_id``; the lead is found or created by email.

    Replacing keeps what the purchase has lived through (payments, status,
    cancellation) and replaces who bought it, the price point, the bill-to
    address and the payment method. Payments already made keep the bill-to
    address they were made with.
    """
    check_id(order_id, "order_id")
    data = validate(OrderIn, data)
    price = get_price_point(data.price_point)
    kind = "subscription" if price.is_recurring else "one_time"
    lead = find_or_create_lead(str(data.email), data.first_name, data.last_name)
    purchase = db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one_or_none()
    if purchase is not None:
        purchase = lock_purchase(purchase.id)  # replacing waits for money-moving steps on it
    created = purchase is None
    if created:
        purchase = Purchase(
            order_id=order_id,
            kind=kind,
            status="active" if kind == "subscription" else "paid",
            lock_version=0,
        )
        db.session.add(purchase)
    else:
        if purchase.kind != kind:
            has_payments = db.session.execute(
                select(Payment.id).where(Payment.purchase_id == purchase.id).limit(1)
            ).first()
            if has_payments:
                raise Conflict(
                    "This order already has payments; it cannot change between one-time and subscription.",
                    code="kind_change",
                )
            purchase.kind = kind
            purchase.status = "active" if kind == "subscription" else "paid"
    purchase.lead = lead
    purchase.price_point = price
    purchase.product = price.product
    purchase.currency = price.currency
    purchase.purchased_at = data.purchased_at
    purchase.billing_address = data.billing_address.model_dump()
    purchase.amount_cents = charge_of(purchase)
    if data.payment_method.type == "paypal":
        purchase.payment_type = "paypal"
        purchase.paypal_payer_email = str(data.payment_method.payer_email)
    else:
        purchase.payment_type = "card"
        purchase.paypal_payer_email = None
    db.session.flush()
    if data.payment_method.type == "card":
        _apply_card(purchase, data.payment_method)
    _refresh_next_payment(purchase)
    if created and data.send_confirmation:
        enqueue("purchase_confirmation", purchase)
    db.session.commit()
    return purchase, created


def _refresh_next_payment(purchase: Purchase) -> None:
    """A subscription's next payment follows from its last payment (or its start) and interval."""
    if purchase.kind != "subscription":
        purchase.next_payment_at = None
        return
    if purchase.status == "cancelled":
        purchase.next_payment_at = None
        return
    price = purchase.price_point
    last_paid = db.session.execute(
        select(Payment.paid_at).where(Payment.purchase_id == purchase.id).order_by(Payment.paid_at.desc()).limit(1)
    ).scalar_one_or_none()
    anchor = last_paid or purchase.purchased_at
    purchase.next_payment_at = add_interval(anchor, price.interval, price.interval_count)


def get_purchase(order_id: str) -> Purchase:
    """The purchase ``order_id``, or a 404."""
    check_id(order_id, "order_id")
    purchase = db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one_or_none()
    if purchase is None:
        raise NotFound(f"There is no order {order_id!r}.", code="order_not_found")
    return purchase


@one_transaction
def record_payment(order_id: str, data: PaymentIn | Mapping[str, Any], *, notify: bool = True) -> tuple[Payment, bool]:
    """Record a completed payment of ``order_id``. Returns it and whether it is new.

    A new payment queues the customer's receipt in the same transaction (``notify=False``: none, for
    imports and seeds of past payments; see :mod:`plugin.notifications.receipts`).

    The same payment_id twice is one payment; the same payment_id with another
    time or amount is a conflict (a different payment needs its own id). Takes
    the purchase's row lock first, so concurrent payments of one purchase see
    each other and its next payment date follows from the latest.
    """
    check_id(order_id, "order_id")
    data = validate(PaymentIn, data)
    purchase = lock_purchase(get_purchase(order_id).id)
    existing = db.session.execute(
        select(Payment).where(Payment.payment_id == data.payment_id)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.purchase_id != purchase.id:
            raise Conflict(
                f"Payment {data.payment_id!r} is already recorded on another order; "
                "give each payment its own payment_id.",
                code="payment_id_taken",
            )
        wanted = parse_amount(data.amount) if data.amount is not None else existing.amount_cents
        if existing.paid_at != data.paid_at or existing.amount_cents != wanted:
            raise Conflict(
                f"Payment {data.payment_id!r} is already recorded with another time or amount; "
                "a different payment needs its own payment_id.",
                code="payment_id_reused",
            )
        return existing, False
    if purchase.status == "cancelled" and purchase.cancelled_at and data.paid_at > purchase.cancelled_at:
        raise Conflict("This subscription is cancelled; no payment is taken after its cancellation.",
                       code="purchase_cancelled")
    if purchase.status == "cancel_scheduled" and purchase.cancels_at and data.paid_at >= purchase.cancels_at:
        raise Conflict("This subscription ends before that date; no payment is taken after it.",
                       code="purchase_cancelled")
    price = purchase.price_point
    purchase.amount_cents = charge_of(purchase)  # the tax rules or the customer's VAT ID may have changed
    amount = parse_amount(data.amount) if data.amount is not None else purchase.amount_cents
    if amount <= 0:
        raise InvalidInput("A payment must be more than zero.", fields={"amount": "must be more than 0"})
    payment = Payment(
        payment_id=data.payment_id,
        purchase_id=purchase.id,
        amount_cents=amount,
        currency=purchase.currency,
        paid_at=data.paid_at,
        status="paid",
        refunded_cents=0,
        bill_to=dict(purchase.billing_address or {}),
    )
    if purchase.kind == "subscription":
        payment.period_start = data.paid_at
        payment.period_end = add_interval(data.paid_at, price.interval, price.interval_count)
    db.session.add(payment)
    db.session.flush()
    invoice = issue_invoice(payment, purchase)  # numbered in this transaction: no gap, no repeat
    _refresh_next_payment(purchase)
    if notify:
        queue_receipt(purchase, payment, invoice)
    db.session.commit()
    return payment, True

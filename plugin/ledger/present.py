"""The merchant's view of ledger rows as JSON-ready dicts (contract section 3).

Money as two-place decimal strings with the currency, times as ISO 8601 UTC
with a ``Z`` (:func:`plugin.timefmt.iso_utc`). The customer's purchase form (P)
lives in ``plugin.presenters``; :func:`order_to_dict` adds the merchant's extras to it.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..db import db
from ..money import format_amount
from ..presenters import purchase_to_dict
from ..tickets.models import Ticket
from ..timefmt import iso_utc
from .models import Lead, Payment, PricePoint, Purchase

__all__ = ["order_to_dict", "payment_to_dict", "price_point_to_dict"]


def price_point_to_dict(price: PricePoint) -> dict[str, Any]:
    return {
        "code": price.code,
        "product": price.product,
        "amount": format_amount(price.amount_cents),
        "currency": price.currency,
        "interval": price.interval,
        "interval_count": price.interval_count,
        "cancellation": price.cancellation,
        "refund_window_days": price.refund_window_days,
        "tax": dict(price.tax) if price.tax else None,
    }


def payment_to_dict(payment: Payment, purchase: Purchase) -> dict[str, Any]:
    """A recorded payment, with the bill-to address it was invoiced to and the purchase's next date."""
    return {
        "payment_id": payment.payment_id,
        "order_id": purchase.order_id,
        "amount": format_amount(payment.amount_cents),
        "currency": payment.currency,
        "paid_at": iso_utc(payment.paid_at),
        "status": payment.status,
        "refunded_amount": format_amount(payment.refunded_cents),
        "period_start": iso_utc(payment.period_start),
        "period_end": iso_utc(payment.period_end),
        "bill_to": dict(payment.bill_to or {}),
        "next_payment_at": iso_utc(purchase.next_payment_at),
    }


def order_to_dict(purchase: Purchase) -> dict[str, Any]:
    """The purchase as the customer sees it (contract P, with its requests), plus the merchant's extras.

    Extras: ``price_point`` (its code), ``lead`` (email and names), each
    payment's ``bill_to`` (the address it was invoiced to) and ``tickets``
    (id, subject, department, status) opened for the purchase's requests.
    """
    data = purchase_to_dict(purchase)
    data["price_point"] = purchase.price_point.code
    lead = db.session.get(Lead, purchase.lead_id)
    data["lead"] = {"email": lead.email, "first_name": lead.first_name, "last_name": lead.last_name}
    bill_to = {
        payment_id: dict(address or {})
        for payment_id, address in db.session.execute(
            select(Payment.payment_id, Payment.bill_to).where(Payment.purchase_id == purchase.id)
        )
    }
    for payment in data.get("payments", []):
        payment["bill_to"] = bill_to.get(payment["payment_id"], {})
    tickets = db.session.execute(
        select(Ticket).where(Ticket.purchase_id == purchase.id).order_by(Ticket.id)
    ).scalars()
    data["tickets"] = [
        {
            "id": ticket.id,
            "subject": ticket.subject,
            "department": ticket.department.name,
            "status": ticket.status,
            "created_at": iso_utc(ticket.created_at),
        }
        for ticket in tickets
    ]
    return data

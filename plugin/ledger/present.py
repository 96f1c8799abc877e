"""The merchant's view of ledger rows as JSON-ready dicts (contract section 3).

Money as two-place decimal strings with the currency, times as ISO 8601 UTC
with a ``Z``. The customer's purchase form (P) lives in ``plugin.presenters``.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..money import format_amount
from .models import Payment, PricePoint, Purchase


def iso_utc(value: datetime | None) -> str | None:
    """``2026-11-26T10:00:00Z`` (whole seconds, as every JSON endpoint answers), or None."""
    if value is None:
        return None
    # isoformat, not strftime("%Y"): the year has its four digits on every platform
    return value.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


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

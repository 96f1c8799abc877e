"""Which payment's invoice a customer or an agent may download, and its PDF file.

Views translate HTTP; this module holds the rules: a customer sees only payments
of their own lead (anything else is "not found", never "not yours"); an agent sees
any payment.
"""
from __future__ import annotations

from pathlib import Path

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import contains_eager, joinedload

from ..db import db
from ..errors import NotFound
from ..ledger.models import Payment, Purchase
from .cache import pdf_for_html
from .content import invoice_html

NOT_FOUND_MESSAGE = "There is no such payment in your orders. Check the link, or open My Orders and try again."


def _payment_query(payment_id: str):
    return (
        select(Payment)
        .join(Payment.purchase)
        .options(contains_eager(Payment.purchase).joinedload(Purchase.lead))
        .where(Payment.payment_id == payment_id)
    )


def payment_for_lead(payment_id: str, lead_id: int) -> Payment:
    """The payment ``payment_id`` if it belongs to a purchase of ``lead_id``; else :class:`NotFound`."""
    payment = db.session.execute(
        _payment_query(payment_id).where(Purchase.lead_id == lead_id)
    ).scalar_one_or_none()
    if payment is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="payment_not_found")
    return payment


def payment_for_agent(payment_id: str) -> Payment:
    """Any payment, by its ID; else :class:`NotFound`."""
    payment = db.session.execute(_payment_query(payment_id)).scalar_one_or_none()
    if payment is None:
        raise NotFound(f"There is no payment {payment_id!r}.", code="payment_not_found")
    return payment


def invoice_file(payment: Payment) -> Path:
    """The invoice PDF of ``payment`` on disk (cached, or rendered now). Raises ``RenderError`` (503)."""
    return pdf_for_html(invoice_html(payment))


def invoice_url(payment_id: str, **kwargs) -> str:
    """The customer's download URL of a payment's invoice (for presenters' ``invoice_url``)."""
    return url_for("self_billing_invoices.customer_invoice", payment_id=payment_id, **kwargs)

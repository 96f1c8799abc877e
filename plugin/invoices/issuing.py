"""Issuing invoices and credit notes: number them and freeze what they show, in the caller's transaction.

- :func:`issue_invoice` runs inside :func:`plugin.ledger.service.record_payment`, so a payment
  and its invoice number commit together or not at all.
- :func:`issue_credit_note` runs inside the refund's recording (the request machine's
  ``record_refund``), for automatic and agent refunds, full and partial alike.
- :func:`issue_missing` numbers payments recorded before invoices were numbered, in order of
  payment time (``flask self-billing init-db`` runs it).

The frozen ``content`` is plain data (cents, ISO dates, the texts as they were): the seller as
the settings' profile or the configuration named them at that moment, the payment's own bill-to
snapshot (with the customer's VAT ID, if any), the lines, the tax split per rate
(:func:`plugin.ledger.tax.split`; a credit note's by :func:`~plugin.ledger.tax.credit_split`),
the totals, whether it is reverse-charged, and the locale. Rendering (:mod:`.content`) and the
embedded e-invoice (:mod:`.einvoice`) only format it.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import func, select

from ..addresses import address_lines
from ..db import db, utcnow
from ..ledger.models import Payment, Purchase, Refund
from ..ledger.settings import get_settings, reverse_charged, seller_profile
from ..ledger.tax import TaxRule, credit_split, split
from ..timefmt import iso_utc
from .documents import CreditNote, Invoice
from .numbering import next_number


def seller_block() -> dict[str, Any]:
    """The merchant as the document names them: the settings' seller profile, else the configuration, now
    (the logo stays the merchant's current one: it is branding, not content)."""
    return seller_profile()


def invoice_of(payment_id: int) -> Invoice | None:
    return db.session.execute(select(Invoice).where(Invoice.payment_id == payment_id)).scalar_one_or_none()


def issue_invoice(payment: Payment, purchase: Purchase) -> Invoice:
    """Issue the invoice of a payment that has none: numbered and frozen now. No commit.

    (A second one would fail the unique ``payment_id``: callers that cannot know ask :func:`invoice_of`.)
    """
    issued_at = utcnow()
    number = next_number("invoice", issued_at)
    settings = get_settings()
    seller = seller_profile(settings)
    bill_to = dict(payment.bill_to or {})
    rule = TaxRule.from_dict(purchase.price_point.tax)
    reverse = rule is not None and reverse_charged(bill_to, settings)
    tax = split(payment.amount_cents, rule, reverse)  # one line, so rounded once for the document
    locale = current_app.config.get("SELF_BILLING_LOCALE") or "en_US"
    content = {
        "number": number,
        "order_id": purchase.order_id,
        "payment_id": payment.payment_id,
        "issued_at": iso_utc(issued_at),
        "paid_at": iso_utc(payment.paid_at),
        "locale": locale,
        "seller": seller,
        "bill_to": bill_to,
        "bill_to_lines": address_lines(bill_to, locale),  # laid out once, as issued
        "currency": payment.currency,
        "lines": [{
            "description": purchase.product,
            "kind": purchase.kind,
            "period_start": iso_utc(payment.period_start) if purchase.kind == "subscription" else None,
            "period_end": iso_utc(payment.period_end) if purchase.kind == "subscription" else None,
            "amount_cents": payment.amount_cents,
            "net_cents": tax.net_cents,
            "tax_cents": tax.tax_cents,
            "tax": rule.as_dict() if rule else None,
        }],
        "taxes": tax.taxes,
        "net_cents": tax.net_cents,
        "tax_cents": tax.tax_cents,
        "total_cents": payment.amount_cents,
        "reverse_charge": tax.reverse_charge,
        "tax_note": tax.note,
    }
    invoice = Invoice(number=number, payment_id=payment.id, issued_at=issued_at, content=content)
    db.session.add(invoice)
    db.session.flush()
    return invoice


def issue_credit_note(refund: Refund, payment: Payment, purchase: Purchase, reason: str = "") -> CreditNote:
    """The refund's credit note, naming the invoice it corrects (issued now if the payment had none). No commit."""
    invoice = invoice_of(payment.id) or issue_invoice(payment, purchase)
    issued_at = utcnow()
    number = next_number("credit_note", issued_at)
    credited_before = db.session.execute(
        select(func.coalesce(func.sum(CreditNote.amount_cents), 0)).where(CreditNote.invoice_id == invoice.id)
    ).scalar_one()
    frozen = invoice.content
    tax = credit_split(refund.amount_cents, frozen.get("taxes") or [], frozen["total_cents"], credited_before,
                       bool(frozen.get("reverse_charge")))
    content = {
        "number": number,
        "invoice_number": invoice.number,
        "invoice_issued_at": invoice.content.get("issued_at"),
        "order_id": purchase.order_id,
        "payment_id": payment.payment_id,
        "issued_at": iso_utc(issued_at),
        "refunded_at": iso_utc(refund.refunded_at),
        "locale": invoice.content.get("locale") or current_app.config.get("SELF_BILLING_LOCALE") or "en_US",
        "seller": seller_block(),
        "bill_to": invoice.content.get("bill_to") or {},
        "bill_to_lines": invoice.content.get("bill_to_lines")
        or address_lines(invoice.content.get("bill_to"), invoice.content.get("locale") or "en_US"),
        "currency": refund.currency,
        "description": purchase.product,
        "amount_cents": refund.amount_cents,
        "taxes": tax.taxes,
        "net_cents": tax.net_cents,
        "tax_cents": tax.tax_cents,
        "reverse_charge": tax.reverse_charge,
        "tax_note": tax.note,
        "reason": reason or "",
    }
    note = CreditNote(number=number, invoice_id=invoice.id, refund_id=refund.id, amount_cents=refund.amount_cents,
                      currency=refund.currency, reason=reason or "", issued_at=issued_at, content=content)
    db.session.add(note)
    db.session.flush()
    return note


def issue_missing(batch: int = 500) -> int:
    """Invoice every payment that has none, oldest payment first, then credit-note its refunds; how many
    invoices were issued. Commits per batch; safe to run again (what has a document is skipped)."""
    issued = 0
    while True:
        rows = db.session.execute(
            select(Payment, Purchase).join(Purchase, Purchase.id == Payment.purchase_id)
            .outerjoin(Invoice, Invoice.payment_id == Payment.id).where(Invoice.id.is_(None))
            .order_by(Payment.paid_at, Payment.id).limit(batch)
        ).all()
        if not rows:
            break
        for payment, purchase in rows:
            issue_invoice(payment, purchase)
            for refund in db.session.execute(
                select(Refund).outerjoin(CreditNote, CreditNote.refund_id == Refund.id)
                .where(Refund.payment_id == payment.id, CreditNote.id.is_(None)).order_by(Refund.refunded_at, Refund.id)
            ).scalars():
                issue_credit_note(refund, payment, purchase)
            issued += 1
        db.session.commit()
    return issued

"""The payment receipt: one email for each payment the ledger records, queued in its transaction.

:func:`plugin.ledger.service.record_payment` calls :func:`queue_receipt` after it has issued the
payment's invoice and moved the subscription's next payment date, before it commits: the receipt
exists exactly when the payment does, and names the amount, the payment ID, the invoice number and
the next payment date (or the day a cancelled subscription ends).

A receipt is news. None is sent:

* when the caller says so (``record_payment(..., notify=False)``: a bulk import or a seed of
  payments the customer was told about when they happened);
* for a payment recorded more than :data:`NEWS_FOR` after it was paid: history being loaded
  (an import of past payments, a backfill through the merchant API), not a payment being made.
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..db import utcnow
from .outbox import enqueue

if TYPE_CHECKING:  # pragma: no cover
    from ..invoices.documents import Invoice
    from ..ledger.models import Payment, Purchase

#: A payment recorded later than this after it was paid gets no receipt: a nightly sync (a day late
#: at most) or a webhook retried for a day still sends one; an import of last month's payments does not.
NEWS_FOR = timedelta(days=2)


def is_news(payment: Payment) -> bool:
    """Whether the payment was made recently enough for a receipt to be news."""
    return payment.paid_at is not None and payment.paid_at >= utcnow() - NEWS_FOR


def queue_receipt(purchase: Purchase, payment: Payment, invoice: Invoice | None) -> bool:
    """Queue the receipt of a payment just recorded (no commit); False when it is not news."""
    if not is_news(payment):
        return False
    enqueue("payment_receipt", purchase, payment=payment,
            extra={"invoice_number": invoice.number if invoice is not None else None})
    return True

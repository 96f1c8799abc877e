"""Which invoice or credit note a customer or an agent may download, and its PDF file.

Views translate HTTP; this module holds the rules: a customer sees only documents
of their own lead (anything else is "not found", never "not yours"); an agent sees
any. A payment recorded before invoices were numbered gets its invoice on its first
download (``init-db`` numbers them all in order of payment time).

A repeat download should cost little more than reading the file. The file's name is
the hash of the document's HTML and XML (:mod:`.cache`), and making the HTML (Babel, the
template, hashing) costs far more than the one query that reads the document's frozen
content. So each app keeps, in memory, which cache key a given set of inputs
(:func:`.content.inputs_fingerprint`) rendered to; when the inputs are the same and
the file is still there, it is served without rendering the HTML. The template is the
one input the fingerprint cannot see: Flask loads it once unless templates auto-reload
(debug, ``TEMPLATES_AUTO_RELOAD``), and then this memo is not used.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from flask import current_app, url_for

from ..db import db
from ..errors import NotFound
from ..ledger.models import Payment
from ..locking import lock_purchase
from ..validation import is_valid_id
from .cache import cached_path, pdf_for_html
from .content import credit_note_html, find_credit_note, find_inputs, inputs_fingerprint, invoice_html
from .einvoice import credit_note_xml, invoice_xml
from .issuing import invoice_of, issue_invoice

NOT_FOUND_MESSAGE = "There is no such payment in your orders. Check the link, or open My Orders and try again."
NOTE_NOT_FOUND_MESSAGE = ("There is no such credit note in your orders. Check the link, or open My Orders "
                          "and try again.")

#: Fingerprints remembered per app (least recently used dropped first).
MEMO_SIZE = 4096
_memo_lock = threading.Lock()


def _memo() -> OrderedDict:
    return current_app.extensions["self_billing"].invoice_keys


def _pdf(kind: str, number: str, content: dict, html_of, xml_of) -> Path:
    """The document's PDF with its e-invoice XML: from the memo when its inputs rendered before and the
    file is there (the XML follows from the content alone)."""
    use_memo = not current_app.jinja_env.auto_reload
    fingerprint = inputs_fingerprint(kind, number, content) if use_memo else None
    if use_memo:
        memo = _memo()
        with _memo_lock:
            key = memo.get(fingerprint)
            if key is not None:
                memo.move_to_end(fingerprint)
        if key is not None:
            path = cached_path(key)
            if path is not None:
                return path
    path = pdf_for_html(html_of(content), xml_of(content))
    if use_memo:
        with _memo_lock:
            memo[fingerprint] = path.stem
            while len(memo) > MEMO_SIZE:
                memo.popitem(last=False)
    return path


def _find(payment_id: str, lead_id: int | None, on_session: bool):
    if on_session and db.session().in_transaction():
        # The customer's download has read the settings and the portal session through the request's
        # session, which holds its connection until the request ends: reading on it spares a second
        # connection (a pool checkout, and its reset, a round trip on PostgreSQL) on every download.
        return find_inputs(db.session.connection(), payment_id, lead_id)
    with db.engine.connect() as connection:
        return find_inputs(connection, payment_id, lead_id)


def _invoice_row(payment_id: str, lead_id: int | None, not_found: str, on_session: bool = False):
    """The payment's invoice row; a payment recorded before invoices were numbered is invoiced now.

    Read on a connection of its own (the committed ledger, back in the pool before wkhtmltopdf runs),
    or with ``on_session`` on the request's session when it already has a transaction and has written
    nothing (the customer's download: a GET that has only read).
    """
    row = _find(payment_id, lead_id, on_session)
    if row is None:
        raise NotFound(not_found, code="payment_not_found")
    if row.number is None:  # under the purchase's lock: two first downloads issue one invoice
        payment = db.session.get(Payment, row.payment_row_id)
        purchase = lock_purchase(payment.purchase_id)
        if invoice_of(payment.id) is None:
            issue_invoice(payment, purchase)
        db.session.commit()
        with db.engine.connect() as connection:
            row = find_inputs(connection, payment_id, lead_id)
    return row


def _invoice_path(payment_id: str, lead_id: int | None, not_found: str, on_session: bool = False) -> Path:
    if not is_valid_id(payment_id):  # no such payment can exist; spare the query
        raise NotFound(not_found, code="payment_not_found")
    row = _invoice_row(payment_id, lead_id, not_found, on_session)
    return _pdf("invoice", row.number, row.content, invoice_html, invoice_xml)


def _credit_note_path(number: str, lead_id: int | None, not_found: str) -> Path:
    if not isinstance(number, str) or not 0 < len(number) <= 60:
        raise NotFound(not_found, code="credit_note_not_found")
    with db.engine.connect() as connection:
        row = find_credit_note(connection, number, lead_id)
    if row is None:
        raise NotFound(not_found, code="credit_note_not_found")
    return _pdf("credit_note", row.number, row.content, credit_note_html, credit_note_xml)


def credit_note_for_lead(number: str, lead_id: int) -> Path:
    """The credit note PDF ``number`` if it is of a purchase of ``lead_id``; else :class:`NotFound`."""
    return _credit_note_path(number, lead_id, NOTE_NOT_FOUND_MESSAGE)


def credit_note_for_agent(number: str) -> Path:
    """Any credit note's PDF; else :class:`NotFound`."""
    return _credit_note_path(number, None, f"There is no credit note {number!r}.")


def invoice_for_lead(payment_id: str, lead_id: int) -> Path:
    """The invoice PDF of ``payment_id`` if it belongs to a purchase of ``lead_id``; else :class:`NotFound`.

    Raises ``RenderError`` (503) when it must be rendered and cannot be.
    """
    return _invoice_path(payment_id, lead_id, NOT_FOUND_MESSAGE, on_session=True)


def invoice_for_agent(payment_id: str) -> Path:
    """The invoice PDF of any payment; else :class:`NotFound`. Raises ``RenderError`` (503)."""
    return _invoice_path(payment_id, None, f"There is no payment {payment_id!r}.")


def invoice_file(payment: Payment) -> Path:
    """The invoice PDF of a payment (for other parts of the plugin, e.g. an email attachment).

    It reads the committed ledger: commit a refund before asking for the invoice that shows it.
    """
    return invoice_for_agent(payment.payment_id)


def credit_note_url(number: str, **kwargs) -> str:
    """The customer's download URL of a credit note."""
    return url_for("self_billing_invoices.customer_credit_note", number=number, **kwargs)


def invoice_url(payment_id: str, **kwargs) -> str:
    """The customer's download URL of a payment's invoice (for presenters' ``invoice_url``)."""
    return url_for("self_billing_invoices.customer_invoice", payment_id=payment_id, **kwargs)

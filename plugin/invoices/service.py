"""Which payment's invoice a customer or an agent may download, and its PDF file.

Views translate HTTP; this module holds the rules: a customer sees only payments
of their own lead (anything else is "not found", never "not yours"); an agent sees
any payment.

A repeat download should cost little more than reading the file. The file's name is
the hash of the invoice's HTML (:mod:`.cache`), and making the HTML (refunds query,
Babel, the template, hashing) costs far more than the one query that reads the
invoice's inputs. So each app keeps, in memory, which cache key a given set of inputs
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
from ..ledger.schemas import is_valid_id
from .cache import cached_path, pdf_for_html
from .content import find_inputs, inputs_fingerprint, invoice_html

NOT_FOUND_MESSAGE = "There is no such payment in your orders. Check the link, or open My Orders and try again."

#: Fingerprints remembered per app (least recently used dropped first).
MEMO_SIZE = 4096
_memo_lock = threading.Lock()


def _memo() -> OrderedDict:
    return current_app.extensions["self_billing"].invoice_keys


def _invoice_path(payment_id: str, lead_id: int | None, not_found: str) -> Path:
    """Find the inputs, answer from the memo when it can, else make the HTML and get its PDF.

    The ledger is read on a connection of its own, in one snapshot, and that connection
    goes back to the pool before wkhtmltopdf runs.
    """
    if not is_valid_id(payment_id):  # no such payment can exist; spare the query
        raise NotFound(not_found, code="payment_not_found")
    use_memo = not current_app.jinja_env.auto_reload
    with db.engine.connect() as connection:
        inputs = find_inputs(connection, payment_id, lead_id)
        if inputs is None:
            raise NotFound(not_found, code="payment_not_found")
        if use_memo:
            fingerprint = inputs_fingerprint(inputs)
            memo = _memo()
            with _memo_lock:
                key = memo.get(fingerprint)
                if key is not None:
                    memo.move_to_end(fingerprint)
            if key is not None:
                path = cached_path(key)
                if path is not None:
                    return path
        html = invoice_html(inputs, connection)
    path = pdf_for_html(html)
    if use_memo:
        with _memo_lock:
            memo[fingerprint] = path.stem
            while len(memo) > MEMO_SIZE:
                memo.popitem(last=False)
    return path


def invoice_for_lead(payment_id: str, lead_id: int) -> Path:
    """The invoice PDF of ``payment_id`` if it belongs to a purchase of ``lead_id``; else :class:`NotFound`.

    Raises ``RenderError`` (503) when it must be rendered and cannot be.
    """
    return _invoice_path(payment_id, lead_id, NOT_FOUND_MESSAGE)


def invoice_for_agent(payment_id: str) -> Path:
    """The invoice PDF of any payment; else :class:`NotFound`. Raises ``RenderError`` (503)."""
    return _invoice_path(payment_id, None, f"There is no payment {payment_id!r}.")


def invoice_file(payment: Payment) -> Path:
    """The invoice PDF of a payment (for other parts of the plugin, e.g. an email attachment).

    It reads the committed ledger: commit a refund before asking for the invoice that shows it.
    """
    return invoice_for_agent(payment.payment_id)


def invoice_url(payment_id: str, **kwargs) -> str:
    """The customer's download URL of a payment's invoice (for presenters' ``invoice_url``)."""
    return url_for("self_billing_invoices.customer_invoice", payment_id=payment_id, **kwargs)

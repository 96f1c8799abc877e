"""What an invoice says: the template's context for one payment, and its HTML.

Everything shown comes from the ledger as it was for that payment: "Bill to" is
the payment's own ``bill_to`` snapshot (an address changed later shows on later
invoices only), the period is the payment's, refunds are its :class:`Refund` rows.
Amounts and dates are formatted with Babel in ``SELF_BILLING_LOCALE``. The merchant
block comes from configuration; the logo file is read and embedded as a ``data:``
URI, so wkhtmltopdf needs neither file nor network access.

The HTML is rendered from ``self_billing/invoice/invoice.html`` with Flask's
autoescaping, so a host can override the template and customer-entered text is
always text. Nothing in it depends on the clock, so the same ledger rows give the
same HTML (and the same cache key).
"""
from __future__ import annotations

import base64
import json
import logging
import mimetypes
import os
import threading
from datetime import datetime
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from flask import current_app, render_template
from sqlalchemy import Connection, Row, bindparam, select

from ..ledger.models import Payment, Purchase, Refund
from ..money import format_money

log = logging.getLogger(__name__)

TEMPLATE = "self_billing/invoice/invoice.html"

#: Image types a logo may have (anything else is logged and left out).
LOGO_TYPES = {"image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp"}
#: Largest logo file embedded, in bytes.
LOGO_MAX_BYTES = 1024 * 1024

STATUS_LABELS = {"paid": "Paid", "refunded": "Refunded", "partially_refunded": "Partially refunded"}


def invoice_number(payment_id: str) -> str:
    """The invoice number of a payment: derived from its payment ID, so it never changes."""
    return f"INV-{payment_id}"


# -- logo ------------------------------------------------------------------------------------

_logo_lock = threading.Lock()
_logo_cache: dict[tuple[str, int, int], str] = {}


def logo_data_uri(path: str | None) -> str | None:
    """The logo file as a ``data:`` URI, or None (with an error in the log) when it cannot be used."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError as exc:
        log.error(
            "Invoice logo: SELF_BILLING_MERCHANT_LOGO_PATH=%r cannot be read (%s); "
            "invoices are made without a logo until it is fixed.",
            path,
            exc.strerror or exc,
        )
        return None
    stamp = (path, stat.st_mtime_ns, stat.st_size)
    with _logo_lock:
        cached = _logo_cache.get(stamp)
    if cached is not None:
        return cached
    mimetype = mimetypes.guess_type(path)[0]
    if mimetype not in LOGO_TYPES:
        log.error(
            "Invoice logo: SELF_BILLING_MERCHANT_LOGO_PATH=%r is not a PNG, JPEG, GIF, SVG or WebP file; "
            "invoices are made without a logo.",
            path,
        )
        return None
    if stat.st_size > LOGO_MAX_BYTES:
        log.error(
            "Invoice logo: SELF_BILLING_MERCHANT_LOGO_PATH=%r is larger than %d bytes; "
            "invoices are made without a logo. Use a smaller image.",
            path,
            LOGO_MAX_BYTES,
        )
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        log.error("Invoice logo: SELF_BILLING_MERCHANT_LOGO_PATH=%r cannot be read (%s).", path, exc)
        return None
    uri = f"data:{mimetype};base64,{base64.b64encode(data).decode('ascii')}"
    with _logo_lock:
        _logo_cache.clear()  # one logo at a time; an edited file replaces the old entry
        _logo_cache[stamp] = uri
    return uri


# -- merchant ---------------------------------------------------------------------------------


def _lines(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        items = value.splitlines()
    else:
        items = [str(item) for item in value]
    return [line.strip() for line in items if line and line.strip()]


def merchant_block() -> dict[str, Any]:
    config = current_app.config
    return {
        "name": config.get("SELF_BILLING_MERCHANT_NAME") or "",
        "address_lines": _lines(config.get("SELF_BILLING_MERCHANT_ADDRESS")),
        "tax_id": config.get("SELF_BILLING_MERCHANT_TAX_ID") or "",
        "email": config.get("SELF_BILLING_MERCHANT_EMAIL") or "",
        "logo": logo_data_uri(config.get("SELF_BILLING_MERCHANT_LOGO_PATH")),
    }


# -- the payment ------------------------------------------------------------------------------


def _locale() -> str:
    name = current_app.config.get("SELF_BILLING_LOCALE") or "en_US"
    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        log.error("SELF_BILLING_LOCALE=%r is not a locale Babel knows; using en_US.", name)
        return "en_US"
    return name


def _date(value: datetime | None, locale: str) -> str:
    return format_date(value.date(), format="medium", locale=locale) if value else ""


def _bill_to(snapshot: dict[str, Any] | None, locale: str) -> dict[str, Any]:
    """The payment's bill-to snapshot as display lines (every value is text, escaped by the template)."""
    snapshot = snapshot or {}

    def field(name: str) -> str:
        return str(snapshot.get(name) or "").strip()

    city_line = ", ".join(part for part in (field("city"), field("region")) if part)
    city_line = " ".join(part for part in (city_line, field("postal_code")) if part)
    code = field("country")
    country = Locale.parse(locale).territories.get(code.upper(), code) if code else ""
    lines = [field("line1"), field("line2"), city_line, country]
    return {"name": field("name"), "lines": [line for line in lines if line]}


#: Every ledger value an invoice shows, in one query: the payment and what it paid for.
#: (Refunds are read only when the payment has some.) Bind ``payment_id``; add a lead filter with
#: :func:`inputs_statement`.
_COLUMNS = (
    Payment.id, Payment.payment_id, Payment.amount_cents, Payment.currency, Payment.paid_at,
    Payment.refunded_cents, Payment.bill_to, Payment.period_start, Payment.period_end,
    Purchase.order_id, Purchase.product, Purchase.kind,
)
_ANY_LEAD = (
    select(*_COLUMNS)
    .join(Purchase, Purchase.id == Payment.purchase_id)
    .where(Payment.payment_id == bindparam("payment_id"))
)
_ONE_LEAD = _ANY_LEAD.where(Purchase.lead_id == bindparam("lead_id"))


def find_inputs(connection: Connection, payment_id: str, lead_id: int | None = None) -> Row | None:
    """The invoice's ledger inputs of ``payment_id`` (only among ``lead_id``'s purchases when given), or None.

    A plain Core query: it runs on every download, cached or not.
    """
    if lead_id is None:
        return connection.execute(_ANY_LEAD, {"payment_id": payment_id}).first()
    return connection.execute(_ONE_LEAD, {"payment_id": payment_id, "lead_id": lead_id}).first()


def invoice_context(inputs: Row, connection: Connection) -> dict[str, Any]:
    """Everything the invoice template shows, from :func:`find_inputs`' row (read on ``connection``)."""
    locale = _locale()
    currency = inputs.currency
    refunded_cents = inputs.refunded_cents  # the running total, kept with the Refund rows
    refunds = []
    if refunded_cents > 0:
        refunds = connection.execute(
            select(Refund.amount_cents, Refund.refunded_at)
            .where(Refund.payment_id == inputs.id)
            .order_by(Refund.refunded_at, Refund.id)
        ).all()

    def money(cents: int) -> str:
        return format_money(cents, currency, locale)

    period = None
    if inputs.kind == "subscription" and inputs.period_start and inputs.period_end:
        period = {"start": _date(inputs.period_start, locale), "end": _date(inputs.period_end, locale)}
    if refunded_cents <= 0:
        status = "paid"
    elif refunded_cents >= inputs.amount_cents:
        status = "refunded"
    else:
        status = "partially_refunded"
    return {
        "order_id": inputs.order_id,
        "invoice_number": invoice_number(inputs.payment_id),
        "payment_id": inputs.payment_id,
        "issue_date": _date(inputs.paid_at, locale),
        "paid_date": _date(inputs.paid_at, locale),
        "merchant": merchant_block(),
        "bill_to": _bill_to(inputs.bill_to, locale),
        "item": {
            "product": inputs.product,
            "kind": inputs.kind,
            "period": period,
            "amount": money(inputs.amount_cents),
        },
        "currency": currency,
        "total": money(inputs.amount_cents),
        "status": status,
        "status_label": STATUS_LABELS[status],
        "refunds": [{"amount": money(r.amount_cents), "date": _date(r.refunded_at, locale)} for r in refunds],
        "refunded_total": money(refunded_cents),
        "remaining": money(max(inputs.amount_cents - refunded_cents, 0)),
        "locale": locale,
    }


def invoice_html(inputs: Row, connection: Connection) -> str:
    """The invoice as HTML (the overridable template, autoescaped), from :func:`find_inputs`' row."""
    return render_template(TEMPLATE, **invoice_context(inputs, connection))


def inputs_fingerprint(inputs: Row) -> tuple:
    """Everything the HTML follows from, as a hashable value: the ledger row, the merchant's
    settings, the locale and the logo file's identity. Equal fingerprints give equal HTML as long
    as the template does not change (see :mod:`plugin.invoices.service`)."""
    config = current_app.config
    logo_path = config.get("SELF_BILLING_MERCHANT_LOGO_PATH")
    logo_stamp: tuple = ()
    if logo_path:
        try:
            st = os.stat(logo_path)
            logo_stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            logo_stamp = ("missing",)
    row = tuple(
        json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value
        for value in inputs
    )
    return (
        row,
        config.get("SELF_BILLING_LOCALE"),
        config.get("SELF_BILLING_MERCHANT_NAME"),
        str(config.get("SELF_BILLING_MERCHANT_ADDRESS")),
        config.get("SELF_BILLING_MERCHANT_TAX_ID"),
        config.get("SELF_BILLING_MERCHANT_EMAIL"),
        logo_path,
        logo_stamp,
    )

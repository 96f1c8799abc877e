"""What an invoice or a credit note says: the template's context, and its HTML.

Everything shown is the document's frozen ``content`` (:mod:`.issuing`): the number,
the seller and "Bill to" as they were when it was issued, its lines and totals, its
locale. A refund, an address change or new merchant settings change later documents
only; an issued one reads the same forever. Amounts and dates are formatted with
Babel in the document's locale. The logo (branding, not content) is the merchant's
current file, embedded as a ``data:`` URI, so wkhtmltopdf needs neither file nor
network access.

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
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_percent
from flask import current_app, render_template
from sqlalchemy import Connection, Row, bindparam, select

from ..db import db
from ..ledger.models import Payment, Purchase, Settings
from ..ledger.settings import SETTINGS_ID, logo_writes
from ..money import format_money
from .documents import CreditNote, Invoice

log = logging.getLogger(__name__)

TEMPLATE = "self_billing/invoice/invoice.html"
CREDIT_NOTE_TEMPLATE = "self_billing/invoice/credit_note.html"

#: Image types a logo may have (anything else is logged and left out).
LOGO_TYPES = {"image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp"}
#: Largest logo file embedded, in bytes.
LOGO_MAX_BYTES = 1024 * 1024

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


#: How long a process trusts the logo it read from the settings, in seconds: a logo uploaded through
#: the settings API shows on documents rendered after at most this long (at once in the process that
#: took the upload).
SETTINGS_LOGO_TTL = 5.0
_settings_logo: dict[str, Any] = {"read_at": None, "writes": -1, "sha": "", "uri": ""}


def settings_logo() -> tuple[str, str]:
    """The logo set through the merchant settings API, as (SHA-256, data URI); ("", "") when none.

    Read on a connection of its own (no session is held across wkhtmltopdf), at most once per
    :data:`SETTINGS_LOGO_TTL` per process, and the image itself only when its hash changed.
    """
    now = time.monotonic()
    with _logo_lock:
        read_at, writes = _settings_logo["read_at"], logo_writes()
        if read_at is not None and now - read_at < SETTINGS_LOGO_TTL and _settings_logo["writes"] == writes:
            return _settings_logo["sha"], _settings_logo["uri"]
    table = Settings.__table__
    with db.engine.connect() as connection:
        sha = connection.execute(select(table.c.logo_sha).where(table.c.id == SETTINGS_ID)).scalar() or ""
        uri = _settings_logo["uri"] if sha == _settings_logo["sha"] else (
            connection.execute(select(table.c.logo).where(table.c.id == SETTINGS_ID)).scalar() or "" if sha else "")
    with _logo_lock:
        _settings_logo.update(read_at=now, writes=writes, sha=sha, uri=uri)
    return sha, uri


def current_logo() -> str | None:
    """The logo documents show now: the settings' one, else ``SELF_BILLING_MERCHANT_LOGO_PATH``'s."""
    _, uri = settings_logo()
    return uri or logo_data_uri(current_app.config.get("SELF_BILLING_MERCHANT_LOGO_PATH"))



# -- the payment ------------------------------------------------------------------------------


def _locale(name: str | None) -> str:
    name = name or current_app.config.get("SELF_BILLING_LOCALE") or "en_US"
    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        log.error("SELF_BILLING_LOCALE=%r is not a locale Babel knows; using en_US.", name)
        return "en_US"
    return name


def _date(value: datetime | str | None, locale: str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return format_date(value.date(), format="medium", locale=locale) if value else ""


def _bill_to(content: dict[str, Any], locale: str) -> dict[str, Any]:
    """The document's bill-to as display lines: as laid out when it was issued (``bill_to_lines``, the
    country's postal format), or, for documents issued before that, the layout they were issued with."""
    snapshot = content.get("bill_to") or {}

    def field(name: str) -> str:
        return str(snapshot.get(name) or "").strip()

    lines = content.get("bill_to_lines")
    if lines is None:  # issued before addresses were laid out per country: their own old layout
        city_line = ", ".join(part for part in (field("city"), field("region")) if part)
        city_line = " ".join(part for part in (city_line, field("postal_code")) if part)
        code = field("country")
        country = Locale.parse(locale).territories.get(code.upper(), code) if code else ""
        lines = [line for line in (field("line1"), field("line2"), city_line, country) if line]
    return {"name": field("name"), "lines": [str(line) for line in lines], "vat_id": field("vat_id")}


def _percent(rate: str, locale: str) -> str:
    return format_percent(Decimal(rate) / 100, format="#,##0.##%", locale=locale)


def _taxes(content: dict[str, Any], money: Any, locale: str) -> dict[str, Any]:
    """The document's tax summary: one row per rate (net, tax, gross), the totals, and the reverse-charge
    wording. A document without tax (no rule on the price, or issued before taxes) has no rows."""
    rows = []
    for entry in content.get("taxes") or []:
        label = f"{entry['name']} {_percent(entry['rate'], locale)}"
        if entry.get("category") == "AE":
            label += " (reverse charge)"
        rows.append({"label": label, "net": money(entry["net_cents"]), "tax": money(entry["tax_cents"]),
                     "gross": money(entry["gross_cents"])})
    return {
        "taxes": rows,
        "tax_name": (content.get("taxes") or [{}])[0].get("name", "Tax"),
        "net_total": money(content.get("net_cents", 0)),
        "tax_total": money(content.get("tax_cents", 0)),
        "tax_note": content.get("tax_note") or "",
    }


#: The invoice of a payment with what decides who may see it, in one query. Bind ``payment_id``; the
#: lead filter is added for customers. ``number`` is None for a payment not invoiced yet.
_COLUMNS = (Payment.id.label("payment_row_id"), Payment.payment_id, Purchase.lead_id, Invoice.number,
            Invoice.content)
_ANY_LEAD = (
    select(*_COLUMNS)
    .join(Purchase, Purchase.id == Payment.purchase_id)
    .outerjoin(Invoice, Invoice.payment_id == Payment.id)
    .where(Payment.payment_id == bindparam("payment_id"))
)
_ONE_LEAD = _ANY_LEAD.where(Purchase.lead_id == bindparam("lead_id"))

_NOTE_ANY_LEAD = (
    select(CreditNote.number, CreditNote.content, Purchase.lead_id)
    .join(Invoice, Invoice.id == CreditNote.invoice_id)
    .join(Payment, Payment.id == Invoice.payment_id)
    .join(Purchase, Purchase.id == Payment.purchase_id)
    .where(CreditNote.number == bindparam("number"))
)
_NOTE_ONE_LEAD = _NOTE_ANY_LEAD.where(Purchase.lead_id == bindparam("lead_id"))


def find_inputs(connection: Connection, payment_id: str, lead_id: int | None = None) -> Row | None:
    """The payment's invoice row (only among ``lead_id``'s purchases when given), or None.

    A plain Core query: it runs on every download, cached or not.
    """
    if lead_id is None:
        return connection.execute(_ANY_LEAD, {"payment_id": payment_id}).first()
    return connection.execute(_ONE_LEAD, {"payment_id": payment_id, "lead_id": lead_id}).first()


def find_credit_note(connection: Connection, number: str, lead_id: int | None = None) -> Row | None:
    """The credit note ``number`` (only among ``lead_id``'s purchases when given), or None."""
    if lead_id is None:
        return connection.execute(_NOTE_ANY_LEAD, {"number": number}).first()
    return connection.execute(_NOTE_ONE_LEAD, {"number": number, "lead_id": lead_id}).first()


def _common(content: dict[str, Any], locale: str) -> dict[str, Any]:
    """What every document shows alike: the parties, its references and date, as frozen; the logo is
    the merchant's current one (branding, not content)."""
    logo = current_logo()
    return {
        "order_id": content["order_id"],
        "payment_id": content["payment_id"],
        "issue_date": _date(content.get("issued_at"), locale),
        "merchant": {**(content.get("seller") or {}), "logo": logo},
        "bill_to": _bill_to(content, locale),
        "currency": content["currency"],
        "locale": locale,
    }


def invoice_context(content: dict[str, Any]) -> dict[str, Any]:
    """Everything the invoice template shows, from the invoice's frozen content."""
    locale = _locale(content.get("locale"))
    currency = content["currency"]

    def money(cents: int) -> str:
        return format_money(cents, currency, locale)

    lines = []
    for line in content.get("lines", []):
        period = None
        if line.get("period_start") and line.get("period_end"):
            period = {"start": _date(line["period_start"], locale), "end": _date(line["period_end"], locale)}
        lines.append({"product": line["description"], "kind": line.get("kind"), "period": period,
                      "amount": money(line["amount_cents"])})
    return {
        **_common(content, locale),
        "invoice_number": content["number"],
        "paid_date": _date(content.get("paid_at"), locale),
        "items": lines,
        "item": lines[0] if lines else None,  # the first line, for templates written before items
        "total": money(content["total_cents"]),
        **_taxes(content, money, locale),
    }


def credit_note_context(content: dict[str, Any]) -> dict[str, Any]:
    """Everything the credit note template shows, from its frozen content."""
    locale = _locale(content.get("locale"))

    def money(cents: int) -> str:
        return format_money(cents, content["currency"], locale)

    return {
        **_common(content, locale),
        **_taxes(content, money, locale),
        "credit_note_number": content["number"],
        "invoice_number": content["invoice_number"],
        "invoice_date": _date(content.get("invoice_issued_at"), locale),
        "refund_date": _date(content.get("refunded_at"), locale),
        "description": content.get("description") or "",
        "amount": money(content["amount_cents"]),
        "reason": content.get("reason") or "",
    }


def invoice_html(content: dict[str, Any]) -> str:
    """The invoice as HTML (the overridable template, autoescaped)."""
    return render_template(TEMPLATE, **invoice_context(content))


def credit_note_html(content: dict[str, Any]) -> str:
    """The credit note as HTML (the overridable template, autoescaped)."""
    return render_template(CREDIT_NOTE_TEMPLATE, **credit_note_context(content))


def inputs_fingerprint(kind: str, number: str, content: dict[str, Any]) -> tuple:
    """Everything a document's HTML follows from, as a hashable value: its frozen content and the
    logo file's identity. Equal fingerprints give equal HTML as long as the template does not change
    (see :mod:`plugin.invoices.service`)."""
    logo_path = current_app.config.get("SELF_BILLING_MERCHANT_LOGO_PATH")
    logo_stamp: tuple = ()
    if logo_path:
        try:
            st = os.stat(logo_path)
            logo_stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            logo_stamp = ("missing",)
    return (kind, number, json.dumps(content, sort_keys=True, default=str), settings_logo()[0], logo_path,
            logo_stamp)

"""What each payment row of a portal page says, worked out in Python once per page.

My Orders shows a few payments of every purchase, and a lead may have many purchases: a row
costs a Jinja macro, four filters, an icon macro per control and a ``url_for`` when the
template works it out itself. :func:`payment_rows` gives the template each row's words and
links ready to print (the same words the filters of :mod:`.display` give), with one locale
lookup and one URL template per page, so a row costs what printing it costs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from flask import current_app

from ..timefmt import iso_utc
from .display import _date_text, _money_text, status


@dataclass(frozen=True, slots=True)
class PaymentRowView:
    """One payment row as a person reads it (``window`` None: the refund window has ended)."""

    paid_at: str
    date: str
    payment_id: str
    amount: str
    status: str
    refund_requested: bool
    refunded: str
    window: str | None
    invoice_url: str | None
    credit_notes: tuple[tuple[str, str], ...]
    refund_url: str | None


class PaymentRows:
    """A page's maker of :class:`PaymentRowView` (the template calls it as ``sb_payment_rows(payments)``)."""

    _locale: str
    _now: str

    def __init__(self, page_url: Callable[..., str]) -> None:
        #: the pages' own URL builder (:func:`.pages.page_url`, one template per endpoint per request)
        self._page_url = page_url
        self._ready = False  # most pages show no payment: nothing is looked up until one asks

    def __call__(self, payments: Iterable[dict[str, Any]]) -> list[PaymentRowView]:
        if not self._ready:
            self._locale = current_app.config.get("SELF_BILLING_LOCALE", "en_US")
            self._now = iso_utc(datetime.now(timezone.utc)) or ""
            self._ready = True
        return [self._row(pay) for pay in payments]

    def _row(self, pay: dict[str, Any]) -> PaymentRowView:
        locale, currency = self._locale, pay["currency"]
        refunded = pay.get("refunded_amount")
        until = pay.get("refundable_until")
        actions = pay.get("actions", {})
        return PaymentRowView(
            paid_at=pay["paid_at"],
            date=_date_text(pay["paid_at"], "medium", locale),
            payment_id=pay["payment_id"],
            amount=_money_text(pay["amount"], currency, locale),
            status=status(pay["status"]),
            refund_requested=bool(pay.get("refund_requested")),
            refunded=_money_text(refunded, currency, locale) if refunded and refunded != "0.00" else "",
            # ISO 8601 UTC strings of one shape compare as the times they write
            window=_date_text(until, "medium", locale) if until and until > self._now else None,
            invoice_url=pay["invoice_url"] if actions.get("invoice") else None,
            credit_notes=tuple((note["url"], note["number"]) for note in pay.get("credit_notes", [])),
            refund_url=self._page_url("refund", payment_id=pay["payment_id"]) if actions.get("refund") else None,
        )

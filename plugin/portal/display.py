"""Amounts and dates for people, with Babel, as Jinja filters of the portal's templates.

The JSON objects (contract P and R) carry decimal strings and ISO 8601 UTC
times; these filters turn them into ``$49.00`` and ``Nov 1, 2026`` in
``SELF_BILLING_LOCALE``.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from flask import current_app

from ..addresses import address_lines, country_name
from ..money import format_money, to_cents

_INTERVALS = {"day": ("day", "days"), "week": ("week", "weeks"), "month": ("month", "months"), "year": ("year", "years")}
_STATUS = {
    "paid": "Paid",
    "refunded": "Refunded",
    "partially_refunded": "Partially refunded",
    "active": "Active",
    "cancel_scheduled": "Cancellation scheduled",
    "cancelled": "Cancelled",
}
_BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "discover": "Discover"}


def _locale() -> str:
    return current_app.config.get("SELF_BILLING_LOCALE", "en_US")


# A page shows many payments with a handful of distinct amounts: format each once.
@lru_cache(maxsize=4096)
def _money_text(amount: str, currency: str, locale: str) -> str:
    return format_money(to_cents(amount), currency, locale)


@lru_cache(maxsize=16)
def _babel_locale(locale: str) -> Locale:
    return Locale.parse(locale)


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def money(amount: str | None, currency: str) -> str:
    """``"49.00", "USD"`` -> ``$49.00`` in the configured locale."""
    if amount is None:
        return ""
    return _money_text(amount, currency, _locale())


def date(value: str | datetime | None, style: str = "medium") -> str:
    if isinstance(value, str):
        return _date_text(value, style, _locale())
    moment = parse_time(value)
    return format_date(moment, format=style, locale=_babel_locale(_locale())) if moment else ""


# The same dates come back on a page (a payment's row in the list and in the details, its refund
# window): format each ISO string once, as amounts are.
@lru_cache(maxsize=4096)
def _date_text(value: str, style: str, locale: str) -> str:
    return format_date(parse_time(value), format=style, locale=_babel_locale(locale))


def datetime_(value: str | datetime | None) -> str:
    moment = parse_time(value)
    return format_datetime(moment, format="medium", tzinfo=timezone.utc, locale=_locale()) + " UTC" if moment else ""


def iso_date(value: str | datetime | None) -> str:
    moment = parse_time(value)
    return moment.date().isoformat() if moment else ""


def every(purchase: dict[str, Any]) -> str:
    """``per month``, ``every 3 months``."""
    interval = purchase.get("interval")
    if not interval:
        return ""
    count = purchase.get("interval_count") or 1
    one, many = _INTERVALS.get(interval, (interval, interval + "s"))
    return f"per {one}" if count == 1 else f"every {count} {many}"


def status(value: str) -> str:
    return _STATUS.get(value, value.replace("_", " ").capitalize())


def brand(value: str | None) -> str:
    if not value:
        return "Card"
    return _BRANDS.get(value.lower(), value.capitalize())


FILTERS = {
    "sb_money": money,
    "sb_date": date,
    "sb_datetime": datetime_,
    "sb_iso_date": iso_date,
    "sb_every": every,
    "sb_status": status,
    "sb_brand": brand,
}


def country(code: str | None) -> str:
    """An ISO 3166 code as the country's name in the configured locale."""
    return country_name(code or "", _locale())


def address(value: dict | None) -> list[str]:
    """A bill-to address's lines after the name, as its country writes them (:mod:`plugin.addresses`)."""
    return address_lines(value, _locale())


def is_future(value: str | None) -> bool:
    """Whether an ISO 8601 UTC time (``...Z``, as the presenters give) is still to come."""
    if not value:
        return False
    return datetime.fromisoformat(value.replace("Z", "+00:00")) > datetime.now(timezone.utc)


FILTERS["sb_country"] = country
FILTERS["sb_is_future"] = is_future
FILTERS["sb_address_lines"] = address


def cents(amount_cents: int | None, currency: str) -> str:
    """Integer cents for people: ``4900, "USD"`` -> ``$49.00``."""
    if amount_cents is None:
        return ""
    return format_money(amount_cents, currency, _locale())


FILTERS["sb_cents"] = cents

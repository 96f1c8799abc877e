"""Money: integer minor units inside, two-decimal strings outside, never floats.

Amounts are stored as integer cents (``*_cents`` columns). The public interface
speaks decimal strings with two places (``"49.00"``) plus an ISO 4217 currency.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency

CENT = Decimal("0.01")


def to_cents(amount: Decimal | str | int) -> int:
    """Convert a decimal amount with at most two places to integer cents (the low-level converter;
    what people and programs send is parsed by :func:`plugin.validation.parse_amount`, built on this).

    Raises ValueError for floats, more than two decimal places, non-numbers and
    numbers too large to hold (never ``decimal.InvalidOperation``).
    """
    if isinstance(amount, float) or isinstance(amount, bool):
        raise ValueError("amounts are decimal strings, never floats")
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not value.is_finite():
        raise ValueError("not a finite number")
    try:
        quantized = value.quantize(CENT)
    except InvalidOperation:  # more digits than the decimal context holds, e.g. "1e30"
        raise ValueError("too large") from None
    if value != quantized:
        raise ValueError("at most two decimal places")
    return int((value * 100).to_integral_value(rounding=ROUND_HALF_UP))


def from_cents(cents: int) -> Decimal:
    """Integer cents to a Decimal with two places."""
    return (Decimal(cents) / 100).quantize(CENT)


def format_amount(cents: int) -> str:
    """Integer cents as the contract's string form, e.g. ``4900 -> "49.00"`` (integer arithmetic only)."""
    units, rest = divmod(abs(int(cents)), 100)
    return f"{'-' if cents < 0 else ''}{units}.{rest:02d}"


def format_money(cents: int, currency: str, locale: str = "en_US") -> str:
    """Amount for people, formatted by Babel in the given currency (``$49.00``)."""
    return format_currency(from_cents(cents), currency, locale=locale)

"""Customers' VAT IDs: checked and normalised per country with python-stdnum.

:func:`normalize_vat_id` is the one rule: the number is compacted (spaces, dots, dashes dropped),
checked with the country's own algorithm when python-stdnum has one (``stdnum.<cc>.vat``: check
digits, length, format), and stored in its canonical form. An EU VAT ID always carries its VAT
prefix (``DE136695976``; Greece's is ``EL``), whether or not the customer typed it, because that is
how invoices and VIES write it. A prefix of another country is refused: the ID must belong to the
bill-to country. For a country python-stdnum has no VAT module for, the ID is kept as typed
(letters, digits and separators only), since it cannot be checked.
"""
from __future__ import annotations

import re
from functools import lru_cache
from types import ModuleType

from stdnum.exceptions import ValidationError as StdnumError
from stdnum.util import get_cc_module

from .tax import EU_COUNTRIES

#: The VAT prefix of an EU country when it is not its ISO code.
_VAT_PREFIX = {"GR": "EL"}
_LOOSE = re.compile(r"[A-Z0-9][A-Z0-9 .\-/]{1,38}")


@lru_cache(maxsize=None)
def _module(country: str) -> ModuleType | None:
    try:
        return get_cc_module(country.lower(), "vat")
    except (ImportError, AttributeError):
        return None


def vat_prefix(country: str) -> str:
    """The prefix an EU VAT ID of ``country`` starts with."""
    return _VAT_PREFIX.get(country, country)


def normalize_vat_id(value: str, country: str) -> str:
    """The canonical form of ``value`` as a VAT ID of ``country`` (ISO 3166 alpha-2); ValueError if it is not one."""
    text = value.strip().upper()
    country = country.upper()
    if not text:
        return ""
    module = _module(country)
    if module is None:
        if not _LOOSE.fullmatch(text):
            raise ValueError("must be a VAT ID: letters and digits, e.g. GB980780684")
        return text
    if country in EU_COUNTRIES:
        prefix = vat_prefix(country)
        if re.match(r"[A-Z]{2}", text) and not text.startswith(prefix) and not (country == "GR" and text[:2] == "GR"):
            raise ValueError(f"must be a VAT ID of the bill-to country ({country}); an ID of {country} "
                             f"starts with {prefix} or with its digits")
    try:
        number = module.validate(text)
    except StdnumError:
        example = f"{vat_prefix(country)}…" if country in EU_COUNTRIES else "the number on your tax registration"
        raise ValueError(f"is not a valid VAT ID of {country} (check the digits; it looks like {example})") from None
    if country in EU_COUNTRIES:
        number = number.removeprefix(vat_prefix(country)).removeprefix(country)
        return f"{vat_prefix(country)}{number}"
    return number

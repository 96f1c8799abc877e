"""Input schemas of the merchant operations, declared once.

The merchant HTTP API and the in-process Python API validate with these same
pydantic models: unknown fields are refused, money is a decimal string with at
most two places, times need an offset, ids have one accepted form, card numbers
typed into names and address lines are masked. Each error message says what the
field must be, never echoing the value back.

:func:`validate` turns a plain mapping into a model, raising the same 400 error
(code ``invalid``, naming each field) the HTTP API answers for that body.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal, Mapping, TypeVar, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)

from ..cardmask import mask_card_numbers
from ..money import to_cents

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    """True for an Order ID, payment ID or price point code of the accepted form."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


#: CLDR regions that are not ISO 3166-1 countries (groupings, reserved and pseudo codes, ``ZZ`` unknown).
_NOT_COUNTRIES = frozenset({"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"})


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    from babel import Locale

    codes = {code for code in Locale("en").territories if len(code) == 2 and code.isalpha()}
    return frozenset(codes - _NOT_COUNTRIES)


_MONEY_RE = re.compile(r"\d{1,10}(\.\d{1,2})?")
_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def _money_type(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError('must be a string like "49.00", not a JSON number (numbers lose cents)')
    if not isinstance(value, str):
        raise ValueError('must be a decimal string like "49.00"')
    return value


def _money(value: str) -> str:
    value = value.strip()
    if _MONEY_RE.fullmatch(value):
        return value
    if not _NUMBER_RE.fullmatch(value):
        raise ValueError('must be a decimal number written as a string, e.g. "49.00"')
    if value.startswith("-"):
        raise ValueError("must not be negative")
    if "." in value and len(value.split(".", 1)[1]) > 2:
        raise ValueError('must have at most two decimal places, e.g. "49.00"')
    raise ValueError('must be a decimal string of at most 10 digits before the point, e.g. "49.00"')


def _identifier(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(
            "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


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
    if value not in _countries():
        raise ValueError("must be an ISO 3166 two-letter country code, e.g. US")
    return value


#: The times the ledger accepts: any real order's, and narrow enough that every date derived from
#: one (periods of up to 365 years, refund windows) is still a four-digit year.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=timezone.utc)
_TIME_RANGE = "must be a time from 1970 to 2999"


def _utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        raise ValueError(_TIME_RANGE) from None
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise ValueError(_TIME_RANGE)
    return value


MoneyStr = Annotated[StrictStr, BeforeValidator(_money_type), AfterValidator(_money)]
Currency = Annotated[StrictStr, AfterValidator(_currency)]
Country = Annotated[StrictStr, AfterValidator(_country)]
UTCTime = Annotated[AwareDatetime, BeforeValidator(_aware_type), AfterValidator(_utc)]
#: Free text a person typed (a name, an address line): card numbers in it are masked (:mod:`plugin.cardmask`).
#: Length-preserving, so it runs after the length limits and the masked value still fits them.
FreeText = AfterValidator(mask_card_numbers)
Text200 = Annotated[StrictStr, Field(max_length=200), FreeText]
#: An Order ID, payment ID or price point code (the form :func:`is_valid_id` accepts).
Identifier = Annotated[StrictStr, AfterValidator(_identifier)]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PartialSchema(Schema):
    """A schema whose fields may be left out, but not sent as null (null would mean nothing)."""

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its current value")
        return value


S = TypeVar("S", bound=BaseModel)


def validate(model: type[S], data: S | Mapping[str, Any]) -> S:
    """``data`` as a ``model``: returned as is when it already is one, else validated.

    Raises a :class:`~plugin.errors.BillingError` (400, ``invalid``) naming each
    bad field, exactly as the HTTP API answers the same body.
    """
    if isinstance(data, model):
        return data
    from ..api.common import parse_body

    return parse_body(model, data=dict(data) if isinstance(data, Mapping) else data)


def money_cents(value: str) -> int:
    """Cents of a validated money string."""
    return to_cents(Decimal(value))


class Address(Schema):
    """A bill-to address."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=200), FreeText]
    line1: Annotated[StrictStr, Field(min_length=1, max_length=200), FreeText]
    line2: Text200 = ""
    city: Annotated[StrictStr, Field(min_length=1, max_length=100), FreeText]
    region: Annotated[StrictStr, Field(max_length=100), FreeText] = ""
    postal_code: Annotated[StrictStr, Field(max_length=20), FreeText] = ""
    country: Country


class PricePointIn(Schema):
    product: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    amount: MoneyStr
    currency: Currency
    interval: Literal["day", "week", "month", "year"] | None = None
    interval_count: Annotated[StrictInt, Field(ge=1, le=365)] = 1
    cancellation: Literal["instant", "delayed"] = "instant"
    refund_window_days: Annotated[StrictInt, Field(ge=0, le=3650)] = 30


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
    amount: MoneyStr | None = None


class ModeIn(Schema):
    mode: Literal["disabled", "request", "automatic"]


class SettingsIn(PartialSchema):
    enabled: StrictBool | None = None
    portal: Literal["helpdesk", "standalone", "both"] | None = None
    cancellation: ModeIn | None = None
    refunds: ModeIn | None = None
    department: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None


class FaultsIn(PartialSchema):
    """Injected sandbox failures: the next n calls of each kind fail as an outage."""

    refund: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    cancel: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    attach_card: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None

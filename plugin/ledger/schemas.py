"""Input schemas of the merchant operations, declared once.

The merchant HTTP API and the in-process Python API validate with these same
pydantic models: unknown fields are refused, money is a decimal string with at
most two places, times need an offset.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from ..money import to_cents

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    """True for an Order ID, payment ID or price point code of the accepted form."""
    return bool(_ID_RE.match(value))


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    from babel import Locale

    return frozenset(code for code in Locale("en").territories if len(code) == 2 and code.isalpha())


def _money(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"\d{1,10}(\.\d{1,2})?", value):
        raise ValueError("must be a non-negative decimal string with at most two places, e.g. \"49.00\"")
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


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


MoneyStr = Annotated[StrictStr, AfterValidator(_money)]
Currency = Annotated[StrictStr, AfterValidator(_currency)]
Country = Annotated[StrictStr, AfterValidator(_country)]
UTCTime = Annotated[AwareDatetime, AfterValidator(_utc)]
Text200 = Annotated[StrictStr, Field(max_length=200)]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def money_cents(value: str) -> int:
    """Cents of a validated money string."""
    return to_cents(Decimal(value))


class Address(Schema):
    """A bill-to address."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    line1: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    line2: Text200 = ""
    city: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    region: Annotated[StrictStr, Field(max_length=100)] = ""
    postal_code: Annotated[StrictStr, Field(max_length=20)] = ""
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
    price_point: Annotated[StrictStr, Field(pattern=ID_PATTERN)]
    purchased_at: UTCTime
    billing_address: Address
    payment_method: Annotated[Union[CardMethodIn, PayPalMethodIn], Field(discriminator="type")]


class PaymentIn(Schema):
    payment_id: Annotated[StrictStr, Field(pattern=ID_PATTERN)]
    paid_at: UTCTime
    amount: MoneyStr | None = None


class ModeIn(Schema):
    mode: Literal["disabled", "request", "automatic"]


class SettingsIn(Schema):
    enabled: StrictBool | None = None
    portal: Literal["helpdesk", "standalone", "both"] | None = None
    cancellation: ModeIn | None = None
    refunds: ModeIn | None = None
    department: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None


class FaultsIn(Schema):
    refund: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    cancel: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    attach_card: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None

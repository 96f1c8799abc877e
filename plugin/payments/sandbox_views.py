"""HTTP side of the sandbox processor: the card token endpoint, ``POST {prefix}/sandbox/tokens``.

This is the processor's endpoint, not the portal's: the card form posts the
number here (cross-origin, as it would to a real processor) and hands the
portal only the token. So this route takes no session and no CSRF token, and
answers CORS preflights from any origin (``Access-Control-Allow-Origin: *``,
no credentials); every other plugin route keeps the same-origin default.

The card number is checked (12 to 19 digits, Luhn-valid; spaces are allowed
between digit groups) and dropped: the sandbox keeps only brand and last four,
and no error message, log line or row ever carries the number.
The route exists only while the configured gateway is the sandbox (404 otherwise).
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    field_validator,
)

from ..errors import NotFound
from ..http_json import install_json_errors, parse_body
from .sandbox import SandboxGateway, luhn_valid

bp = Blueprint("self_billing_sandbox", __name__)
install_json_errors(bp)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}


def _card_number(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be the number on the front of the card")
    digits = "".join(value.split())
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("may contain only digits and spaces")
    if not 12 <= len(digits) <= 19:
        raise ValueError("must be 12 to 19 digits long; check that none is missing")
    if not luhn_valid(digits):
        raise ValueError("is not a valid card number; check it for typos")
    return digits


def _whole_number(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    raise ValueError("must be a whole number")


def _month(value: Any) -> int:
    month = _whole_number(value)
    if not 1 <= month <= 12:
        raise ValueError("must be a month from 01 to 12")
    return month


def _year(value: Any) -> int:
    year = _whole_number(value)
    if year < 100:  # "27" on the card means 2027
        year += 2000
    this_year = datetime.now(UTC).year
    if year < this_year:
        raise ValueError("is in the past: this card has expired")
    if year > this_year + 50:
        raise ValueError("must be the four-digit year printed on the card")
    return year


def _cvc(value: Any) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or not 3 <= len(value) <= 4:
        raise ValueError("must be the 3 or 4 digits on the back of the card")
    return value


class CardIn(BaseModel):
    """The card form's fields. Error messages never repeat the values."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)

    number: Annotated[str, BeforeValidator(_card_number)]
    exp_month: Annotated[int, BeforeValidator(_month)]
    exp_year: Annotated[int, BeforeValidator(_year)]
    cvc: Annotated[str, BeforeValidator(_cvc)]

    @field_validator("exp_year")
    @classmethod
    def _not_expired(cls, year: int, info: ValidationInfo) -> int:
        month = info.data.get("exp_month")
        now = datetime.now(UTC)
        if month is not None and (year, month) < (now.year, now.month):
            raise ValueError("is in the past: this card has expired")
        return year


def _require_sandbox() -> SandboxGateway:
    gateway = current_app.extensions["self_billing"].gateway
    if not isinstance(gateway, SandboxGateway):
        raise NotFound(
            "The sandbox processor is not in use on this app, so it issues no card tokens; "
            "the card form must post to the configured processor.",
            code="sandbox_not_in_use",
        )
    return gateway


@bp.after_request
def _cors(response: Response) -> Response:
    if request.endpoint == f"{bp.name}.tokens":
        response.headers.update(CORS_HEADERS)
    return response


@bp.route("/tokens", methods=["POST", "OPTIONS"], provide_automatic_options=False)
def tokens() -> Response:
    gateway = _require_sandbox()
    if request.method == "OPTIONS":
        return Response(status=204)
    card = parse_body(CardIn)
    token = gateway.create_token(card.number, card.exp_month, card.exp_year, card.cvc)
    response = jsonify({"token": token.token, "brand": token.brand, "last4": token.last4})
    response.status_code = 201
    return response

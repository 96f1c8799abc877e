"""The input rules every door shares, below HTTP: one function per rule.

The merchant and agent JSON APIs, the portal's and the desk's HTML forms and the in-process Python
API all check what people and programs send with these (none of this imports Flask's request). A
broken rule raises :class:`~plugin.errors.InvalidInput` (400) naming the field and saying what it
must be, never repeating the value back.

- :func:`validate` turns a mapping into a pydantic model (the core of every JSON body and form);
  :class:`Schema` is the models' base: unknown fields refused, text stripped.
- :func:`parse_amount` is the one money parser: a decimal string (or ``Decimal``, ``int``) with at
  most two places to integer cents, built on :func:`plugin.money.to_cents`. :data:`MoneyStr` and
  :data:`AmountStr` are the same rule as pydantic field types.
- :func:`free_text` is the one rule of text a person typed (a reason, an agent's message): stripped,
  length-limited, no NUL, card numbers masked. :data:`Reason` and :data:`Message` are its field types.
- :func:`is_valid_id` / :func:`check_id` (Order IDs, payment IDs, price point codes) and
  :func:`is_row_id` (the database's integer ids, :data:`MAX_ROW_ID`).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictStr,
    ValidationError,
    field_validator,
)

from .cardmask import mask_card_numbers
from .errors import BillingError, InvalidInput
from .money import to_cents

M = TypeVar("M", bound=BaseModel)


# -- models ------------------------------------------------------------------------------------


class Schema(BaseModel):
    """Base of the input models: unknown fields are refused and text is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PartialSchema(Schema):
    """A schema whose fields may be left out, but not sent as null (null would mean nothing)."""

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its current value")
        return value


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "__root__") or "body"


def validation_fields(exc: ValidationError) -> dict[str, str]:
    """``{"field.path": "what is wrong"}`` from a pydantic error."""
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        name = _field_name(tuple(err["loc"]))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        fields.setdefault(name, message)
    return fields


def validate(model: type[M], data: M | Mapping[str, Any]) -> M:
    """``data`` as a ``model``: returned as is when it already is one, else validated.

    Raises :class:`~plugin.errors.BillingError` (400, ``invalid``) naming each bad field: a NUL
    character anywhere, or whatever the model refuses.
    """
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise BillingError("Expected an object of named fields.", code="invalid", status=400)
    payload = dict(data)
    refuse_nul(payload)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = validation_fields(exc)
        names = ", ".join(sorted(fields))
        raise BillingError(
            f"Some fields are missing or invalid: {names}.", code="invalid", status=400, fields=fields
        ) from None


def _as_field_rule(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``rule`` (raising InvalidInput) as a pydantic validator (raising ValueError with the field's message)."""

    def check(value: Any) -> Any:
        try:
            return rule(value)
        except InvalidInput as err:
            raise ValueError(next(iter((err.fields or {}).values()), err.message)) from None

    return check


# -- NUL characters ------------------------------------------------------------------------------
# PostgreSQL text cannot hold U+0000 (SQLite can), so a NUL that reached a query or a row would be a
# database error. Every way in refuses it: models through validate(), free text through free_text(),
# and the HTTP doors before any view (plugin.api.common.refuse_nul_characters).

NUL_MESSAGE = "Text may not contain NUL characters (U+0000); remove them and send it again."


def nul_at(value: Any, where: str = "body") -> str | None:
    """The path of the first string (or key) in ``value`` holding a NUL character, else None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = nul_at(key, where) or nul_at(item, f"{where}.{key}" if where != "body" else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_at(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def refuse_nul(value: Any, where: str = "body") -> None:
    """InvalidInput naming the first field of ``value`` that holds a NUL character."""
    found = nul_at(value, where)
    if found is not None:
        raise InvalidInput(NUL_MESSAGE, fields={found: "contains a NUL character"})


# -- ids -----------------------------------------------------------------------------------------

#: The largest row id anyone may name: id columns are 32-bit integers on PostgreSQL.
MAX_ROW_ID = 2**31 - 1

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
ID_RULE = "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_row_id(value: Any) -> bool:
    """True for an int that can be a row's id (1 to :data:`MAX_ROW_ID`), so a query for it is worth making."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID


def is_valid_id(value: Any) -> bool:
    """True for an Order ID, payment ID or price point code of the accepted form."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def check_id(value: Any, field: str) -> str:
    """``value`` when it is an id of the accepted form, else InvalidInput naming ``field``."""
    if not is_valid_id(value):
        raise InvalidInput(f"The {field} is not valid: use 1 to 64 letters, digits, '.', '_' or '-'.",
                           fields={field: ID_RULE})
    return value


def _identifier(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(ID_RULE)
    return value


#: An Order ID, payment ID or price point code (the form :func:`is_valid_id` accepts).
Identifier = Annotated[StrictStr, AfterValidator(_identifier)]


# -- money ---------------------------------------------------------------------------------------

#: Amounts from 10 digits before the point up are refused: no price or payment is that big.
MAX_AMOUNT = Decimal(10) ** 10
_AMOUNT_RE = re.compile(r"\d+(\.\d+)?")
_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
EXAMPLE = '"49.00"'


def _cents(value: Any, *, allow_zero: bool) -> int:
    """Cents of ``value``, or ValueError saying what the amount must be."""
    if isinstance(value, (bool, float)) or not isinstance(value, (str, Decimal, int)):
        raise ValueError(f"must be a decimal string like {EXAMPLE}")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"must not be empty; write an amount like {EXAMPLE}")
        if not _AMOUNT_RE.fullmatch(text):
            if not _NUMBER_RE.fullmatch(text):
                raise ValueError(f"is not a number; write an amount like {EXAMPLE}")
            if not text.startswith("-"):
                raise ValueError(f"must be written like {EXAMPLE}: digits, a point, at most two digits")
        number = Decimal(text)
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"is not a number; write an amount like {EXAMPLE}")
    if number < 0 and allow_zero:
        raise ValueError("must not be negative")
    if number < 0 or (number == 0 and not allow_zero):
        raise ValueError("must be more than 0")
    if number >= MAX_AMOUNT:
        raise ValueError("must have at most 10 digits before the point")
    try:
        return to_cents(number)
    except ValueError:
        raise ValueError(f"must have at most two decimal places, e.g. {EXAMPLE}") from None


def parse_amount(value: Any, field: str = "amount", *, allow_zero: bool = False) -> int:
    """Cents of an amount: a decimal string (or ``Decimal``, ``int``; never a float or bool) with at
    most two places, more than 0 (``allow_zero``: not negative). InvalidInput naming ``field`` otherwise."""
    try:
        return _cents(value, allow_zero=allow_zero)
    except ValueError as err:
        label = field.rsplit(".", 1)[-1].replace("_", " ")
        raise InvalidInput(f"The {label} {err}.", code="invalid_amount", fields={field: str(err)}) from None


def _json_string(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"must be a string like {EXAMPLE}, not a JSON number (numbers lose cents)")
    if not isinstance(value, str):
        raise ValueError(f"must be a decimal string like {EXAMPLE}")
    return value


def _checked_amount(*, allow_zero: bool) -> Callable[[str], str]:
    def check(value: str) -> str:
        _cents(value, allow_zero=allow_zero)
        return value.strip()

    return check


#: A money field sent as a string (``"49.00"``): zero allowed (a free price), not negative.
MoneyStr = Annotated[StrictStr, BeforeValidator(_json_string), AfterValidator(_checked_amount(allow_zero=True))]
#: An amount to move (a payment, a refund): more than zero.
AmountStr = Annotated[StrictStr, BeforeValidator(_json_string), AfterValidator(_checked_amount(allow_zero=False))]


# -- free text -------------------------------------------------------------------------------------

#: Longest reason a customer may give, in characters.
MAX_REASON_CHARS = 2000
#: Longest reply or event message an agent may send, in characters.
MAX_MESSAGE_CHARS = 10_000


def free_text(value: Any, field: str = "reason", *, max_chars: int = MAX_REASON_CHARS,
              required: bool = False) -> str:
    """Text a person typed, as it is kept: stripped, at most ``max_chars`` characters, no NUL
    character, card numbers masked (:mod:`plugin.cardmask`). None is ``""``; ``required`` refuses
    empty text. InvalidInput naming ``field`` otherwise.

    Every reason and agent message enters here before it is stored, emailed or logged.
    """
    label = field.rsplit(".", 1)[-1].replace("_", " ")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"The {label} must be text.", fields={field: "must be a string"})
    if "\x00" in value:
        raise InvalidInput(NUL_MESSAGE, fields={field: "contains a NUL character"})
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"The {label} is empty; write it and send it again.", fields={field: "must not be empty"})
    if len(text) > max_chars:
        raise InvalidInput(f"The {label} is {len(text):,} characters long; keep it to at most {max_chars:,}.",
                           fields={field: f"at most {max_chars} characters"})
    return mask_card_numbers(text)


#: Masks card numbers in a text field (length-preserving, so it runs after the length limits).
MaskCards = AfterValidator(mask_card_numbers)
#: A customer's reason (optional): :func:`free_text` as a field type.
Reason = Annotated[StrictStr, AfterValidator(_as_field_rule(lambda v: free_text(v, "reason")))]
#: An agent's message: :func:`free_text` with the message limit.
Message = Annotated[StrictStr, AfterValidator(_as_field_rule(
    lambda v: free_text(v, "message", max_chars=MAX_MESSAGE_CHARS)))]
#: An agent's reply: a message that must not be empty.
Reply = Annotated[StrictStr, AfterValidator(_as_field_rule(
    lambda v: free_text(v, "message", max_chars=MAX_MESSAGE_CHARS, required=True)))]

"""What every JSON endpoint shares: body parsing against a schema, and the error form.

Views call :func:`parse_body` with a pydantic model; malformed JSON, a wrong
content type, an oversized body and invalid fields all become the contract's
``{"error": {...}}`` with 400/413/415, before any view code runs.
:func:`install_json_errors` makes a blueprint answer every error in that form.
"""
from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from ..errors import BillingError, InvalidInput, NotFound, error_response

M = TypeVar("M", bound=BaseModel)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


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
            message = message[len("Value error, ") :]
        fields.setdefault(name, message)
    return fields


#: How deeply a JSON body may nest arrays and objects. No body of the API nests more than a few
#: levels; a limit keeps a small body of a thousand brackets from exhausting the parser's recursion.
MAX_JSON_DEPTH = 32


def _depth_exceeds(raw: bytes, limit: int) -> bool:
    """True when ``raw`` opens more than ``limit`` arrays or objects at once (brackets in strings skipped)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the common case, counted in C
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def decode_json(raw: bytes) -> Any:
    """``raw`` decoded as JSON, or a 400 BillingError: malformed, or nested deeper than MAX_JSON_DEPTH."""
    if _depth_exceeds(raw, MAX_JSON_DEPTH):
        raise BillingError(f"The JSON body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.",
                           code="malformed_json", status=400)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BillingError("The body is not valid JSON.", code="malformed_json", status=400) from None


def read_json(max_bytes: int | None = None) -> Any:
    """The request's JSON body, or a BillingError (413, 415, 400) saying what is wrong."""
    limit = max_bytes or current_app.config["SELF_BILLING_MAX_BODY_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise BillingError(f"The body is larger than {limit} bytes.", code="body_too_large", status=413)
    if request.mimetype != "application/json":
        raise BillingError(
            "Send the body as JSON with 'Content-Type: application/json'.",
            code="unsupported_media_type",
            status=415,
        )
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise BillingError(f"The body is larger than {limit} bytes.", code="body_too_large", status=413)
    if not raw.strip():
        return {}
    data = decode_json(raw)
    where = _nul_at(data, "body")
    if where is not None:
        raise InvalidInput(NUL_MESSAGE, fields={where: "contains a NUL character"})
    return data


# -- NUL characters -----------------------------------------------------------------------------
#
# PostgreSQL text cannot hold U+0000 (SQLite can), so a NUL that reached a query or a row would be a
# database error, a 500. Every way in is closed: JSON bodies in read_json(), the URL's path and query
# and form fields in refuse_nul_characters(), which runs before every view of the plugin.

NUL_MESSAGE = "Text may not contain NUL characters (U+0000); remove them and send it again."


def _nul_at(value: Any, where: str) -> str | None:
    """The path of the first string (or key) in ``value`` holding a NUL character, else None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_at(key, where) or _nul_at(item, f"{where}.{key}" if where != "body" else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def refuse_nul_characters() -> None:
    """Before every plugin view: a NUL in the path is 404 (nothing is there), in the query or a form 400."""
    view = current_app.view_functions.get(request.endpoint or "")
    module = getattr(view, "__module__", "") or ""
    if not module.startswith("plugin.") or module.startswith("plugin.demo."):
        return  # the host's own views (the demo host's too)
    if any("\x00" in str(value) for value in (request.view_args or {}).values()):
        raise NotFound("There is nothing at this address: it contains a NUL character.")
    bad = sorted({name for source in (request.args, request.form)
                  for name, value in source.items(multi=True) if "\x00" in name or "\x00" in value})
    if bad:
        raise InvalidInput(NUL_MESSAGE, fields={name: "contains a NUL character" for name in bad})


def parse_body(model: type[M], *, data: Any = None) -> M:
    """Validate the JSON body (or ``data``) against ``model``; 400 naming each bad field."""
    payload = read_json() if data is None else data
    if not isinstance(payload, dict):
        raise BillingError("The body must be a JSON object.", code="invalid", status=400)
    if data is not None:  # the Python API's dicts (read_json has checked HTTP bodies)
        where = _nul_at(payload, "body")
        if where is not None:
            raise InvalidInput(NUL_MESSAGE, fields={where: "contains a NUL character"})
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = validation_fields(exc)
        names = ", ".join(sorted(fields))
        raise BillingError(
            f"Some fields are missing or invalid: {names}.", code="invalid", status=400, fields=fields
        ) from None


#: The largest row id a URL may name: id columns are 32-bit integers on PostgreSQL.
MAX_ROW_ID = 2**31 - 1


def path_id(raw: str, not_found: BillingError) -> int:
    """The row id a URL segment names, or ``not_found`` raised.

    Routes take ids as plain strings (not ``<int:...>``) so that a segment that is
    no id (``-1``, ``1.5``, ``abc``, ``²``, an id past the column's range) answers
    the same JSON 404 as an id that does not exist, instead of an HTML page or a
    database error.
    """
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_ROW_ID:
        raise not_found
    return int(raw)


def _billing_error(err: BillingError) -> Response:
    response = jsonify(err.to_dict())
    response.status_code = err.status
    return response


def _http_error(err: HTTPException) -> Response:
    status = err.code or 500
    response = error_response(status, _HTTP_CODES.get(status, "error"), err.description or err.name)
    headers = dict(err.get_headers())
    if err.response is not None:
        headers.update(err.response.headers)
    for name in ("Retry-After", "Allow"):
        if name in headers:
            response.headers[name] = headers[name]
    return response


def install_json_errors(bp: Blueprint) -> None:
    """Answer every error raised in ``bp``'s views in the contract's JSON form."""
    bp.register_error_handler(BillingError, _billing_error)
    bp.register_error_handler(HTTPException, _http_error)

"""The JSON side of HTTP every blueprint shares: reading a body, and answering errors in one form.

:func:`parse_body` reads the request's JSON body and validates it with a pydantic model
(:func:`plugin.validation.validate`): malformed JSON, a wrong content type, an oversized body and
invalid fields all become the contract's ``{"error": {...}}`` with 400/413/415, before any view
code runs. :func:`install_json_errors` makes a blueprint answer every error in that form.

Here, not in :mod:`plugin.api`, because doors outside the JSON API use it too: the sandbox
processor's token endpoint, the invoice downloads, the health check.
"""
from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException

from .errors import BillingError, error_response
from .validation import refuse_nul, validate

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
    refuse_nul(data)
    return data


def parse_body(model: type[M], *, data: Any = None) -> M:
    """Validate the JSON body (or ``data``) against ``model``; 400 naming each bad field."""
    payload = read_json() if data is None else data
    if not isinstance(payload, dict):
        raise BillingError("The body must be a JSON object.", code="invalid", status=400)
    return validate(model, payload)


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

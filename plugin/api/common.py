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

from ..errors import BillingError, error_response

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
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BillingError("The body is not valid JSON.", code="malformed_json", status=400) from None


def parse_body(model: type[M], *, data: Any = None) -> M:
    """Validate the JSON body (or ``data``) against ``model``; 400 naming each bad field."""
    payload = read_json() if data is None else data
    if not isinstance(payload, dict):
        raise BillingError("The body must be a JSON object.", code="invalid", status=400)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = validation_fields(exc)
        names = ", ".join(sorted(fields))
        raise BillingError(
            f"Some fields are missing or invalid: {names}.", code="invalid", status=400, fields=fields
        ) from None


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

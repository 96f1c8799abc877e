"""Domain errors with the contract's JSON error form.

Domain code raises these; the API blueprints turn them into
``{"error": {"code", "message", "fields"?}}`` with the status that fits.
Messages are sentences for a person: what happened and what to do.
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify


class BillingError(Exception):
    """Base of every error the plugin reports to a person or a client."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update(self.extra)
        return {"error": body}


class InvalidInput(BillingError):
    status, code = 400, "invalid"


class NotLoggedIn(BillingError):
    status, code = 401, "unauthorized"


class PaymentDeclined(BillingError):
    status, code = 402, "card_declined"


class NotAllowed(BillingError):
    """The merchant's settings do not allow it."""

    status, code = 403, "not_allowed"


class NotFound(BillingError):
    """Not found, or not yours: the two are never told apart."""

    status, code = 404, "not_found"


class Conflict(BillingError):
    """The current state does not allow it."""

    status, code = 409, "conflict"


class Unavailable(BillingError):
    """A dependency is down (PDF renderer, processor, mail server)."""

    status, code = 503, "unavailable"


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A JSON error response in the contract's form."""
    err = BillingError(message, code=code, status=status, fields=fields, **extra)
    response = jsonify(err.to_dict())
    response.status_code = status
    return response

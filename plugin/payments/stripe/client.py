"""The Stripe library, configured per app: one ``stripe.StripeClient`` per gateway, never global state.

``SELF_BILLING_STRIPE_API_BASE`` goes to the client's ``base_addresses`` (tests point it at a
local ``localstripe``), the timeout to its HTTP client, so two apps in one process never share a
key or an address. :func:`translate` turns the library's exceptions into the gateway errors of
:mod:`plugin.payments.interface`; :func:`plain` turns its objects into plain dicts.
"""
from __future__ import annotations

import json
from typing import Any

from ..interface import CardDeclined, GatewayError, InvalidToken, ProcessorOutage

try:  # an optional dependency: pip install 'self-billing[stripe]'
    import stripe
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    stripe = None  # type: ignore[assignment]

INSTALL_HINT = "SELF_BILLING_GATEWAY='stripe' needs the stripe package: pip install 'self-billing[stripe]'."


def require_library() -> Any:
    if stripe is None:
        raise RuntimeError(INSTALL_HINT)
    return stripe


def make_client(secret_key: str, api_base: str | None, timeout: float, max_network_retries: int) -> Any:
    """A ``StripeClient`` of its own: key, address, timeout and retries belong to it alone."""
    lib = require_library()
    addresses = {"api": api_base.rstrip("/")} if api_base else None
    return lib.StripeClient(
        secret_key,
        base_addresses=addresses,
        max_network_retries=max_network_retries,
        http_client=lib.RequestsClient(timeout=timeout),
    )


def services(client: Any) -> Any:
    """The v1 services (``client.v1`` where the library has it, else the client itself)."""
    return getattr(client, "v1", client)


def plain(obj: Any) -> Any:
    """A Stripe object (or list of them) as plain JSON data."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict) and not hasattr(obj, "to_dict"):
        return obj
    for name in ("_to_dict_recursive", "to_dict_recursive"):
        method = getattr(obj, name, None)
        if callable(method):
            return method()
    return json.loads(str(obj))


def sid(value: Any) -> str | None:
    """The id of an expandable field: the string itself, or the expanded object's ``id``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("id")
    return getattr(value, "id", None)


def translate(exc: Exception, what: str) -> GatewayError:
    """The gateway error for a Stripe library exception raised while doing ``what``."""
    lib = require_library()
    err = lib  # the error classes live on the package in every supported version
    message = getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__
    code = getattr(exc, "code", None) or ""
    if isinstance(exc, err.CardError):
        return CardDeclined(f"Stripe declined the card while {what}: {message}", stripe_code=code)
    if isinstance(exc, (err.APIConnectionError, err.RateLimitError)):
        return ProcessorOutage(f"Stripe could not be reached while {what} ({message}); "
                               "the same idempotency key is used on retry.")
    if isinstance(exc, err.AuthenticationError):
        return ProcessorOutage(f"Stripe refused the API key while {what}: check SELF_BILLING_STRIPE_SECRET_KEY.")
    if isinstance(exc, err.IdempotencyError):
        return GatewayError(f"Stripe saw this idempotency key with other parameters while {what}: {message}")
    if isinstance(exc, err.InvalidRequestError):
        if code == "resource_missing" and "payment_method" in (getattr(exc, "param", "") or "payment_method"):
            return InvalidToken(f"Stripe does not know this payment method ({message}).")
        return GatewayError(f"Stripe refused the request while {what}: {message}", stripe_code=code)
    if isinstance(exc, err.StripeError):
        status = getattr(exc, "http_status", None) or 0
        if status >= 500 or status == 0:
            return ProcessorOutage(f"Stripe failed while {what} ({message}); retry with the same key.")
        return GatewayError(f"Stripe refused the request while {what}: {message}", stripe_code=code)
    return ProcessorOutage(f"Stripe's library failed while {what} ({exc.__class__.__name__}).")

"""Rate limits on failed portal logins, with Flask-Limiter.

Two shared limits count FAILED logins only (a successful login costs
nothing), across every login route of the plugin (the JSON API, the standalone
page and the helpdesk tab share the counters):

- per email (trimmed, lower-cased): ``SELF_BILLING_LOGIN_LIMIT_PER_EMAIL``;
- per client address: ``SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS`` (generous: many
  customers share an office network).

Once a limit is used up, every login attempt for that email or from that
address answers 429 with ``Retry-After`` until the window ends, even with the
right Order ID and email.

Each app gets its own :class:`flask_limiter.Limiter` (kept in
``app.extensions["self_billing"].login_limiter``), storing its counters in
``SELF_BILLING_RATELIMIT_STORAGE_URI``: by default the app's own database
(:mod:`plugin.limit_storage`), which every worker and machine shares, so the
limits hold across all of them; ``redis://...`` also works. It limits only the plugin's
login views: it sets no default or application-wide limits, and exempts
itself from any the host configures through ``RATELIMIT_DEFAULT`` or
``RATELIMIT_APPLICATION`` (those belong to the host's own Limiter). Like any
Flask-Limiter, it is switched off by ``RATELIMIT_ENABLED = False``.
Behind a proxy, the client address is ``request.remote_addr``: wrap the app in
werkzeug's ``ProxyFix`` so that it is the customer's, not the proxy's.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from ..errors import BillingError
from ..http_json import decode_json
from ..ledger.models import Lead
from ..limit_storage import storage_settings

_FAILED_FLAG = "_self_billing_login_failed"
_MAX_KEY_BODY = 64 * 1024


def mark_login_failed() -> None:
    """Tell the limits that this request was a failed login (it counts against both limits)."""
    setattr(g, _FAILED_FLAG, True)


def _login_failed(_response: Any) -> bool:
    return bool(getattr(g, _FAILED_FLAG, False))


def _email_key() -> str:
    """The normalized email of the login attempt, from a JSON or form body."""
    email: Any = None
    if request.mimetype == "application/json":
        if (request.content_length or 0) <= _MAX_KEY_BODY:
            raw = request.get_data(cache=True)
            if len(raw) <= _MAX_KEY_BODY:
                try:
                    body = decode_json(raw)
                except BillingError:  # the view answers it (400)
                    body = None
                if isinstance(body, dict):
                    email = body.get("email")
    else:
        email = request.form.get("email")
    if not isinstance(email, str):
        return "email:-"
    return "email:" + Lead.normalize_email(email)[:320]


def _address_key() -> str:
    return "address:" + (get_remote_address() or "-")


def _config_value(key: str) -> Callable[[], str]:
    return lambda: current_app.config[key]


def _exempt_host_limits() -> bool:
    return True


def get_limiter(app: Flask) -> Limiter:
    """The app's login Limiter, created on first use."""
    state = app.extensions["self_billing"]
    limiter = state.login_limiter
    if limiter is None:
        storage_uri, storage_options = storage_settings(app)
        limiter = Limiter(
            key_func=get_remote_address,
            storage_uri=storage_uri,
            storage_options=storage_options,
            key_prefix="self_billing",
            headers_enabled=False,
            default_limits_exempt_when=_exempt_host_limits,
            application_limits_exempt_when=_exempt_host_limits,
            # Shared storage (Redis...) down: count in this process instead of failing every login.
            in_memory_fallback_enabled=True,
        )
        limiter.init_app(app)
        state.login_limiter = limiter
    return limiter


def limit_login_view(app: Flask, endpoint: str) -> None:
    """Put the failed-login limits on the view registered as ``endpoint``."""
    limiter = get_limiter(app)
    view = app.view_functions[endpoint]
    if getattr(view, "__wrapper-limiter-instance", None) is limiter:
        return
    per_email = limiter.shared_limit(
        _config_value("SELF_BILLING_LOGIN_LIMIT_PER_EMAIL"),
        scope="self_billing_login_email",
        key_func=_email_key,
        deduct_when=_login_failed,
        methods=["POST"],
        error_message="Too many failed logins for this email address.",
    )
    per_address = limiter.shared_limit(
        _config_value("SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS"),
        scope="self_billing_login_address",
        key_func=_address_key,
        deduct_when=_login_failed,
        methods=["POST"],
        error_message="Too many failed logins from your network.",
    )
    app.view_functions[endpoint] = per_address(per_email(view))


def _limit_every_request(app: Flask, endpoint: str, setting: str, scope: str, what: str) -> None:
    """Limit every POST to ``endpoint`` per email and per address, by ``{setting}_PER_EMAIL`` and
    ``{setting}_PER_ADDRESS``, on the counters ``{scope}_email`` and ``{scope}_address``."""
    limiter = get_limiter(app)
    view = app.view_functions[endpoint]
    if getattr(view, "__wrapper-limiter-instance", None) is limiter:
        return
    per_email = limiter.shared_limit(
        _config_value(f"{setting}_PER_EMAIL"), scope=f"{scope}_email",
        key_func=_email_key, methods=["POST"], error_message=f"Too many {what} asked for this email.")
    per_address = limiter.shared_limit(
        _config_value(f"{setting}_PER_ADDRESS"), scope=f"{scope}_address",
        key_func=_address_key, methods=["POST"], error_message=f"Too many {what} asked from your network.")
    app.view_functions[endpoint] = per_address(per_email(view))


def limit_link_view(app: Flask, endpoint: str) -> None:
    """Limit requests for login links (:mod:`.login_links`): every request counts, per email and per
    address, on counters of their own, never the failed-login ones they exist to get around."""
    _limit_every_request(app, endpoint, "SELF_BILLING_LOGIN_LINK_LIMIT", "self_billing_login_link", "login links")


def limit_lookup_view(app: Flask, endpoint: str) -> None:
    """Limit "Forgot your Order ID?" (:mod:`.order_lookup`) the same way, on counters of its own
    (``SELF_BILLING_ORDER_LOOKUP_LIMIT_PER_EMAIL``, ``..._PER_ADDRESS``); known email or not, every
    request counts, so a limited answer reveals nothing either."""
    _limit_every_request(app, endpoint, "SELF_BILLING_ORDER_LOOKUP_LIMIT", "self_billing_order_lookup",
                         "Order ID lookups")


def retry_after_seconds() -> int:
    """Seconds until the breached login limit of this request resets (at least 1)."""
    limiter = current_app.extensions["self_billing"].login_limiter
    current = limiter.current_limit if limiter is not None else None
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()))


def too_many_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        "Too many failed login attempts. For your security, logging in with the form is paused: "
        f"try again in {minutes} {unit}, or get in now with a login link sent to your email. "
        "If you cannot find your Order ID, contact support."
    )


def order_lookup_wait_message(seconds: int) -> str:
    """What a limited "Forgot your Order ID?" answers (the same whether or not the email is known)."""
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return ("Order IDs were asked for several times already. If we have purchases under that email, they are in "
            f"an email we sent to it (check your spam folder too); or ask again in {minutes} {unit}.")

"""The merchant API (contract section 3): settings, price points, orders, payments, sandbox faults.

Beyond the contract: ``GET /price-points/<code>`` and ``GET /sandbox/faults``
read back what the PUTs wrote, and ``GET /orders/<order_id>`` adds the
purchase's ``price_point``, ``lead``, each payment's ``bill_to`` and its ``tickets``.

Every route needs ``Authorization: Bearer <SELF_BILLING_ADMIN_TOKEN>``; the token
is compared in constant time. A missing or wrong token answers 401 with
``WWW-Authenticate: Bearer``. While ``SELF_BILLING_ADMIN_TOKEN`` is unset (or
empty) the merchant API is off and every route answers **404**
``merchant_api_off``: an API that is switched off does not exist, and a 401
would only invite clients to guess tokens.

The views only translate HTTP: path ids are checked with
:func:`plugin.validation.check_id`, bodies with the schemas of
:mod:`plugin.ledger.schemas` through :func:`.common.parse_body`, and the work is
done by :mod:`plugin.ledger.service`, the same functions hosts call in-process
(sandbox faults: :mod:`plugin.payments.sandbox_faults`).
PUTs answer 201 when they created something and 200 when they replaced it; the
same request twice leaves the same rows.
"""
from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from ..db import utcnow
from ..errors import InvalidInput, NotFound, NotLoggedIn
from ..ledger import service
from ..ledger import settings as merchant_settings
from ..ledger.present import order_to_dict, payment_to_dict, price_point_to_dict
from ..ledger.schemas import OrderIn, PaymentIn, PricePointIn, SettingsIn
from ..payments import sandbox_faults
from ..payments.sandbox_faults import FaultsIn
from ..validation import check_id
from ..workflows.reports import cancellations_by_reason
from .common import install_json_errors, parse_body
from .idempotency import install_idempotency

bp = Blueprint("self_billing_api_admin", __name__)
install_json_errors(bp)

REALM = "Self-Billing merchant API"


def _configured_token() -> str | None:
    token = current_app.config.get("SELF_BILLING_ADMIN_TOKEN")
    if token is None or not str(token).strip():
        return None
    return str(token)


@bp.before_request
def require_admin_token() -> None:
    """The merchant API's guard; other blueprints under ``/api/admin`` install it with ``before_request``."""
    expected = _configured_token()
    if expected is None:
        raise NotFound(
            "The merchant API is off. Set SELF_BILLING_ADMIN_TOKEN in the app's configuration to turn it on.",
            code="merchant_api_off",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        g.self_billing_auth_error = None
        raise NotLoggedIn(
            "The merchant API needs 'Authorization: Bearer <token>' with the SELF_BILLING_ADMIN_TOKEN.",
            code="unauthorized",
        )
    if not hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8")):
        g.self_billing_auth_error = "invalid_token"
        raise NotLoggedIn(
            "The bearer token is wrong; send the SELF_BILLING_ADMIN_TOKEN configured on the app.",
            code="invalid_token",
        )


@bp.after_request
def bearer_challenge(response: Response) -> Response:
    """Adds ``WWW-Authenticate: Bearer ...`` to a 401; installed with ``after_request`` beside the guard."""
    if response.status_code == 401:
        challenge = f'Bearer realm="{REALM}"'
        error = g.get("self_billing_auth_error")
        if error:
            challenge += f', error="{error}"'
        response.headers["WWW-Authenticate"] = challenge
    return response


# The names plugin.api.admin_emails imported first.
_require_token = require_admin_token
_challenge = bearer_challenge


def _answer(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


# -- settings ---------------------------------------------------------------------------


def _settings_body(settings: Any) -> dict[str, Any]:
    """The settings, with the links customers log in at (the spec: "find the link for each type of
    billing portal in your account"): the standalone portal, and each My Orders tab the host registered."""
    body = merchant_settings.settings_to_dict(settings)
    doors = current_app.extensions["self_billing"].portal_doors
    links: dict[str, Any] = {"standalone": None, "helpdesk": None}
    for name, door in doors.items():
        if links.get(door) is None:
            links[door] = url_for(f"{name}.index", _external=True)
    body["portal_links"] = links
    return body


@bp.get("/settings")
def get_settings() -> Response:
    return _answer(_settings_body(merchant_settings.get_settings()))


@bp.put("/settings")
def put_settings() -> Response:
    data = parse_body(SettingsIn)
    return _answer(_settings_body(merchant_settings.update_settings(data)))


# -- reports ----------------------------------------------------------------------------

#: The cancellations report's range when none is given: the last 30 days.
REPORT_DAYS = 30


def _report_time(name: str, default: datetime) -> datetime:
    """A ``from``/``to`` query parameter: a date (midnight UTC) or a time with an offset."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"'{name}' must be a date like 2026-11-01 or a time like 2026-11-01T00:00:00Z.",
                           fields={name: "not a date or time"}) from None
    if value.tzinfo is None:
        if len(raw) > 10:
            raise InvalidInput(f"'{name}' needs an offset, e.g. 2026-11-01T00:00:00Z.",
                               fields={name: "a time without an offset"})
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@bp.get("/reports/cancellations")
def cancellations_report() -> Response:
    end = _report_time("to", utcnow() + timedelta(seconds=1))  # up to now, this second's requests included
    start = _report_time("from", end - timedelta(days=REPORT_DAYS))
    if start > end:
        raise InvalidInput("'from' must not be after 'to'.", fields={"from": "after 'to'"})
    return _answer(cancellations_by_reason(start, end))


# -- price points -----------------------------------------------------------------------


@bp.get("/price-points/<code>")
def get_price_point(code: str) -> Response:
    return _answer(price_point_to_dict(service.read_price_point(code)))


@bp.put("/price-points/<code>")
def put_price_point(code: str) -> Response:
    check_id(code, "code")
    data = parse_body(PricePointIn)
    price, created = service.upsert_price_point(code, data)
    return _answer(price_point_to_dict(price), 201 if created else 200)


# -- orders and payments ----------------------------------------------------------------


@bp.put("/orders/<order_id>")
def put_order(order_id: str) -> Response:
    check_id(order_id, "order_id")
    data = parse_body(OrderIn)
    purchase, created = service.upsert_order(order_id, data)
    return _answer(order_to_dict(purchase), 201 if created else 200)


@bp.get("/orders/<order_id>")
def get_order(order_id: str) -> Response:
    check_id(order_id, "order_id")
    return _answer(order_to_dict(service.get_purchase(order_id)))


@bp.post("/orders/<order_id>/payments")
def post_payment(order_id: str) -> Response:
    check_id(order_id, "order_id")
    data = parse_body(PaymentIn)
    payment, created = service.record_payment(order_id, data)
    return _answer(payment_to_dict(payment, payment.purchase), 201 if created else 200)


# -- the sandbox processor --------------------------------------------------------------


@bp.get("/sandbox/faults")
def get_faults() -> Response:
    return _answer(sandbox_faults.get_sandbox_faults())


@bp.put("/sandbox/faults")
def put_faults() -> Response:
    sandbox_faults.require_sandbox()
    data = parse_body(FaultsIn)
    return _answer(sandbox_faults.set_sandbox_faults(data))


# After the guards above: they authenticate the caller the key belongs to.
install_idempotency(bp, lambda: "merchant")

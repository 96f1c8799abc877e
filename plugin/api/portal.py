"""The customer portal's JSON API (contract section 4), under ``{prefix}/api/portal``.

Views only translate HTTP: the rules live in :mod:`plugin.portal.login`,
:mod:`plugin.portal.access` and :mod:`plugin.portal.actions`.

Before every view: self-service billing must be enabled (else 403
``portal_disabled``), and every state-changing request except the login must
carry the ``X-CSRFToken`` header with the token the login answered
(:mod:`plugin.portal.security`). Failed logins are rate limited
(:mod:`plugin.portal.limits`).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for
from flask.blueprints import BlueprintSetupState
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import generate_csrf

from ..errors import InvalidInput, NotFound, NotLoggedIn, error_response
from ..ledger.models import Lead
from ..ledger.schemas import Address
from ..portal import actions
from ..portal.access import check_door
from ..portal.auth import (
    current_lead_id,
    login_lead,
    logout,
    portal_blueprint,
    require_lead,
)
from ..portal.limits import (
    limit_link_view,
    limit_login_view,
    limit_lookup_view,
    mark_login_failed,
    order_lookup_wait_message,
    retry_after_seconds,
    too_many_message,
)
from ..portal.login import authenticate, parse_login
from ..portal.login_links import send_login_link, sent_message
from ..portal.order_lookup import LOOKUP_SENT_MESSAGE, parse_lookup, send_order_ids
from ..portal.security import check_json_csrf
from ..presenters import purchases_for_lead, request_to_dict
from .common import install_json_errors, parse_body, path_id, read_json
from .idempotency import install_idempotency

bp = Blueprint("self_billing_api_portal", __name__)
install_json_errors(bp)

_CSRF_EXEMPT = {"login", "login_link", "order_lookup"}


@bp.before_request
def _guard() -> None:
    check_door("api")
    endpoint = (request.endpoint or "").rsplit(".", 1)[-1]
    if endpoint not in _CSRF_EXEMPT:
        check_json_csrf()


@bp.errorhandler(RateLimitExceeded)
def _too_many(_err: RateLimitExceeded):
    seconds = retry_after_seconds()
    if (request.endpoint or "").endswith(".login_link"):
        message = "Several login links were asked for already: use the newest one in your email, or ask again later."
    elif (request.endpoint or "").endswith(".order_lookup"):
        message = order_lookup_wait_message(seconds)
    else:
        message = too_many_message(seconds)
    response = error_response(429, "rate_limited", message, retry_after=seconds)
    response.headers["Retry-After"] = str(seconds)
    return response


def _lead_dict(lead: Lead) -> dict[str, str]:
    return {"email": lead.email, "first_name": lead.first_name, "last_name": lead.last_name}


def _body() -> dict[str, Any]:
    """The JSON object sent; a request with no body at all (the optional body left out) is ``{}``."""
    if not request.content_length and not request.get_data(cache=True):
        return {}
    data = read_json()
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.")
    return data


def _reason_only(data: dict[str, Any]) -> Any:
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        raise InvalidInput(
            f"Only 'reason' may be sent; unknown: {', '.join(unknown)}.",
            fields={name: "unknown field" for name in unknown},
        )
    return data.get("reason")


# -- session ----------------------------------------------------------------------------


@bp.post("/login")
def login():
    fields = parse_login(read_json())
    try:
        lead = authenticate(fields.order_id, fields.email)
    except NotLoggedIn:
        mark_login_failed()
        raise
    login_lead(lead)
    return jsonify({"lead": _lead_dict(lead), "csrf_token": generate_csrf()})


@bp.post("/login-link")
def login_link():
    """Email a one-time login link to the customer (the way in while the login is paused): 202 always."""
    fields = parse_login(read_json())
    door = portal_blueprint()
    if door is not None:
        send_login_link(fields.order_id, fields.email,
                        lambda token: url_for(f"{door}.use_link", token=token, _external=True))
    return jsonify({"message": sent_message()}), 202


@bp.post("/order-lookup")
def order_lookup():
    """"Forgot your Order ID?": email the Order IDs of the address's purchases to it: 202 always."""
    email = parse_lookup(read_json())
    door = portal_blueprint()
    send_order_ids(email, url_for(f"{door}.index", _external=True) if door is not None else None)
    return jsonify({"message": LOOKUP_SENT_MESSAGE}), 202


@bp.post("/logout")
def logout_view():
    logout()
    return jsonify({"logged_out": True})


@bp.get("/session")
def session_view():
    """Who is logged in, with a fresh CSRF token (for clients whose token aged out)."""
    lead = require_lead()
    return jsonify({"lead": _lead_dict(lead), "csrf_token": generate_csrf()})


# -- purchases ----------------------------------------------------------------------------


@bp.get("/purchases")
def purchases():
    lead = require_lead()
    return jsonify({"purchases": purchases_for_lead(lead.id)})


@bp.get("/purchases/<order_id>")
def purchase(order_id: str):
    lead = require_lead()
    return jsonify(actions.present(actions.own_purchase(lead.id, order_id)))


@bp.get("/purchases/<order_id>/payments")
def payments(order_id: str):
    """A page of the purchase's payments, newest first; ``after`` is the ``next`` of the page before."""
    lead = require_lead()
    _purchase, page = actions.payment_history(lead.id, order_id, request.args.get("after") or None)
    return jsonify(page)


@bp.post("/purchases/<order_id>/cancel")
def cancel(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)  # 404 before reading the body
    data = _body()
    choice = data.pop("reason_choice", None) if isinstance(data, dict) else None
    if choice is not None and not isinstance(choice, str):
        raise InvalidInput("reason_choice must be one of the offered reasons, as text.",
                           fields={"reason_choice": "must be a string"})
    billing_request = actions.cancel_own_purchase(purchase, _reason_only(data), choice)
    return jsonify({"request": request_to_dict(billing_request, for_customer=True)}), 202


@bp.post("/purchases/<order_id>/resume")
def resume(order_id: str):
    """Keep my subscription: undo its scheduled cancellation; 200 with the purchase, active again."""
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    return jsonify(actions.present(actions.keep_own_subscription(purchase)))


@bp.post("/payments/<payment_id>/refund")
def refund(payment_id: str):
    lead = require_lead()
    _purchase, payment = actions.own_payment(lead.id, payment_id)  # 404 before reading the body
    billing_request = actions.refund_own_payment(payment, _reason_only(_body()))
    return jsonify({"request": request_to_dict(billing_request, for_customer=True)}), 202


@bp.put("/purchases/<order_id>/billing-address")
def billing_address(order_id: str):
    lead = require_lead()
    actions.own_purchase(lead.id, order_id)
    address = parse_body(Address)
    updated = actions.update_billing_address(lead.id, order_id, address)
    return jsonify(actions.present(updated))


# -- payment methods --------------------------------------------------------------------------


@bp.get("/purchases/<order_id>/payment-methods")
def payment_methods(order_id: str):
    lead = require_lead()
    _purchase, cards = actions.list_cards(lead.id, order_id)
    return jsonify({"payment_methods": [actions.card_to_dict(c) for c in cards]})


@bp.post("/purchases/<order_id>/payment-methods")
def add_payment_method(order_id: str):
    lead = require_lead()
    actions.own_purchase(lead.id, order_id)
    data = _body()
    unknown = sorted(set(data) - {"token", "make_default"})
    if unknown:
        raise InvalidInput(
            "Send only the processor's card token, as {\"token\": \"...\"}; never card numbers.",
            fields={name: "unknown field" for name in unknown},
        )
    make_default = data.get("make_default", False)
    if not isinstance(make_default, bool):
        raise InvalidInput("make_default must be true or false.", fields={"make_default": "must be true or false"})
    method, created = actions.add_card(lead.id, order_id, data.get("token"), make_default=make_default)
    return jsonify(actions.card_to_dict(method)), 201 if created else 200


def _method_id(raw: str) -> int:
    return path_id(raw, NotFound(actions.CARD_NOT_FOUND, code="payment_method_not_found"))


@bp.post("/purchases/<order_id>/payment-methods/<method_id>/default")
def default_payment_method(order_id: str, method_id: str):
    lead = require_lead()
    method = actions.set_default_card(lead.id, order_id, _method_id(method_id))
    return jsonify(actions.card_to_dict(method))


@bp.delete("/purchases/<order_id>/payment-methods/<method_id>")
def delete_payment_method(order_id: str, method_id: str):
    lead = require_lead()
    actions.remove_card(lead.id, order_id, _method_id(method_id))
    _purchase, cards = actions.list_cards(lead.id, order_id)
    return jsonify({"removed": True, "payment_methods": [actions.card_to_dict(c) for c in cards]})


# Registered last: the deferred route registrations above must have run first.
@bp.record
def _limit_logins(state: BlueprintSetupState) -> None:
    limit_login_view(state.app, f"{state.name_prefix}.{state.name}.login".lstrip("."))
    limit_link_view(state.app, f"{state.name_prefix}.{state.name}.login_link".lstrip("."))
    limit_lookup_view(state.app, f"{state.name_prefix}.{state.name}.order_lookup".lstrip("."))


def _caller() -> str:
    """Whose Idempotency-Keys these are: the logged-in lead's, else the client address's (the login)."""
    lead_id = current_lead_id()
    return f"lead:{lead_id}" if lead_id is not None else f"anon:{request.remote_addr}"


# After the guards above: they check the door and the CSRF header first.
install_idempotency(bp, _caller)

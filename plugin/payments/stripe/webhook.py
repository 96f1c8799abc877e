"""``POST {prefix}/webhooks/stripe``: Stripe's events, signature checked, each applied once.

The ``Stripe-Signature`` header is checked against ``SELF_BILLING_STRIPE_WEBHOOK_SECRET`` with the
library's ``Webhook.construct_event`` before anything is read; a bad or missing signature is a 400
in the contract's error form and writes nothing. An event id is claimed in ``sb_stripe_links``
(kind ``event``) on its own transaction: a repeat, or the same event arriving twice at once, answers
200 and does nothing. Each handler reads the object again from Stripe (:mod:`.sync`), so the order
events arrive in does not matter. A handler that fails gives the claim back and answers 5xx, and
Stripe sends the event again later; so does one that meets a step of ours still waiting for
Stripe's answer (409, :class:`.ledger_bridge.Deferred`).
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from ...db import db
from ...errors import error_response
from ..interface import GatewayError
from ..processor import gateway
from . import links
from .client import require_library, sid
from .gateway import StripeGateway
from .ledger_bridge import Deferred
from .sync import Sync

log = logging.getLogger(__name__)
bp = Blueprint("self_billing_stripe_webhooks", __name__)

#: The events to enable on the webhook endpoint in Stripe's dashboard (docs/stripe.md).
EVENTS = ("invoice.paid", "invoice.payment_succeeded", "payment_intent.succeeded", "charge.refunded",
          "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
          "customer.updated")


def _apply(sync: Sync, event_type: str, obj: dict[str, Any]) -> str:
    if event_type in ("invoice.paid", "invoice.payment_succeeded"):
        invoice = sync.fetch("reading the invoice", "invoices", obj["id"])
        return "payment recorded" if sync.invoice(invoice) else "nothing new"
    if event_type == "payment_intent.succeeded":
        pi = sync.fetch("reading the PaymentIntent", "payment_intents", obj["id"])
        return "purchase recorded" if sync.payment_intent(pi) else "nothing to record"
    if event_type == "charge.refunded":
        charge = sync.fetch("reading the charge", "charges", obj["id"])
        return f"{sync.charge_refunds(charge)} refund(s) recorded"
    if event_type.startswith("customer.subscription."):
        sub = sync.fetch("reading the subscription", "subscriptions", obj["id"])
        return f"purchase {sync.subscription(sub)}"
    if event_type == "customer.updated":
        return f"{sync.customer_changed(str(sid(obj.get('id'))))} order(s) followed"
    return "ignored"


@bp.post("/stripe")
def stripe_event():
    secret = current_app.config.get("SELF_BILLING_STRIPE_WEBHOOK_SECRET")
    if not secret:
        return error_response(404, "stripe_webhook_not_configured",
                              "Stripe webhooks are not configured here (SELF_BILLING_STRIPE_WEBHOOK_SECRET).")
    stripe = require_library()
    payload = request.get_data(cache=False)
    try:
        event = stripe.Webhook.construct_event(
            payload, request.headers.get("Stripe-Signature"), secret,
            tolerance=int(current_app.config.get("SELF_BILLING_STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300)))
    except stripe.SignatureVerificationError:
        return error_response(400, "invalid_signature",
                              "The Stripe-Signature header is missing or does not match this endpoint's secret.")
    except ValueError:
        return error_response(400, "invalid_payload", "The body is not a Stripe event.")
    event_id, event_type = str(event["id"]), str(event["type"])
    obj = event["data"]["object"]
    obj = {"id": obj["id"]} if not isinstance(obj, dict) else obj
    processor = gateway()
    if not isinstance(processor, StripeGateway):
        processor = StripeGateway()
    if event_type not in EVENTS:
        return jsonify({"received": True, "applied": "ignored"})
    if not links.claim("event", event_id, event_type):
        return jsonify({"received": True, "applied": "already"})
    try:
        done = _apply(Sync(processor), event_type, obj)
    except Deferred as wait:
        links.release("event", event_id)
        return error_response(409, "event_deferred", f"{wait} Send it again later.")
    except GatewayError as err:
        db.session.rollback()
        links.release("event", event_id)
        return error_response(503, "processor_unavailable", f"Could not read the event's objects: {err.message}")
    except BaseException:
        db.session.rollback()
        links.release("event", event_id)
        raise
    log.info("Stripe event %s (%s): %s", event_id, event_type, done)
    return jsonify({"received": True, "applied": done})

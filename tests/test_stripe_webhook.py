"""``POST {prefix}/webhooks/stripe`` against localstripe: signed events applied once, forged ones refused.

Events are signed here as Stripe signs them (``tests.stripe_server.sign``) around the objects as
localstripe has them; one test has localstripe itself deliver its signed webhooks to a served app.
localstripe never sends ``charge.refunded`` nor ``customer.subscription.updated``: those are sent
here, after the change was made in localstripe (the handlers read the object again from Stripe).
"""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from plugin.db import db
from plugin.ledger.models import Payment, Purchase
from plugin.ledger.service import update_settings
from plugin.payments.stripe.models import StripeLink
from tests.conftest import Customer
from tests.stripe_server import (  # noqa: F401
    _localstripe_server,
    client,
    event,
    localstripe_url,
    need_stripe,
    register_webhook,
    sign,
    stripe_config,
)
from tests.test_stripe_gateway import card, stripe_subscription

need_stripe()
URL = "/billing/webhooks/stripe"


@pytest.fixture
def stripe_app(make_app, localstripe_url):  # noqa: F811
    app = make_app(**stripe_config(localstripe_url))
    with app.app_context():
        update_settings({"enabled": True})
    return app


@pytest.fixture
def api(localstripe_url):  # noqa: F811
    return client(localstripe_url)


def send(app, event_type: str, obj: dict[str, Any], event_id: str | None = None, signature: str | None = None):
    body = event(event_type, obj, event_id)
    headers = {"Content-Type": "application/json", "Stripe-Signature": signature or sign(body)}
    return app.test_client().post(URL, data=body, headers=headers)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def purchases(app, order_id: str, email: str = "ann@example.com") -> list[dict[str, Any]]:
    customer = Customer(app.test_client())
    assert customer.login(order_id, email).status_code == 200
    return customer.get("/purchases").get_json()["purchases"]


def test_a_forged_or_unsigned_event_is_refused_and_writes_nothing(stripe_app, api):
    made = stripe_subscription(api)
    body = event("invoice.payment_succeeded", {"id": made["invoice"]})
    forged = stripe_app.test_client().post(URL, data=body, headers={"Stripe-Signature": sign(body, "whsec_wrong")})
    assert forged.status_code == 400
    assert forged.get_json()["error"]["code"] == "invalid_signature"
    assert forged.get_json()["error"]["message"]
    unsigned = stripe_app.test_client().post(URL, data=body)
    assert unsigned.status_code == 400 and unsigned.get_json()["error"]["code"] == "invalid_signature"
    old = stripe_app.test_client().post(URL, data=body, headers={"Stripe-Signature": sign(body, timestamp=1)})
    assert old.status_code == 400
    assert count(stripe_app, StripeLink) == 0
    assert count(stripe_app, Payment) == 0


def test_a_paid_invoice_records_a_payment_once_whatever_how_often(stripe_app, api):
    made = stripe_subscription(api)
    first = send(stripe_app, "invoice.payment_succeeded", {"id": made["invoice"]}, "evt_1")
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["applied"] == "payment recorded"
    assert send(stripe_app, "invoice.payment_succeeded", {"id": made["invoice"]}, "evt_1").get_json()["applied"] == "already"
    assert send(stripe_app, "invoice.paid", {"id": made["invoice"]}, "evt_2").get_json()["applied"] == "nothing new"
    assert count(stripe_app, Payment) == 1
    [purchase] = purchases(stripe_app, "ORD-1")
    assert [p["payment_id"] for p in purchase["payments"]] == [made["invoice"]]


def test_a_refund_made_in_stripe_shows_as_refunded_in_the_portal(stripe_app, api):
    made = stripe_subscription(api)
    send(stripe_app, "invoice.paid", {"id": made["invoice"]})
    invoice = api.invoices.retrieve(made["invoice"])
    charge = invoice.charge if isinstance(invoice.charge, str) else invoice.charge.id
    api.refunds.create(params={"charge": charge, "amount": 1500})  # in Stripe's dashboard
    answer = send(stripe_app, "charge.refunded", {"id": charge, "object": "charge"}, "evt_r1")
    assert answer.get_json()["applied"] == "1 refund(s) recorded"
    assert send(stripe_app, "charge.refunded", {"id": charge}, "evt_r2").get_json()["applied"] == "0 refund(s) recorded"
    [purchase] = purchases(stripe_app, "ORD-1")
    assert (purchase["payments"][0]["status"], purchase["payments"][0]["refunded_amount"]) == (
        "partially_refunded", "15.00")
    api.refunds.create(params={"charge": charge, "amount": 3400})
    send(stripe_app, "charge.refunded", {"id": charge}, "evt_r3")
    [purchase] = purchases(stripe_app, "ORD-1")
    assert (purchase["payments"][0]["status"], purchase["payments"][0]["refunded_amount"]) == ("refunded", "49.00")


def test_a_subscription_scheduled_or_cancelled_in_stripe_shows_so(stripe_app, api):
    made = stripe_subscription(api)
    send(stripe_app, "customer.subscription.created", {"id": made["subscription"]})
    api.subscriptions.update(made["subscription"], params={"cancel_at_period_end": True})
    send(stripe_app, "customer.subscription.updated", {"id": made["subscription"]})
    [purchase] = purchases(stripe_app, "ORD-1")
    assert purchase["status"] == "cancel_scheduled" and purchase["cancels_at"]
    api.subscriptions.update(made["subscription"], params={"cancel_at_period_end": False})
    send(stripe_app, "customer.subscription.updated", {"id": made["subscription"]}, "evt_resumed")
    assert purchases(stripe_app, "ORD-1")[0]["status"] == "active"
    api.subscriptions.cancel(made["subscription"])
    send(stripe_app, "customer.subscription.deleted", {"id": made["subscription"]})
    [purchase] = purchases(stripe_app, "ORD-1")
    assert purchase["status"] == "cancelled" and purchase["cancelled_at"]


def test_a_customer_email_change_is_followed(stripe_app, api):
    made = stripe_subscription(api)
    send(stripe_app, "customer.subscription.created", {"id": made["subscription"]})
    api.customers.update(made["customer"], params={"email": "ann.new@example.com"})
    assert send(stripe_app, "customer.updated", {"id": made["customer"]}).status_code == 200
    assert purchases(stripe_app, "ORD-1", "ann.new@example.com")[0]["order_id"] == "ORD-1"
    assert Customer(stripe_app.test_client()).login("ORD-1", "ann@example.com").status_code == 401


def test_a_one_time_payment_intent_is_a_purchase_with_its_order_id(stripe_app, api):
    method = card(api)
    customer = api.customers.create(params={"email": "bo@example.com", "name": "Bo Chen", "payment_method": method})
    pi = api.payment_intents.create(params={"amount": 1999, "currency": "eur", "customer": customer.id,
                                            "payment_method": method, "confirm": True,
                                            "metadata": {"order_id": "ONE-1"}})
    assert send(stripe_app, "payment_intent.succeeded", {"id": pi.id}).get_json()["applied"] == "purchase recorded"
    [purchase] = purchases(stripe_app, "ONE-1", "bo@example.com")
    assert (purchase["kind"], purchase["amount"], purchase["currency"]) == ("one_time", "19.99", "EUR")
    assert [p["payment_id"] for p in purchase["payments"]] == [pi.id]
    plain = api.payment_intents.create(params={"amount": 500, "currency": "usd", "customer": customer.id,
                                               "payment_method": method, "confirm": True})
    send(stripe_app, "payment_intent.succeeded", {"id": plain.id})
    assert purchases(stripe_app, plain.id, "bo@example.com")[0]["payments"][0]["payment_id"] == plain.id


def test_an_event_whose_objects_stripe_cannot_give_is_not_marked_seen(stripe_app):
    answer = send(stripe_app, "invoice.paid", {"id": "in_missing"}, "evt_missing")
    assert answer.status_code == 503
    assert count(stripe_app, StripeLink, StripeLink.kind == "event") == 0


def test_localstripe_delivers_signed_events_and_the_subscription_appears(stripe_app, api, localstripe_url):  # noqa: F811
    server = make_server("127.0.0.1", 0, stripe_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        register_webhook(localstripe_url, f"http://127.0.0.1:{server.server_port}{URL}")
        made = stripe_subscription(api, order_id="ORD-LIVE")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if count(stripe_app, Payment, Payment.payment_id == made["invoice"]):
                break
            time.sleep(0.2)
        assert count(stripe_app, Purchase, Purchase.order_id == "ORD-LIVE") == 1
        assert count(stripe_app, Payment, Payment.payment_id == made["invoice"]) == 1
    finally:
        register_webhook(localstripe_url, "http://127.0.0.1:9/none", events=[])
        server.shutdown()

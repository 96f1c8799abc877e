"""Keep my subscription with Stripe (localstripe): the subscription's ``cancel_at_period_end`` goes back to false.

The portal's cancel sets it (the price point cancels at the period end); the portal's resume clears it
with ``<request>:resume`` as Stripe's idempotency key, and the purchase is active again.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from plugin.db import db
from plugin.payments.interface import CancelOrder, GatewayError, PurchaseRef, ResumeOrder
from plugin.payments.records import ProcessorCall
from tests.conftest import Customer
from tests.stripe_server import _localstripe_server, client, localstripe_url, need_stripe, stripe_config  # noqa: F401
from tests.test_stripe_gateway import _fake, imported, settings, stripe_subscription

need_stripe()


def test_keep_my_subscription_clears_cancel_at_period_end_in_stripe(make_app, localstripe_url):  # noqa: F811
    app = make_app(**stripe_config(localstripe_url))
    api = client(localstripe_url)
    made = stripe_subscription(api)
    imported(app, made["subscription"])
    settings(app)  # Stripe's price points cancel at the period end by default
    customer = Customer(app.test_client())
    assert customer.login("ORD-1").status_code == 200
    assert customer.post("/purchases/ORD-1/cancel", json={}).status_code == 202
    assert api.subscriptions.retrieve(made["subscription"]).cancel_at_period_end is True

    answer = customer.post("/purchases/ORD-1/resume")
    assert answer.status_code == 200, answer.get_json()
    assert (answer.get_json()["status"], answer.get_json()["cancels_at"]) == ("active", None)
    sub = api.subscriptions.retrieve(made["subscription"])
    assert sub.cancel_at_period_end is False and sub.status == "active"
    with app.app_context():
        [call] = db.session.execute(select(ProcessorCall).where(
            ProcessorCall.operation == "resume_subscription")).scalars().all()
        assert call.ok and call.gateway == "stripe" and call.idempotency_key.endswith(":resume")


def test_resume_is_idempotent_at_stripe_and_an_ended_subscription_is_refused(make_app, localstripe_url):  # noqa: F811
    app = make_app(**stripe_config(localstripe_url))
    api = client(localstripe_url)
    made = stripe_subscription(api)
    imported(app, made["subscription"])
    ref = PurchaseRef(order_id="ORD-1", kind="subscription", payment_type="card", currency="USD")
    with app.app_context():
        gateway = app.extensions["self_billing"].gateway
        gateway.cancel_subscription(CancelOrder(ref, at_period_end=True, idempotency_key="req_r"))
        first = gateway.resume_subscription(ResumeOrder(ref, idempotency_key="req_r:resume"))
        again = gateway.resume_subscription(ResumeOrder(ref, idempotency_key="req_r:resume"))
        assert first.reference == again.reference == made["subscription"]
        assert api.subscriptions.retrieve(made["subscription"]).cancel_at_period_end is False
        gateway.cancel_subscription(CancelOrder(ref, at_period_end=False, idempotency_key="req_r:now"))
        with pytest.raises(GatewayError):  # Stripe refuses, or answers with a subscription that has ended
            gateway.resume_subscription(ResumeOrder(ref, idempotency_key="req_r2:resume"))


def test_resume_sends_cancel_at_period_end_false_with_the_key(make_app, localstripe_url):  # noqa: F811
    app = make_app(**stripe_config(localstripe_url))
    ref = PurchaseRef(order_id="sub_9", kind="subscription", payment_type="card", currency="USD")
    with app.app_context():
        gateway, recorder = _fake(app, {"subscriptions.update": {"id": "sub_9", "status": "active",
                                                                 "cancel_at_period_end": False}})
        assert gateway.resume_subscription(ResumeOrder(ref, idempotency_key="req_9:resume")).reference == "sub_9"
    assert recorder.calls == [("subscriptions.update", ("sub_9",), {
        "params": {"cancel_at_period_end": False}, "options": {"idempotency_key": "req_9:resume"}})]

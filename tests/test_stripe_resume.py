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


def test_a_cancellation_undone_in_stripe_ends_our_request_and_the_customer_may_cancel_again(
        make_app, localstripe_url):  # noqa: F811
    """The customer scheduled the end through the portal, then renewed in Stripe's own portal: the webhook
    leaves no open request behind (it would block a new cancellation and never end), and the customer is told."""
    from plugin.notifications.models import OutboxEmail
    from plugin.workflows.models import BillingRequest
    from tests.stripe_server import event, sign

    app = make_app(**stripe_config(localstripe_url))
    api = client(localstripe_url)
    made = stripe_subscription(api)
    imported(app, made["subscription"])
    settings(app)
    customer = Customer(app.test_client())
    assert customer.login("ORD-1").status_code == 200
    request_id = customer.post("/purchases/ORD-1/cancel", json={}).get_json()["request"]["id"]
    [purchase] = customer.get("/purchases").get_json()["purchases"]
    assert purchase["status"] == "cancel_scheduled" and purchase["actions"]["cancel"] is False

    api.subscriptions.update(made["subscription"], params={"cancel_at_period_end": False})  # in Stripe
    body = event("customer.subscription.updated", {"id": made["subscription"]}, "evt_renewed_in_stripe")
    answer = app.test_client().post("/billing/webhooks/stripe", data=body,
                                    headers={"Content-Type": "application/json", "Stripe-Signature": sign(body)})
    assert answer.status_code == 200, answer.get_json()

    [purchase] = customer.get("/purchases").get_json()["purchases"]
    assert (purchase["status"], purchase["cancels_at"], purchase["next_payment_at"] is not None) == (
        "active", None, True)
    assert purchase["actions"]["cancel"] is True and purchase["actions"]["resume"] is False
    [request] = [r for r in purchase["requests"] if r["id"] == request_id]
    assert (request["state"], request["outcome"]) == ("resolved", "resumed")
    assert request["history"][-1]["event"] == "resumed_at_processor"
    with app.app_context():
        assert db.session.scalar(select(BillingRequest.open_slot).where(BillingRequest.public_id == request_id)) is None
        kinds = db.session.execute(select(OutboxEmail.kind).where(OutboxEmail.order_id == "ORD-1")).scalars().all()
    assert "cancellation_undone" in kinds
    # and a new cancellation goes through again
    assert customer.post("/purchases/ORD-1/cancel", json={}).status_code == 202
    assert api.subscriptions.retrieve(made["subscription"]).cancel_at_period_end is True

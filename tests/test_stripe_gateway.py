"""The Stripe adapter against a real, stateful Stripe API on loopback (localstripe), end to end.

A customer, card and monthly subscription made in Stripe become a purchase (as the import and the
webhook make them); then refunds, cancellations and card changes go to Stripe with our request's
key as Stripe's idempotency key. localstripe enforces neither idempotency keys nor refund caps, so
"exactly one Stripe refund" here is proved by our own guards alone.
"""
from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from plugin.db import db
from plugin.ledger.models import Payment, Refund
from plugin.ledger.service import update_settings
from plugin.payments import processor
from plugin.payments.interface import (
    CancelOrder,
    CardDeclined,
    GatewayError,
    InvalidToken,
    PayPalManaged,
    ProcessorOutage,
    PurchaseRef,
    RefundOrder,
)
from plugin.payments.stripe.gateway import KEY_METADATA, StripeGateway
from plugin.payments.stripe.sync import Sync
from plugin.workflows import service as workflows
from plugin.workflows.models import BillingRequest
from tests.conftest import Customer
from tests.stripe_server import _localstripe_server, client, localstripe_url, need_stripe, stripe_config  # noqa: F401

need_stripe()

VISA, DECLINED = "4242424242424242", "4000000000000002"


def card(api: Any, number: str = VISA) -> str:
    return api.payment_methods.create(params={"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}).id


def stripe_subscription(api: Any, email: str = "ann@example.com", order_id: str | None = "ORD-1",
                        amount: int = 4900) -> dict[str, Any]:
    """What a merchant has in Stripe: a customer with a card and a monthly subscription."""
    product = api.products.create(params={"name": "Pro Plan"})
    plan = api.plans.create(params={"amount": amount, "currency": "usd", "interval": "month", "product": product.id})
    method = card(api)
    customer = api.customers.create(params={"email": email, "name": "Ann Lee", "payment_method": method,
                                            "invoice_settings": {"default_payment_method": method}})
    params: dict[str, Any] = {"customer": customer.id, "items": [{"plan": plan.id}]}
    if order_id:
        params["metadata"] = {"order_id": order_id}
    sub = api.subscriptions.create(params=params)
    return {"customer": customer.id, "subscription": sub.id, "invoice": sub.latest_invoice, "card": method,
            "plan": plan.id}


def imported(app, sub_id: str) -> str:
    with app.app_context():
        gateway = app.extensions["self_billing"].gateway
        sub = gateway._call("test", gateway.api.subscriptions.retrieve, sub_id)
        return Sync(gateway).subscription(sub, invoices=True)


@pytest.fixture
def stripe_app(make_app, localstripe_url):  # noqa: F811
    return make_app(**stripe_config(localstripe_url))


@pytest.fixture
def api(localstripe_url):  # noqa: F811
    return client(localstripe_url)


def settings(app, refunds: str = "automatic", cancellation: str = "automatic") -> None:
    with app.app_context():
        update_settings({"enabled": True, "refunds": {"mode": refunds}, "cancellation": {"mode": cancellation}})


def stripe_refunds(api: Any, charge_or_pi: dict[str, str]) -> list[Any]:
    return list(api.refunds.list(params={"limit": 100, **charge_or_pi}).auto_paging_iter())


def test_a_stripe_subscription_becomes_a_purchase_the_customer_logs_in_to(stripe_app, api):
    made = stripe_subscription(api)
    assert imported(stripe_app, made["subscription"]) == "ORD-1"
    settings(stripe_app, "request", "request")
    customer = Customer(stripe_app.test_client())
    assert customer.login("ORD-1", " Ann@Example.com ").status_code == 200
    [purchase] = customer.get("/purchases").get_json()["purchases"]
    assert (purchase["kind"], purchase["status"], purchase["amount"], purchase["currency"]) == (
        "subscription", "active", "49.00", "USD")
    assert purchase["product"] == "Pro Plan"
    assert [p["payment_id"] for p in purchase["payments"]] == [made["invoice"]]
    assert purchase["payment_method"]["last4"] == "4242"


def test_without_order_id_metadata_the_order_id_is_the_subscription_id(stripe_app, api):
    made = stripe_subscription(api, order_id=None)
    assert imported(stripe_app, made["subscription"]) == made["subscription"]
    settings(stripe_app, "request", "request")
    assert Customer(stripe_app.test_client()).login(made["subscription"]).status_code == 200


def test_twenty_concurrent_automatic_refund_requests_make_one_stripe_refund(stripe_app, api):
    made = stripe_subscription(api)
    imported(stripe_app, made["subscription"])
    settings(stripe_app)
    with stripe_app.app_context():
        pay_pk = db.session.execute(select(Payment.id).where(Payment.payment_id == made["invoice"])).scalar_one()
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def submit() -> None:
        with stripe_app.app_context():
            barrier.wait()
            try:
                outcomes.append(workflows.submit_refund(db.session.get(Payment, pay_pk)).public_id)
            except Exception as err:  # the losers: already refunded / a request is open
                outcomes.append(getattr(err, "code", repr(err)))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=submit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 20
    invoice = api.invoices.retrieve(made["invoice"])
    refunds = stripe_refunds(api, {"payment_intent": invoice.payment_intent})
    assert [r.amount for r in refunds] == [4900]
    with stripe_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BillingRequest)) == 1
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
        payment = db.session.get(Payment, pay_pk)
        assert (payment.refunded_cents, payment.status) == (4900, "refunded")
        assert db.session.scalars(select(Refund.processor_reference)).one() == refunds[0].id
        assert refunds[0].metadata[KEY_METADATA] == db.session.scalars(select(BillingRequest.public_id)).one()


def _order(app, made, amount: int, key: str, paid: int = 4900) -> RefundOrder:
    ref = PurchaseRef(order_id="ORD-1", kind="subscription", payment_type="card", currency="USD")
    return RefundOrder(purchase=ref, payment_id=made["invoice"], paid_cents=paid, currency="USD",
                       amount_cents=amount, idempotency_key=key)


def test_a_retry_with_the_same_key_after_a_lost_answer_makes_no_second_refund(stripe_app, api):
    made = stripe_subscription(api)
    imported(stripe_app, made["subscription"])
    with stripe_app.app_context():
        gateway = stripe_app.extensions["self_billing"].gateway
        first = gateway.refund(_order(stripe_app, made, 1000, "req_lost"))   # ... its answer is lost
        again = gateway.refund(_order(stripe_app, made, 1000, "req_lost"))   # the retry, same key
        assert again.reference == first.reference and again.amount_cents == 1000
        partial = gateway.refund(_order(stripe_app, made, 2000, "req_partial"))
        assert partial.reference != first.reference
        with pytest.raises(GatewayError, match="more than what remains"):
            gateway.refund(_order(stripe_app, made, 2000, "req_too_much"))  # 1900 remain at Stripe
    invoice = api.invoices.retrieve(made["invoice"])
    assert sorted(r.amount for r in stripe_refunds(api, {"payment_intent": invoice.payment_intent})) == [1000, 2000]


def test_cancel_at_period_end_from_the_portal_sets_it_in_stripe(stripe_app, api):
    made = stripe_subscription(api)
    imported(stripe_app, made["subscription"])
    settings(stripe_app)  # Stripe's price points cancel at the period end by default
    customer = Customer(stripe_app.test_client())
    customer.login("ORD-1")
    answer = customer.post("/purchases/ORD-1/cancel", json={"reason": "too expensive"})
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["request"]["outcome"] == "cancel_scheduled"
    sub = api.subscriptions.retrieve(made["subscription"])
    assert sub.cancel_at_period_end is True and sub.status == "active"
    [purchase] = customer.get("/purchases").get_json()["purchases"]
    assert purchase["status"] == "cancel_scheduled"


def test_cancel_now_cancels_the_subscription_once(stripe_app, api):
    made = stripe_subscription(api)
    imported(stripe_app, made["subscription"])
    ref = PurchaseRef(order_id="ORD-1", kind="subscription", payment_type="card", currency="USD")
    with stripe_app.app_context():
        gateway = stripe_app.extensions["self_billing"].gateway
        first = gateway.cancel_subscription(CancelOrder(ref, at_period_end=False, idempotency_key="req_c:now"))
        again = gateway.cancel_subscription(CancelOrder(ref, at_period_end=False, idempotency_key="req_c:now"))
    assert first.reference == again.reference == made["subscription"]
    assert api.subscriptions.retrieve(made["subscription"]).status == "canceled"


def test_cards_attach_become_default_detach_and_a_decline_is_402(stripe_app, api):
    made = stripe_subscription(api)
    imported(stripe_app, made["subscription"])
    settings(stripe_app)
    customer = Customer(stripe_app.test_client())
    customer.login("ORD-1")
    new = card(api, "5555555555554444")  # another card than the subscription's Visa 4242
    added = customer.post("/purchases/ORD-1/payment-methods", json={"token": new})
    assert added.status_code == 201, added.get_json()
    assert (added.get_json()["last4"], added.get_json()["default"]) == ("4444", False)
    assert api.payment_methods.retrieve(new).customer == made["customer"]
    assert customer.post(f"/purchases/ORD-1/payment-methods/{added.get_json()['id']}/default").status_code == 200
    stripe_customer = api.customers.retrieve(made["customer"])
    assert stripe_customer.invoice_settings.default_payment_method == new
    methods = customer.get("/purchases/ORD-1/payment-methods").get_json()["payment_methods"]
    old = next(m for m in methods if not m["default"])
    assert customer.delete(f"/purchases/ORD-1/payment-methods/{old['id']}").status_code == 200
    assert api.payment_methods.retrieve(made["card"]).customer is None  # the imported card, detached in Stripe

    again = customer.post("/purchases/ORD-1/payment-methods", json={"token": card(api, "5555555555554444")})
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "card_already_saved")  # typed twice
    assert len(customer.get("/purchases/ORD-1/payment-methods").get_json()["payment_methods"]) == 1
    declined = customer.post("/purchases/ORD-1/payment-methods", json={"token": card(api, DECLINED)})
    assert declined.status_code == 402
    assert declined.get_json()["error"]["code"] == "card_declined"
    unknown = customer.post("/purchases/ORD-1/payment-methods", json={"token": "pm_unknown123"})
    assert (unknown.status_code, unknown.get_json()["error"]["code"]) == (400, "invalid_token")


def test_stripe_down_moves_no_money_and_tickets_the_request(make_app, localstripe_url, api):  # noqa: F811
    working = make_app(**stripe_config(localstripe_url))
    made = stripe_subscription(api)
    imported(working, made["subscription"])
    down = make_app(**stripe_config("http://127.0.0.1:9", SELF_BILLING_STRIPE_TIMEOUT_SECONDS=2,
                                    SELF_BILLING_STRIPE_MAX_NETWORK_RETRIES=0))
    settings(down)
    customer = Customer(down.test_client())
    customer.login("ORD-1")
    [purchase] = customer.get("/purchases").get_json()["purchases"]
    answer = customer.post(f"/payments/{purchase['payments'][0]['payment_id']}/refund", json={})
    assert answer.status_code == 202
    assert answer.get_json()["request"]["state"] == "ticketed"
    invoice = api.invoices.retrieve(made["invoice"])
    assert stripe_refunds(api, {"payment_intent": invoice.payment_intent}) == []
    with down.app_context():
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
        with pytest.raises(ProcessorOutage):
            down.extensions["self_billing"].gateway.refund(_order(down, made, 100, "req_x"))


def test_paypal_purchases_keep_pointing_to_paypal(stripe_app):
    ref = PurchaseRef(order_id="ORD-P", kind="subscription", payment_type="paypal", currency="USD")
    with stripe_app.app_context():
        gateway = stripe_app.extensions["self_billing"].gateway
        with pytest.raises(PayPalManaged):
            gateway.attach_payment_method(ref, "pm_x")
        assert isinstance(processor.user_error(PayPalManaged("x")), Exception)


# -- the exact requests the adapter sends (no server) ---------------------------------------------


class Recorder:
    """A fake of the StripeClient's v1 services that records every call."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.answers = answers

    def __getattr__(self, service: str) -> Any:
        recorder = self

        class Service:
            def __getattr__(self, method: str) -> Any:
                def call(*args: Any, **kwargs: Any) -> Any:
                    recorder.calls.append((f"{service}.{method}", args, kwargs))
                    answer = recorder.answers.get(f"{service}.{method}")
                    if isinstance(answer, Exception):
                        raise answer
                    return answer

                return call

        return Service()


class Listed:
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def auto_paging_iter(self):
        return iter(self.items)


def _fake(app, answers: dict[str, Any]) -> tuple[StripeGateway, Recorder]:
    gateway = StripeGateway()
    recorder = Recorder(answers)
    gateway._client = type("Client", (), {"v1": recorder})()
    return gateway, recorder


def test_a_refund_sends_the_request_key_as_idempotency_key_and_the_amount_in_cents(stripe_app):
    with stripe_app.app_context():
        gateway, recorder = _fake(stripe_app, {
            "refunds.list": Listed([{"id": "re_other", "amount": 900, "status": "succeeded", "metadata": {}}]),
            "refunds.create": {"id": "re_new", "amount": 1900, "status": "succeeded"}})
        ref = PurchaseRef(order_id="sub_1", kind="subscription", payment_type="card", currency="USD")
        result = gateway.refund(RefundOrder(ref, "pi_123", 4900, "USD", 1900, "req_abc"))
    assert result.reference == "re_new"
    assert recorder.calls[0] == ("refunds.list", (), {"params": {"limit": 100, "payment_intent": "pi_123"}})
    name, args, kwargs = recorder.calls[1]
    assert name == "refunds.create"
    assert kwargs["options"] == {"idempotency_key": "req_abc"}
    assert kwargs["params"]["amount"] == 1900 and kwargs["params"]["payment_intent"] == "pi_123"
    assert kwargs["params"]["metadata"][KEY_METADATA] == "req_abc"


def test_cancel_at_period_end_sends_cancel_at_period_end_with_the_key(stripe_app):
    with stripe_app.app_context():
        gateway, recorder = _fake(stripe_app, {"subscriptions.update": {"id": "sub_9", "cancel_at_period_end": True}})
        ref = PurchaseRef(order_id="sub_9", kind="subscription", payment_type="card", currency="USD")
        result = gateway.cancel_subscription(CancelOrder(ref, at_period_end=True, idempotency_key="req_9"))
    assert result.at_period_end is True
    assert recorder.calls == [("subscriptions.update", ("sub_9",), {
        "params": {"cancel_at_period_end": True}, "options": {"idempotency_key": "req_9"}})]


def test_library_errors_become_gateway_errors(stripe_app):
    stripe = need_stripe()
    ref = PurchaseRef(order_id="sub_9", kind="subscription", payment_type="card", currency="USD")
    cases = [(stripe.APIConnectionError("timed out"), ProcessorOutage),
             (stripe.CardError("declined", "card", "card_declined"), CardDeclined),
             (stripe.InvalidRequestError("No such PaymentMethod", "payment_method", code="resource_missing",
                                         http_status=404), InvalidToken)]
    for error, expected in cases:
        with stripe_app.app_context():
            gateway, _ = _fake(stripe_app, {"payment_methods.attach": error,
                                                "subscriptions.retrieve": {"id": "sub_9", "customer": "cus_1"}})
            with pytest.raises(expected):
                gateway.attach_payment_method(ref, "pm_1")

"""Every call to the payment processor leaves a row in ``sb_processor_calls``: a refund with its amount,
key and the processor's reference; an injected outage with its error; card changes too. An adapter that
lets a raw exception out is an outage: the request goes to an agent, nothing is refunded, and the trail
says so.
"""
from __future__ import annotations

from sqlalchemy import select

from plugin.db import db
from plugin.payments.records import ProcessorCall
from plugin.payments.sandbox import SandboxGateway

from .conftest import ADMIN_TOKEN
from .test_sandbox import TOKENS, card

FAULTS = "/billing/api/admin/sandbox/faults"


def _shop(ledger) -> None:
    ledger.settings(enabled=True, refunds={"mode": "automatic"}, cancellation={"mode": "automatic"})
    ledger.price(refund_window_days=3650)
    ledger.order("ORD-1", purchased_at="2026-11-20T10:00:00Z")
    ledger.payment("ORD-1", "PAY-1", "2026-11-20T10:00:00Z")
    ledger.payment("ORD-1", "PAY-2", "2026-11-21T10:00:00Z")


def _calls(app) -> list[ProcessorCall]:
    with app.app_context():
        rows = db.session.execute(select(ProcessorCall).order_by(ProcessorCall.id)).scalars().all()
        db.session.expunge_all()
        return list(rows)


def test_a_refund_and_an_outage_before_it_are_both_on_the_trail(app, ledger, client, customer):
    _shop(ledger)
    client.put(FAULTS, json={"refund": 1}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert customer.login("ORD-1").status_code == 200
    first = customer.post("/payments/PAY-1/refund", json={"reason": "Twice"})
    assert first.status_code == 202 and first.get_json()["request"]["state"] == "ticketed"
    [failed] = _calls(app)
    assert (failed.operation, failed.ok, failed.error_code) == ("refund", False, "processor_unavailable")
    assert failed.amount_cents == 4900 and failed.currency == "USD" and failed.idempotency_key.startswith("req_")
    assert "fault injection" in failed.error_message and failed.gateway == "sandbox"
    second = customer.post("/payments/PAY-2/refund", json={})
    assert second.get_json()["request"]["outcome"] == "refunded"
    failed, made = _calls(app)
    assert (made.operation, made.ok, made.amount_cents) == ("refund", True, 4900)
    assert made.reference.startswith("re_") and made.idempotency_key == second.get_json()["request"]["id"]
    assert made.request_id is not None and made.payment_id != failed.payment_id


def test_a_card_added_is_on_the_trail(app, ledger, client, customer):
    _shop(ledger)
    token = client.post(TOKENS, json=card()).get_json()["token"]
    assert customer.login("ORD-1").status_code == 200
    assert customer.post("/purchases/ORD-1/payment-methods", json={"token": token}).status_code == 201
    [call] = _calls(app)
    assert (call.operation, call.ok, call.reference) == ("attach_card", True, "visa 4242")


class _BrokenGateway(SandboxGateway):
    name = "broken"

    def refund(self, order):  # noqa: ANN001 - an adapter with a bug: a raw library error escapes
        raise TimeoutError("read timed out")


def make_broken_gateway() -> _BrokenGateway:
    return _BrokenGateway()


def test_an_adapters_raw_exception_is_an_outage_that_moves_no_money(make_app):
    from .conftest import Ledger, Customer

    app = make_app(SELF_BILLING_GATEWAY="tests.test_processor_calls:make_broken_gateway")
    ledger = Ledger(app)
    ledger.settings(enabled=True, refunds={"mode": "automatic"})
    ledger.price(refund_window_days=3650)
    ledger.order("ORD-1", purchased_at="2026-11-20T10:00:00Z")
    ledger.payment("ORD-1", "PAY-1", "2026-11-20T10:00:00Z")
    customer = Customer(app.test_client())
    assert customer.login("ORD-1").status_code == 200
    answer = customer.post("/payments/PAY-1/refund", json={})
    assert answer.status_code == 202
    body = answer.get_json()["request"]
    assert body["state"] == "ticketed" and body["outcome"] is None  # an agent takes it; nothing refunded
    [call] = _calls(app)
    assert (call.gateway, call.ok, call.error_code) == ("broken", False, "processor_unavailable")
    assert "TimeoutError" in call.error_message

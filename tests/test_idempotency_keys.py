"""``Idempotency-Key``: a retried state-changing request replays the first answer and does nothing again."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from plugin.db import db
from tests.agent_support import ALICE, BOB, bearer_agent
from tests.conftest import ADMIN_TOKEN, Customer, Ledger
from tests.test_portal_api import stock

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _count(app, model) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _refunds(app) -> int:
    from plugin.ledger.models import Refund

    return _count(app, Refund)


def test_a_retried_refund_replays_its_answer_and_refunds_once(app, client):
    stock(Ledger(app))
    ann = Customer(client)
    ann.login("SUB-1")
    key = {"Idempotency-Key": "5b1f0e0c-refund-1"}
    first = ann.post("/payments/PAY-B1/refund", json={"reason": "Bought twice"}, headers=key)
    assert first.status_code == 202 and first.get_json()["request"]["outcome"] == "refunded"
    again = ann.post("/payments/PAY-B1/refund", json={"reason": "Bought twice"}, headers=key)
    assert again.status_code == 202 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _refunds(app) == 1
    # Without the key the same request is a new one, and the server says why it cannot be done.
    assert ann.post("/payments/PAY-B1/refund", json={"reason": "Bought twice"}).status_code == 409


def test_the_same_key_with_another_body_is_422_and_does_nothing(app, client):
    stock(Ledger(app))
    ann = Customer(client)
    ann.login("SUB-1")
    key = {"Idempotency-Key": "addr-1"}
    address = {"name": "Ann Lee", "line1": "1 Main St", "city": "Chicago", "country": "US"}
    assert ann.put("/purchases/SUB-1/billing-address", json=address, headers=key).status_code == 200
    other = ann.put("/purchases/SUB-1/billing-address", json={**address, "line1": "9 Other Rd"}, headers=key)
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    shown = ann.get("/purchases/SUB-1").get_json()["billing_address"]
    assert shown["line1"] == "1 Main St"
    bad = ann.put("/purchases/SUB-1/billing-address", json=address, headers={"Idempotency-Key": "é" * 3})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_idempotency_key"


def test_keys_belong_to_their_caller(make_app):
    from plugin.ledger.models import Refund

    app = make_app(agent_loader=bearer_agent)
    ledger = Ledger(app)
    stock(ledger)
    client = app.test_client()
    key = {"Idempotency-Key": "shared-key"}
    alice = client.post("/billing/api/agent/payments/PAY-1/refunds", headers={**ALICE, **key},
                        json={"amount": "1.00"})
    bob = client.post("/billing/api/agent/payments/PAY-1/refunds", headers={**BOB, **key}, json={"amount": "1.00"})
    assert alice.status_code == bob.status_code == 200
    assert "Idempotent-Replayed" not in bob.headers  # another agent's key is not hers
    assert _count(app, Refund) == 2
    replay = client.post("/billing/api/agent/payments/PAY-1/refunds", headers={**ALICE, **key},
                         json={"amount": "1.00"})
    assert replay.headers.get("Idempotent-Replayed") == "true" and _count(app, Refund) == 2


def test_merchant_api_retries_and_answers_that_mean_try_again_are_not_kept(app, client):
    Ledger(app).price("pro-monthly")
    key = {"Idempotency-Key": "order-7", **ADMIN}
    body = {"email": "eve@example.com", "price_point": "pro-monthly", "purchased_at": "2026-11-01T00:00:00Z",
            "billing_address": {"name": "Eve", "line1": "1 Main St", "city": "Chicago", "country": "US"},
            "payment_method": {"type": "paypal", "payer_email": "eve@example.com"}}
    first = client.put("/billing/api/admin/orders/ORD-7", json=body, headers=key)
    again = client.put("/billing/api/admin/orders/ORD-7", json=body, headers=key)
    assert first.status_code in (200, 201) and again.status_code == first.status_code
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    # A 401 is not kept: the same key with the right token afterwards runs for real.
    wrong = {"Idempotency-Key": "settings-1", "Authorization": "Bearer wrong"}
    assert client.put("/billing/api/admin/settings", json={"enabled": True}, headers=wrong).status_code == 401
    right = client.put("/billing/api/admin/settings", json={"enabled": True},
                       headers={"Idempotency-Key": "settings-1", **ADMIN})
    assert right.status_code == 200 and "Idempotent-Replayed" not in right.headers


def test_concurrent_repeats_of_one_key_refund_once(app):
    stock(Ledger(app))
    client = app.test_client()
    ann = Customer(client)
    ann.login("SUB-1")
    cookie = client.get_cookie("session").value
    barrier = threading.Barrier(6)
    answers = []

    def repeat() -> None:
        other = app.test_client()
        other.set_cookie("session", cookie)
        barrier.wait()
        answers.append(other.post("/billing/api/portal/payments/PAY-B1/refund", json={},
                                  headers={"Idempotency-Key": "same", "X-CSRFToken": ann.csrf_token}).status_code)

    threads = [threading.Thread(target=repeat) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) <= {202, 409} and 202 in answers, answers  # 409: the first was still running
    assert _refunds(app) == 1

"""Keep my subscription: a scheduled cancellation undone before it takes effect (Stripe's "Renew").

Through the workflow (the request's ``resume``, its history, the processor call, the email), the JSON
door (200, 409, 404, Idempotency-Key), the portal page (confirm, CSRF, the notice), ``tick`` (a kept
subscription never ends) and two resumes at once (one processor call, one email). Stripe's side is in
``tests/test_stripe_resume.py``.
"""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from plugin.db import db, utcnow
from plugin.errors import Conflict, Unavailable
from plugin.ledger import service as ledger_service
from plugin.notifications.models import OutboxEmail
from plugin.payments import get_gateway
from plugin.payments.records import ProcessorCall
from plugin.payments.sandbox_models import SandboxOperation
from plugin.presenters import purchase_to_dict, request_to_dict
from plugin.portal import actions
from plugin.workflows import service
from plugin.workflows.models import BillingRequest
from plugin.workflows.tick import run_tick
from tests.conftest import Customer

AGENT = "agent@example.com"
PORTAL = "/billing/portal"


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def shop(app, ledger):
    """A monthly subscription that cancels at the period end, paid three days ago, automatic cancellations."""
    paid = utcnow() - timedelta(days=3)
    ledger.settings(enabled=True, portal="both", cancellation={"mode": "automatic"}, refunds={"mode": "request"})
    ledger.price("m-delayed", cancellation="delayed")
    ledger.order("SUB-D", price_point="m-delayed", purchased_at=iso(paid))
    ledger.payment("SUB-D", "PAY-D1", iso(paid))
    ledger.order("BOB-1", price_point="m-delayed", email="bob@example.com", purchased_at=iso(paid))
    ledger.payment("BOB-1", "PAY-B1", iso(paid))
    return ledger


def purchase(order_id="SUB-D"):
    return ledger_service.get_purchase(order_id)


def count(model, *where):
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def emails(order_id="SUB-D"):
    return list(db.session.execute(select(OutboxEmail.kind).where(OutboxEmail.order_id == order_id)
                                   .order_by(OutboxEmail.id)).scalars())


def resume_calls():
    return db.session.execute(select(ProcessorCall).where(ProcessorCall.operation == "resume_subscription")
                              .order_by(ProcessorCall.id)).scalars().all()


def schedule(app, order_id="SUB-D"):
    """The customer cancels: the subscription is set to end at its period end. Returns (request id, the date)."""
    with app.app_context():
        due = purchase(order_id).next_payment_at
        req = service.submit_cancellation(purchase(order_id))
        assert (req.state, req.outcome) == ("auto_processed", "cancel_scheduled")
        return req.public_id, due


# -- the workflow ------------------------------------------------------------------------------------


def test_resume_makes_the_purchase_active_again_with_history_processor_call_and_email(app, shop):
    public_id, due = schedule(app)
    with app.app_context():
        assert purchase_to_dict(purchase())["actions"]["resume"] is True
        req = service.keep_subscription(purchase())
        assert (req.state, req.outcome, req.open_slot) == ("resolved", "resumed", None)
        p = purchase()
        assert (p.status, p.cancels_at, p.next_payment_at) == ("active", None, due)
        history = [(h["from"], h["to"], h["event"], h["by"]) for h in request_to_dict(req)["history"]]
        assert history[-1] == ("auto_processed", "resolved", "resume", "customer")
        [call] = resume_calls()
        assert (call.ok, call.idempotency_key, call.request_id) == (True, f"{public_id}:resume", req.id)
        assert count(SandboxOperation, SandboxOperation.kind == "resume") == 1
        assert emails() == ["cancellation_scheduled", "cancellation_undone"]
        view = purchase_to_dict(p)
        assert view["actions"] == {**view["actions"], "resume": False, "cancel": True}  # may cancel again


def test_a_repeat_is_refused_and_does_nothing_more(app, shop):
    schedule(app)
    with app.app_context():
        service.keep_subscription(purchase())
        with pytest.raises(Conflict):
            service.keep_subscription(purchase())
        with pytest.raises(Conflict) as refused:
            actions.keep_own_subscription(purchase())
        assert refused.value.code == "nothing_to_resume" and "no cancellation to undo" in refused.value.message
        assert len(resume_calls()) == 1
        assert emails().count("cancellation_undone") == 1
        req = db.session.execute(select(BillingRequest)).scalar_one()
        assert service.run_pending(req.id).outcome == "resumed"  # nothing pending: a no-op


def test_the_processor_step_is_idempotent_at_the_sandbox(app, shop):
    public_id, _due = schedule(app)
    with app.app_context():
        from plugin.payments import processor

        order = processor.resume_order(purchase(), f"{public_id}:resume")
        first = processor.resume_subscription(order, purchase_id=purchase().id)
        again = processor.resume_subscription(order, purchase_id=purchase().id)
        assert first.reference == again.reference
        assert count(SandboxOperation, SandboxOperation.kind == "resume") == 1


def test_an_agent_scheduled_cancellation_is_kept_too(app, shop):
    with app.app_context():
        due = purchase().next_payment_at
        req = service.agent_cancel(purchase(), AGENT, "period_end")
        assert (req.state, req.outcome) == ("resolved", "cancel_scheduled")
        req = service.keep_subscription(purchase())
        assert (req.state, req.outcome) == ("resolved", "resumed")
        assert (purchase().status, purchase().next_payment_at) == ("active", due)


def test_a_processor_failure_leaves_the_schedule_and_says_so(app, shop):
    schedule(app)
    with app.app_context():
        get_gateway().set_faults({"resume": 1})
        before = purchase().cancels_at
        with pytest.raises(Unavailable) as failed:
            actions.keep_own_subscription(purchase())
        assert "Nothing was changed" in failed.value.message and "still set to end" in failed.value.message
        p = purchase()
        assert (p.status, p.cancels_at) == ("cancel_scheduled", before)
        req = db.session.execute(select(BillingRequest)).scalar_one()
        assert (req.state, req.outcome, req.pending_event, req.error) == (
            "auto_processed", "cancel_scheduled", None, None)
        assert request_to_dict(req)["history"][-1]["event"] == "processor_error"
        assert [c.ok for c in resume_calls()] == [False]
        assert "cancellation_undone" not in emails()
        # The customer tries again: it works.
        assert service.keep_subscription(purchase()).outcome == "resumed"


def test_tick_never_ends_a_kept_subscription(app, shop):
    _public_id, due = schedule(app)
    with app.app_context():
        service.keep_subscription(purchase())
        run_tick(due + timedelta(days=1))
        p = purchase()
        assert p.status == "active" and p.cancelled_at is None
        assert "cancellation_done" not in emails()


def test_too_late_and_already_ended_are_refused(app, shop):
    _public_id, due = schedule(app)
    with app.app_context():
        p = purchase()
        p.cancels_at = utcnow() - timedelta(minutes=1)  # the date passed; tick has not run yet
        db.session.commit()
        assert purchase_to_dict(purchase())["actions"]["resume"] is False
        with pytest.raises(Conflict) as late:
            actions.keep_own_subscription(purchase())
        assert late.value.code == "cancellation_effective"
        run_tick(utcnow())
        with pytest.raises(Conflict) as ended:
            actions.keep_own_subscription(purchase())
        assert ended.value.code == "already_cancelled"
        assert resume_calls() == []


def test_two_resumes_at_once_make_one_processor_call_and_one_email(app, shop):
    schedule(app)
    with app.app_context():
        purchase_id = purchase().id
    barrier = threading.Barrier(2)
    results = []

    def keep():
        with app.app_context():
            barrier.wait()
            try:
                service.keep_subscription(db.session.get(type(purchase()), purchase_id))
                results.append("ok")
            except Conflict as err:
                results.append(err.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=keep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results)[-1] == "ok" and results.count("ok") == 1, results
    with app.app_context():
        assert len(resume_calls()) == 1
        assert emails().count("cancellation_undone") == 1
        assert purchase().status == "active"


# -- the JSON door ---------------------------------------------------------------------------------


@pytest.fixture
def ann(client, shop):
    customer = Customer(client)
    assert customer.login("SUB-D").status_code == 200
    return customer


def test_json_resume_answers_the_purchase_active_again(app, ann):
    assert ann.post("/purchases/SUB-D/cancel", json={}).status_code == 202
    scheduled = ann.get("/purchases/SUB-D").get_json()
    assert scheduled["status"] == "cancel_scheduled" and scheduled["actions"]["resume"] is True
    answer = ann.post("/purchases/SUB-D/resume")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["status"], body["cancels_at"], body["next_payment_at"]) == ("active", None, scheduled["cancels_at"])
    assert body["actions"]["resume"] is False and body["requests"][0]["outcome"] == "resumed"
    again = ann.post("/purchases/SUB-D/resume")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "nothing_to_resume"


def test_json_resume_of_an_active_or_another_leads_order(ann):
    active = ann.post("/purchases/SUB-D/resume")
    assert active.status_code == 409
    assert "no cancellation to undo" in active.get_json()["error"]["message"]
    other = ann.post("/purchases/BOB-1/resume")
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "order_not_found"


def test_json_resume_needs_the_csrf_header(client, ann):
    assert ann.post("/purchases/SUB-D/cancel", json={}).status_code == 202
    refused = client.post("/billing/api/portal/purchases/SUB-D/resume", json={})
    assert refused.status_code in (400, 403)
    assert ann.get("/purchases/SUB-D").get_json()["status"] == "cancel_scheduled"


def test_json_resume_with_an_idempotency_key_replays_the_first_answer(app, ann):
    assert ann.post("/purchases/SUB-D/cancel", json={}).status_code == 202
    key = {"Idempotency-Key": "keep-1"}
    first = ann.post("/purchases/SUB-D/resume", headers=key)
    replay = ann.post("/purchases/SUB-D/resume", headers=key)
    assert first.status_code == replay.status_code == 200
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json() == first.get_json()
    with app.app_context():
        assert len(resume_calls()) == 1


def test_json_resume_during_an_outage_is_503_with_nothing_changed(app, client, ann, admin_headers):
    assert ann.post("/purchases/SUB-D/cancel", json={}).status_code == 202
    client.put("/billing/api/admin/sandbox/faults", json={"resume": 1}, headers=admin_headers)
    answer = ann.post("/purchases/SUB-D/resume")
    assert answer.status_code == 503, answer.get_json()
    assert "Nothing was changed" in answer.get_json()["error"]["message"]
    assert ann.get("/purchases/SUB-D").get_json()["status"] == "cancel_scheduled"


# -- the portal page ---------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_keep_my_subscription_button_confirmation_and_notice(client, shop):
    page = client.post(f"{PORTAL}/login", data={"order_id": "SUB-D", "email": "ann@example.com",
                                                "csrf_token": _csrf(client.get(f"{PORTAL}/").get_data(True))})
    assert page.status_code in (302, 303)
    orders = client.get(f"{PORTAL}/").get_data(True)
    assert "Keep my subscription" not in orders  # active: nothing to keep
    confirm = client.get(f"{PORTAL}/purchases/SUB-D/cancel").get_data(True)
    client.post(f"{PORTAL}/purchases/SUB-D/cancel", data={"csrf_token": _csrf(confirm)})
    orders = client.get(f"{PORTAL}/").get_data(True)
    assert "Cancels on" in orders and "Keep my subscription" in orders
    shown = client.get(f"{PORTAL}/purchases/SUB-D/resume")
    assert shown.status_code == 200
    text = shown.get_data(True)
    assert "Keep your subscription?" in text and "Yes, keep my subscription" in text
    stale = client.post(f"{PORTAL}/purchases/SUB-D/resume", data={"csrf_token": "forged"})
    assert stale.status_code == 400
    done = client.post(f"{PORTAL}/purchases/SUB-D/resume", data={"csrf_token": _csrf(text)})
    assert done.status_code in (302, 303)
    orders = client.get(f"{PORTAL}/").get_data(True)
    assert "Your subscription to Pro Plan continues" in orders
    assert "Next payment:" in orders and "Keep my subscription" not in orders
    assert "Cancellation undone" in orders
    refused = client.get(f"{PORTAL}/purchases/SUB-D/resume")
    assert refused.status_code == 409 and "no cancellation to undo" in refused.get_data(True)

"""The request machines end to end through the workflow service: every path, every rule.

Each test sets the merchant's modes, submits as a customer or acts as an agent,
and checks what a person would see: the request's state, outcome and history,
the purchase's status and dates, the payment's refunds, the processor's records
and the ticket.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from plugin.db import db, utcnow
from plugin.errors import Conflict, InvalidInput, NotAllowed, Unavailable
from plugin.ledger import service as ledger_service
from plugin.ledger.models import Payment, Purchase, Refund
from plugin.payments import get_gateway, processor
from plugin.payments.sandbox_models import SandboxOperation
from plugin.presenters import purchase_to_dict, request_to_dict
from plugin.tickets.models import Ticket
from plugin.workflows import service
from plugin.workflows.models import BillingRequest
from plugin.workflows.tick import run_tick

AGENT = "agent@example.com"


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def shop(app, ledger):
    """A monthly instant, a monthly delayed and a one-time price, each with a recent order and payment."""
    now = utcnow()
    paid = now - timedelta(days=3)
    ledger.price("m-instant", cancellation="instant")
    ledger.price("m-delayed", cancellation="delayed")
    ledger.price("one", product="E-book", amount="19.00", interval=None, refund_window_days=14)
    ledger.order("SUB-I", price_point="m-instant", purchased_at=iso(paid))
    ledger.payment("SUB-I", "PAY-I1", iso(paid))
    ledger.order("SUB-D", price_point="m-delayed", purchased_at=iso(paid))
    ledger.payment("SUB-D", "PAY-D1", iso(paid))
    ledger.order("ONE-1", price_point="one", purchased_at=iso(paid))
    ledger.payment("ONE-1", "PAY-O1", iso(paid))
    ledger.order("ONE-OLD", price_point="one", purchased_at=iso(now - timedelta(days=40)))
    ledger.payment("ONE-OLD", "PAY-OLD", iso(now - timedelta(days=40)))
    return ledger


def purchase(order_id):
    return ledger_service.get_purchase(order_id)


def payment(payment_id):
    return db.session.execute(select(Payment).where(Payment.payment_id == payment_id)).scalar_one()


def history(request):
    return [(h["from"], h["to"], h["event"], h["by"]) for h in request_to_dict(request)["history"]]


def count(model, *where):
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def modes(ledger, cancellation="automatic", refunds="automatic", enabled=True):
    ledger.settings(enabled=enabled, cancellation={"mode": cancellation}, refunds={"mode": refunds})


# -- cancellation ------------------------------------------------------------------------------


def test_automatic_instant_cancellation_cancels_now(app, shop):
    modes(shop)
    with app.app_context():
        req = service.submit_cancellation(purchase("SUB-I"), reason="too expensive")
        assert (req.state, req.outcome) == ("resolved", "cancelled")
        assert history(req) == [
            ("new", "requested", "submit", "customer"),
            ("requested", "auto_processed", "auto_process", "system"),
            ("auto_processed", "resolved", "complete", "system"),
        ]
        p = purchase("SUB-I")
        assert p.status == "cancelled" and p.cancelled_at is not None and p.next_payment_at is None
        assert purchase_to_dict(p)["actions"]["cancel"] is False
        assert count(SandboxOperation, SandboxOperation.kind == "cancel") == 1


def test_automatic_delayed_cancellation_waits_for_tick(app, shop):
    modes(shop)
    with app.app_context():
        due = purchase("SUB-D").next_payment_at
        req = service.submit_cancellation(purchase("SUB-D"))
        assert (req.state, req.outcome) == ("auto_processed", "cancel_scheduled")
        p = purchase("SUB-D")
        assert p.status == "cancel_scheduled" and p.cancels_at == due and p.next_payment_at is None
        view = purchase_to_dict(p)
        assert view["cancels_at"] and view["upcoming_charge"] is None

        run_tick(due - timedelta(minutes=1))
        assert purchase("SUB-D").status == "cancel_scheduled"
        run_tick(due + timedelta(days=40))
        p = purchase("SUB-D")
        assert p.status == "cancelled" and p.cancelled_at == due
        req = service.get_request(req.public_id)
        assert (req.state, req.outcome) == ("resolved", "cancelled")
        assert history(req)[-1] == ("auto_processed", "resolved", "period_end", "system")
        assert count(Payment, Payment.purchase_id == p.id) == 1  # no payment after the cancellation


def test_tick_renews_active_subscriptions_until_now(app, shop):
    modes(shop)
    with app.app_context():
        first_due = purchase("SUB-I").next_payment_at
        run_tick(first_due + timedelta(days=1))
        run_tick(first_due + timedelta(days=1))  # twice: nothing more
        p = purchase("SUB-I")
        assert count(Payment, Payment.purchase_id == p.id) == 2
        assert p.next_payment_at > first_due


def test_cancellation_by_request_opens_one_ticket_and_agent_resolves(app, shop):
    modes(shop, cancellation="request")
    with app.app_context():
        req = service.submit_cancellation(purchase("SUB-I"), reason="moving on")
        again = service.submit_cancellation(purchase("SUB-I"))
        assert again.id == req.id
        assert req.state == "ticketed" and req.ticket_id is not None
        assert count(Ticket) == 1
        ticket = db.session.get(Ticket, req.ticket_id)
        assert "SUB-I" in ticket.subject and ticket.department.name == "Billing"
        assert purchase_to_dict(purchase("SUB-I"))["actions"]["cancel"] is False
        assert set(service.available_events(req, AGENT)) == {"cancel_now", "cancel_at_period_end", "decline"}

        req = service.apply_agent_event(req, "cancel_at_period_end", AGENT, message="Done as asked")
        assert (req.state, req.outcome) == ("resolved", "cancel_scheduled")
        assert history(req)[-1] == ("ticketed", "resolved", "cancel_at_period_end", AGENT)
        assert db.session.get(Ticket, req.ticket_id).status == "closed"
        assert purchase("SUB-I").status == "cancel_scheduled"


@pytest.mark.parametrize("event, status, outcome", [
    ("cancel_now", "cancelled", "cancelled"),
    ("decline", "active", "declined"),
])
def test_agent_events_on_a_cancellation_ticket(app, shop, event, status, outcome):
    modes(shop, cancellation="request")
    with app.app_context():
        req = service.submit_cancellation(purchase("SUB-I"))
        req = service.apply_agent_event(req, event, AGENT)
        assert (req.state, req.outcome) == ("resolved", outcome)
        assert purchase("SUB-I").status == status
        with pytest.raises(Conflict) as refused:
            service.apply_agent_event(req, event, AGENT)
        assert refused.value.extra["accepted"] == []


@pytest.mark.parametrize("settings, order_id, error, code", [
    ({"cancellation": "disabled"}, "SUB-I", NotAllowed, "cancellation_disabled"),
    ({"enabled": False}, "SUB-I", NotAllowed, "self_service_disabled"),
    ({}, "ONE-1", Conflict, "not_a_subscription"),
])
def test_cancellation_refused(app, shop, settings, order_id, error, code):
    modes(shop, **settings)
    with app.app_context():
        with pytest.raises(error) as refused:
            service.submit_cancellation(purchase(order_id))
        assert refused.value.code == code
        assert count(BillingRequest) == 0


def test_cancel_of_cancelled_subscription_refused(app, shop):
    modes(shop)
    with app.app_context():
        service.submit_cancellation(purchase("SUB-I"))
        with pytest.raises(Conflict) as refused:
            service.submit_cancellation(purchase("SUB-I"))
        assert refused.value.code == "not_active"
        assert count(BillingRequest) == 1


def test_processor_failure_on_cancellation_goes_to_a_ticket(app, shop):
    modes(shop)
    with app.app_context():
        get_gateway().set_faults({"cancel": 1})
        req = service.submit_cancellation(purchase("SUB-I"))
        assert req.state == "ticketed" and req.ticket_id is not None
        assert "processor" in req.error
        assert purchase("SUB-I").status == "active"
        assert "fail" in service.available_events(req, AGENT)
        req = service.apply_agent_event(req, "cancel_now", AGENT)
        assert (req.state, req.outcome) == ("resolved", "cancelled")


# -- refunds -------------------------------------------------------------------------------------


def test_automatic_refund_inside_window(app, shop):
    modes(shop)
    with app.app_context():
        req = service.submit_refund(payment("PAY-O1"), reason="not for me")
        assert (req.state, req.outcome, req.amount_cents) == ("resolved", "refunded", 1900)
        pay = payment("PAY-O1")
        assert pay.status == "refunded" and pay.refunded_cents == 1900
        assert purchase("ONE-1").status == "refunded"
        assert count(Refund) == 1 and count(SandboxOperation, SandboxOperation.kind == "refund") == 1
        with pytest.raises(Conflict) as refused:
            service.submit_refund(payment("PAY-O1"))
        assert refused.value.code == "already_refunded"


def test_refund_outside_window_cannot_be_asked(app, shop):
    modes(shop)
    with app.app_context():
        assert purchase_to_dict(purchase("ONE-OLD"))["payments"][0]["actions"]["refund"] is False
        with pytest.raises(Conflict) as refused:
            service.submit_refund(payment("PAY-OLD"))
        assert refused.value.code == "refund_window_closed"
        assert count(BillingRequest) == 0


def test_refunds_disabled(app, shop):
    modes(shop, refunds="disabled")
    with app.app_context():
        assert purchase_to_dict(purchase("ONE-1"))["payments"][0]["actions"]["refund"] is False
        with pytest.raises(NotAllowed):
            service.submit_refund(payment("PAY-O1"))


def test_refund_by_request_partial_then_full(app, shop):
    modes(shop, refunds="request")
    with app.app_context():
        req = service.submit_refund(payment("PAY-I1"))
        assert req.state == "ticketed" and purchase_to_dict(purchase("SUB-I"))["payments"][0]["actions"]["refund"] is False
        req = service.apply_agent_event(req, "refund_partial", AGENT, amount="10.00", message="Goodwill")
        assert (req.state, req.outcome, req.amount_cents) == ("resolved", "partially_refunded", 1000)
        pay = payment("PAY-I1")
        assert (pay.status, pay.refunded_cents, pay.remaining_cents) == ("partially_refunded", 1000, 3900)
        assert purchase("SUB-I").status == "active"  # a refund does not cancel the subscription

        # The customer may ask for what remains, always in full.
        req2 = service.submit_refund(payment("PAY-I1"))
        req2 = service.apply_agent_event(req2, "refund_full", AGENT)
        assert (req2.outcome, req2.amount_cents) == ("refunded", 3900)
        assert payment("PAY-I1").status == "refunded"
        assert count(Refund) == 2


@pytest.mark.parametrize("amount, error", [
    ("0", InvalidInput), ("0.00", InvalidInput), ("-5.00", InvalidInput), ("49.00", InvalidInput),
    ("60.00", InvalidInput), ("abc", InvalidInput), ("1.234", InvalidInput), (None, InvalidInput),
    (5.5, InvalidInput),
])
def test_partial_refund_amounts_refused(app, shop, amount, error):
    modes(shop, refunds="request")
    with app.app_context():
        req = service.submit_refund(payment("PAY-I1"))
        with pytest.raises(error):
            service.apply_agent_event(req, "refund_partial", AGENT, amount=amount)
        req = service.get_request(req.public_id)
        assert req.state == "ticketed" and count(Refund) == 0 and payment("PAY-I1").refunded_cents == 0


def test_event_not_accepted_lists_the_accepted_ones(app, shop):
    modes(shop, refunds="request")
    with app.app_context():
        req = service.submit_refund(payment("PAY-I1"))
        with pytest.raises(Conflict) as refused:
            service.apply_agent_event(req, "cancel_now", AGENT)
        assert refused.value.extra["accepted"] == ["refund_full", "refund_partial", "decline"]
        assert "refund_full" in refused.value.message


def test_processor_failure_on_refund_tickets_then_agent_refunds_once(app, shop):
    modes(shop)
    with app.app_context():
        get_gateway().set_faults({"refund": 2})
        req = service.submit_refund(payment("PAY-O1"))
        assert req.state == "ticketed" and req.error
        assert history(req)[-1] == ("auto_processed", "ticketed", "processor_failed", "system")
        with pytest.raises(Unavailable):
            service.apply_agent_event(req, "refund_full", AGENT)  # second fault
        req = service.get_request(req.public_id)
        assert req.state == "ticketed" and req.pending_event is None
        req = service.apply_agent_event(req, "refund_full", AGENT)
        assert req.outcome == "refunded"
        assert count(Refund) == 1 and count(SandboxOperation, SandboxOperation.kind == "refund") == 1


def test_agent_may_close_a_failed_request_as_failed(app, shop):
    modes(shop)
    with app.app_context():
        get_gateway().set_faults({"refund": 1})
        req = service.submit_refund(payment("PAY-O1"))
        req = service.apply_agent_event(req, "fail", AGENT, message="Card account closed")
        assert (req.state, req.outcome) == ("resolved", "failed")
        assert payment("PAY-O1").refunded_cents == 0


def test_retry_after_a_crash_refunds_once(app, shop):
    """The processor refunded but the app died before recording it: running the step again records it once."""
    modes(shop, refunds="request")
    with app.app_context():
        req = service.submit_refund(payment("PAY-O1"))
        # An agent's refund reached the processor; the app crashed before step 3.
        req.pending_event, req.pending_amount_cents, req.pending_actor = "refund_full", 1900, AGENT
        req.pending_since = utcnow() - timedelta(hours=1)
        db.session.commit()
        paid = payment("PAY-O1")
        get_gateway().refund(processor.refund_order(db.session.get(Purchase, paid.purchase_id), paid, 1900,
                                                    req.public_id))
        run_tick(utcnow())
        run_tick(utcnow())
        req = service.get_request(req.public_id)
        assert (req.state, req.outcome) == ("resolved", "refunded")
        assert count(Refund) == 1 and count(SandboxOperation, SandboxOperation.kind == "refund") == 1
        assert payment("PAY-O1").refunded_cents == 1900


def test_agent_manual_actions_outside_any_request(app, shop):
    modes(shop, cancellation="disabled", refunds="disabled", enabled=False)
    with app.app_context():
        req = service.agent_refund(payment("PAY-OLD"), AGENT, "5.00", message="Courtesy")
        assert (req.state, req.outcome, req.created_by) == ("resolved", "partially_refunded", AGENT)
        assert history(req)[0] == ("new", "requested", "open_by_agent", AGENT)
        req = service.agent_cancel(purchase("SUB-D"), AGENT, "period_end")
        assert (req.outcome, purchase("SUB-D").status) == ("cancel_scheduled", "cancel_scheduled")
        req = service.agent_cancel(purchase("SUB-D"), AGENT, "now")
        assert purchase("SUB-D").status == "cancelled"
        with pytest.raises(Conflict):
            service.agent_cancel(purchase("SUB-D"), AGENT, "now")
        with pytest.raises(InvalidInput):
            service.agent_refund(payment("PAY-OLD"), AGENT, "15.00")  # only 14.00 remains
        assert count(BillingRequest, BillingRequest.state != "resolved") == 0


def test_two_agents_at_once_one_wins(app, shop):
    modes(shop, refunds="request")
    with app.app_context():
        req = service.submit_refund(payment("PAY-I1"))
        public_id = req.public_id
    results = []

    def act(event):
        with app.app_context():
            try:
                service.apply_agent_event(service.get_request(public_id), event, AGENT)
                results.append("ok")
            except Conflict:
                results.append("conflict")

    threads = [threading.Thread(target=act, args=(e,)) for e in ("refund_full", "decline", "refund_full")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict", "conflict", "ok"]
    with app.app_context():
        assert count(SandboxOperation, SandboxOperation.kind == "refund") <= 1
        req = service.get_request(public_id)
        assert req.state == "resolved"
        assert count(Refund) == (1 if req.outcome == "refunded" else 0)


def test_twenty_concurrent_refund_submissions_make_one_refund(app, shop):
    modes(shop)
    with app.app_context():
        pay_pk = payment("PAY-O1").id
    barrier = threading.Barrier(20)
    outcomes = []

    def submit():
        with app.app_context():
            barrier.wait()
            try:
                req = service.submit_refund(db.session.get(Payment, pay_pk))
                outcomes.append(req.public_id)
            except Conflict as err:
                outcomes.append(err.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=submit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 20
    assert all(o.startswith("req_") or o == "already_refunded" for o in outcomes)
    with app.app_context():
        assert count(BillingRequest) == 1
        assert count(Refund) == 1
        assert count(SandboxOperation, SandboxOperation.kind == "refund") == 1
        assert payment("PAY-O1").refunded_cents == 1900


# -- the customer's email at every step ---------------------------------------------------------


def _emails(order_id):
    from plugin.notifications.models import OutboxEmail

    return [e.kind for e in db.session.execute(
        select(OutboxEmail).where(OutboxEmail.order_id == order_id).order_by(OutboxEmail.id)).scalars()]


@pytest.mark.parametrize("mode, steps, kinds", [
    ("automatic", [], ["cancellation_done"]),
    ("request", ["cancel_now"], ["request_ticketed", "cancellation_done"]),
    ("request", ["cancel_at_period_end"], ["request_ticketed", "cancellation_scheduled"]),
    ("request", ["decline"], ["request_ticketed", "request_declined"]),
])
def test_each_cancellation_step_queues_one_email(app, shop, mode, steps, kinds):
    modes(shop, cancellation=mode)
    with app.app_context():
        req = service.submit_cancellation(purchase("SUB-I"))
        for step in steps:
            req = service.apply_agent_event(req, step, AGENT)
        assert _emails("SUB-I") == kinds


def test_delayed_cancellation_emails_when_scheduled_and_when_done(app, shop):
    modes(shop)
    with app.app_context():
        due = purchase("SUB-D").next_payment_at
        service.submit_cancellation(purchase("SUB-D"))
        assert _emails("SUB-D") == ["cancellation_scheduled"]
        run_tick(due + timedelta(seconds=1))
        assert _emails("SUB-D") == ["cancellation_scheduled", "cancellation_done"]


@pytest.mark.parametrize("mode, faults, steps, kinds", [
    ("automatic", 0, [], ["refund_done"]),
    ("automatic", 1, [], ["request_ticketed"]),
    ("request", 0, [("refund_partial", "1.00")], ["request_ticketed", "refund_done"]),
    ("request", 0, [("decline", None)], ["request_ticketed", "request_declined"]),
])
def test_each_refund_step_queues_one_email(app, shop, mode, faults, steps, kinds):
    modes(shop, refunds=mode)
    with app.app_context():
        get_gateway().set_faults({"refund": faults})
        req = service.submit_refund(payment("PAY-O1"))
        for step, amount in steps:
            req = service.apply_agent_event(req, step, AGENT, amount=amount)
        assert _emails("ONE-1") == kinds


def test_the_many_payments_refund_check_answers_as_can_refund_does():
    """My Orders asks ``policy.refund_check`` once per purchase and then per payment: every answer is
    ``can_refund``'s, whatever the settings, the window, the remaining amount and an open request."""
    from datetime import datetime, timedelta, timezone
    from itertools import product
    from types import SimpleNamespace

    from plugin.workflows import policy

    now = datetime(2026, 12, 3, tzinfo=timezone.utc)
    purchase = SimpleNamespace(kind="subscription", status="active", price_point=SimpleNamespace(refund_window_days=14))
    payments = [SimpleNamespace(paid_at=now - timedelta(days=days), remaining_cents=remaining)
                for days, remaining in product((0, 13, 14, 15, 400), (0, 1, 4900))]
    answers = set()
    for enabled, mode, request_open in product((True, False), ("automatic", "request", "disabled"), (False, True)):
        settings = SimpleNamespace(enabled=enabled, refund_mode=mode, cancellation_mode="request")
        check = policy.refund_check(purchase, settings, now)
        for payment in payments:
            expected = policy.can_refund(purchase, payment, settings, now, request_open=request_open)
            assert check(payment, request_open=request_open) is expected
            answers.add(expected)
    assert answers == {True, False}

"""Property tests (hypothesis): the request machines under random sequences, the forms and JSON
bodies under arbitrary input.

1. :class:`WorkflowMachine` drives :mod:`plugin.workflows.service` with random sequences of
   customer submits, agent events (valid and invalid, with odd amounts), manual agent actions,
   sandbox faults, crashes between the processor's answer and our commit, ticks at moving
   times and settings changes. After every step it checks the invariants: states and outcomes,
   one open request per slot, money moved exactly once (ledger == refund rows == processor), no
   payment after a cancellation, every history a connected path from ``new``, and that only the
   plugin's ``BillingError`` ever escapes.
2. The portal address PUT, the login, the merchant order PUT and the agent event POST get
   arbitrary JSON: never a 5xx, every 4xx in the contract's error form, nothing written on a 4xx.

Runs are deterministic (``derandomize=True``) and bounded (a few seconds each).
"""
from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from plugin import SelfBilling
from plugin.db import Base, db
from plugin.errors import BillingError
from plugin.ledger import service as ledger
from plugin.ledger.models import Payment, Purchase, Refund
from plugin.payments import sandbox_faults
from plugin.payments.sandbox_models import SandboxOperation
from plugin.tickets.models import Ticket
from plugin.workflows import service, steps
from plugin.workflows.machines import AGENT_EVENTS, OPEN_STATES
from plugin.workflows.models import BillingRequest, RequestEvent
from tests.conftest import ADMIN_TOKEN, empty_database

AGENT = "agent@helpdesk.test"
START = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)
STORED_STATES = {"requested", "auto_processed", "ticketed", "resolved"}
OUTCOMES = {"cancelled", "cancel_scheduled", "refunded", "partially_refunded", "declined", "failed"}
MODES = ("disabled", "request", "automatic")
ORDERS = ("SUB-INSTANT", "SUB-DELAYED", "ONE-TIME")
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")

MACHINE_SETTINGS = settings(max_examples=50, stateful_step_count=30, deadline=None, derandomize=True,
                            database=None, suppress_health_check=list(HealthCheck))
FUZZ_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))

# -- strategies ------------------------------------------------------------------------------------

#: What a person or a program might send as an amount: right, wrong, odd, huge, floats, Decimals.
plausible_amounts = st.sampled_from(["0.01", "1.00", "10.00", "20.00", "48.99", "49.00", "99.99", "100.00"])
amounts = st.one_of(
    plausible_amounts, plausible_amounts, st.none(),
    st.sampled_from(["49.01", "100.01", "0", "0.00", "-1", "1.005", "abc", "", " 5.00 ", "1e3", "1e30", "NaN",
                     "Infinity", "99999999999.99", "5,00"]),
    st.integers(min_value=-10, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
agent_events = st.sampled_from(sorted({e for names in AGENT_EVENTS.values() for e in names}))
events = st.one_of(agent_events, agent_events, st.sampled_from(
    ["complete", "schedule", "submit", "open_by_agent", "period_end", "open_ticket", "processor_failed",
     "auto_process", "bogus", "", "REFUND_FULL", "refund_full\x00"]))
messages = st.one_of(st.none(), st.text(max_size=40))
#: Any JSON value: text with unicode and control characters, huge integers, floats (NaN too).
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


def fields_of(names: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Objects with some of ``names`` (each a plausible value or any JSON value), maybe an unknown key too."""
    optional = {name: st.one_of(good, json_values) for name, good in names.items()}
    return st.builds(
        lambda chosen, extra: {**chosen, **extra},
        st.fixed_dictionaries({}, optional=optional),
        st.dictionaries(st.text(max_size=10), json_values, max_size=1),
    )


good_address = {
    "name": st.sampled_from(["Ann Lee", "<b>Ann</b>", "Zoë \u202e", "x" * 201]),
    "line1": st.sampled_from(["1 Main St", "", "\x00\x01", "'; DROP TABLE sb_leads; --"]),
    "line2": st.sampled_from(["", "Apt 2"]),
    "city": st.sampled_from(["Springfield", "Zürich", " "]),
    "region": st.sampled_from(["", "IL"]),
    "postal_code": st.sampled_from(["62701", "x" * 21]),
    "country": st.sampled_from(["US", "us", "GB", "XX", "UK", "ZZ", "EU", ""]),
}


# -- the workflow state machine ------------------------------------------------------------------------


class Crash(Exception):
    """The process died after the processor answered and before our commit (not a BillingError)."""


def machine_app(database_url: str, instance: str) -> Flask:
    app = Flask("properties", instance_path=instance)
    app.config.update(TESTING=True, SECRET_KEY="properties", SQLALCHEMY_DATABASE_URI=database_url,
                      MAIL_SUPPRESS_SEND=True)
    SelfBilling(app)
    return app


@pytest.fixture
def fresh_database(_pg_schema, _sqlite_template, tmp_path) -> Callable[[], str]:
    """A new empty database (with the schema) for each example of the machine."""
    counter = itertools.count()

    def make() -> str:
        return empty_database(_pg_schema, _sqlite_template, tmp_path / f"machine-{next(counter)}.db")

    return make


def make_workflow_machine(new_database: Callable[[], str], instance: str) -> type[RuleBasedStateMachine]:

    class WorkflowMachine(RuleBasedStateMachine):
        """Random sequences over the workflow service, with its invariants checked after every step."""

        def __init__(self) -> None:
            super().__init__()
            self.app = machine_app(new_database(), instance)
            self.context = self.app.app_context()
            self.context.push()
            self.now = START
            self.crash_next = False
            self.cancelled_payments: dict[int, int] = {}  # purchase id -> payments when first seen cancelled
            self._patched = {"utcnow": service.utcnow, "_finish_pending": steps._finish_pending}
            service.utcnow = steps.utcnow = lambda: self.now
            real_finish = self._patched["_finish_pending"]

            def finish(request_id: int, event: str, outcome: dict[str, Any]) -> Any:
                if self.crash_next:
                    self.crash_next = False
                    raise Crash()
                return real_finish(request_id, event, outcome)

            steps._finish_pending = finish
            self.app.config["SELF_BILLING_RESUME_AFTER_SECONDS"] = 300

        def teardown(self) -> None:
            service.utcnow = steps.utcnow = self._patched["utcnow"]
            steps._finish_pending = self._patched["_finish_pending"]
            db.session.remove()
            db.engine.dispose()
            self.context.pop()

        # -- helpers --------------------------------------------------------------------------

        def attempt(self, action: Callable[[], Any]) -> Any:
            """Run one step as a request would: a BillingError is an answer; anything else fails the test."""
            try:
                return action()
            except BillingError:
                return None
            except Crash:
                return None
            finally:
                db.session.remove()

        def purchase(self, order_id: str) -> Purchase:
            return db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one()

        def pick(self, model: Any, index: int) -> Any:
            rows = db.session.execute(select(model).order_by(model.id)).scalars().all()
            return rows[index % len(rows)] if rows else None

        # -- set up ------------------------------------------------------------------------------

        @initialize(cancel_mode=st.sampled_from(MODES), refund_mode=st.sampled_from(MODES))
        def shop(self, cancel_mode: str, refund_mode: str) -> None:
            ledger.update_settings({"enabled": True, "cancellation": {"mode": cancel_mode},
                                    "refunds": {"mode": refund_mode}})
            base = {"product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month",
                    "refund_window_days": 30}
            ledger.upsert_price_point("monthly-instant", {**base, "cancellation": "instant"})
            ledger.upsert_price_point("monthly-delayed", {**base, "cancellation": "delayed"})
            ledger.upsert_price_point("ebook", {**base, "product": "Cookbook", "amount": "100.00", "interval": None})
            bought = (START - timedelta(days=2)).isoformat()
            for order_id, price in zip(ORDERS, ("monthly-instant", "monthly-delayed", "ebook")):
                ledger.upsert_order(order_id, {
                    "email": f"{order_id.lower()}@example.com", "price_point": price, "purchased_at": bought,
                    "billing_address": {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield",
                                        "country": "US"},
                    "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12,
                                       "exp_year": 2030}})
                ledger.record_payment(order_id, {"payment_id": f"{order_id}-FIRST", "paid_at": bought})
            db.session.remove()

        # -- customers -------------------------------------------------------------------------------

        @rule(order=st.sampled_from(ORDERS), reason=st.text(max_size=20), twice=st.booleans())
        def customer_cancels(self, order: str, reason: str, twice: bool) -> None:
            first = self.attempt(lambda: service.submit_cancellation(self.purchase(order), reason=reason).id)
            if twice:
                second = self.attempt(lambda: service.submit_cancellation(self.purchase(order), reason=reason).id)
                self.same_if_still_open(first, second)

        @rule(index=st.integers(0, 50), reason=st.text(max_size=20), twice=st.booleans())
        def customer_asks_refund(self, index: int, reason: str, twice: bool) -> None:
            def submit() -> int | None:
                payment = self.pick(Payment, index)
                return service.submit_refund(payment, reason=reason).id
            first = self.attempt(submit)
            if twice:
                self.same_if_still_open(first, self.attempt(submit))

        def same_if_still_open(self, first: int | None, second: int | None) -> None:
            """A retried submit answers with the request the first one left open."""
            if first is None:
                return
            request = db.session.get(BillingRequest, first)
            if request.state in OPEN_STATES and second is not None:
                assert second == first
            db.session.remove()

        # -- agents ------------------------------------------------------------------------------------

        @rule(index=st.integers(0, 50), event=events, amount=amounts, message=messages)
        def agent_event(self, index: int, event: str, amount: Any, message: str | None) -> None:
            def send() -> Any:
                request = self.pick(BillingRequest, index)
                if request is None:
                    return None
                return service.apply_agent_event(request, event, AGENT, amount=amount, message=message)
            self.attempt(send)

        @rule(order=st.sampled_from(ORDERS), when=st.sampled_from(["now", "period_end", "later", ""]),
              message=messages)
        def agent_cancels(self, order: str, when: str, message: str | None) -> None:
            self.attempt(lambda: service.agent_cancel(self.purchase(order), AGENT, when, message))

        @rule(index=st.integers(0, 50), amount=amounts, message=messages)
        def agent_refunds(self, index: int, amount: Any, message: str | None) -> None:
            self.attempt(lambda: service.agent_refund(self.pick(Payment, index), AGENT, amount, message))

        @rule(index=st.integers(0, 50))
        def customer_is_not_an_agent(self, index: int) -> None:
            def send() -> None:
                request = self.pick(BillingRequest, index)
                if request is not None:
                    service.apply_agent_event(request, "refund_full", "customer")
            self.attempt(send)

        # -- the processor, time and the merchant ---------------------------------------------------

        @rule(refund=st.integers(0, 2), cancel=st.integers(0, 2))
        def processor_faults(self, refund: int, cancel: int) -> None:
            self.attempt(lambda: sandbox_faults.set_sandbox_faults({"refund": refund, "cancel": cancel}))

        @rule()
        def crash_after_the_next_processor_answer(self) -> None:
            self.crash_next = True

        @rule(minutes=st.one_of(st.integers(0, 10), st.integers(0, 60 * 24 * 45)), tick=st.booleans())
        def time_passes(self, minutes: int, tick: bool) -> None:
            from plugin.workflows.tick import run_tick

            self.now += timedelta(minutes=minutes)
            if tick:
                self.attempt(lambda: run_tick(self.now))

        @rule(enabled=st.booleans(), cancel_mode=st.sampled_from(MODES), refund_mode=st.sampled_from(MODES))
        def merchant_settings(self, enabled: bool, cancel_mode: str, refund_mode: str) -> None:
            self.attempt(lambda: ledger.update_settings({"enabled": enabled, "cancellation": {"mode": cancel_mode},
                                                         "refunds": {"mode": refund_mode}}))

        @rule(code=st.sampled_from(["monthly-instant", "monthly-delayed", "ebook"]),
              cancellation=st.sampled_from(["instant", "delayed"]), window=st.sampled_from([0, 1, 30]))
        def merchant_edits_a_price(self, code: str, cancellation: str, window: int) -> None:
            def edit() -> None:
                price = ledger.read_price_point(code)
                ledger.upsert_price_point(code, {
                    "product": price.product, "amount": f"{price.amount_cents / 100:.2f}", "currency": price.currency,
                    "interval": price.interval, "cancellation": cancellation, "refund_window_days": window})
            self.attempt(edit)

        # -- invariants -------------------------------------------------------------------------------

        @invariant()
        def requests_are_well_formed(self) -> None:
            requests = db.session.execute(select(BillingRequest)).scalars().all()
            open_slots: dict[str, int] = {}
            for request in requests:
                assert request.state in STORED_STATES, request.state
                documented = (request.type == "cancellation" and request.state == "auto_processed"
                              and request.outcome == "cancel_scheduled")
                if request.state == "resolved":
                    assert request.outcome in OUTCOMES, (request.id, request.outcome)
                    assert request.open_slot is None and request.pending_event is None
                else:
                    assert request.outcome is None or documented, (request.id, request.state, request.outcome)
                    slot = (f"refund:{request.payment_id}" if request.type == "refund"
                            else f"cancellation:{request.purchase_id}")
                    assert request.open_slot == slot
                    open_slots[slot] = open_slots.get(slot, 0) + 1
                    # Nobody's turn is a stuck request: "requested" and "auto_processed" wait for the
                    # processor (pending) or, for a scheduled cancellation, for its date.
                    if request.state != "ticketed":
                        assert request.pending_event is not None or documented, \
                            (request.id, request.state, request.error)
                if request.ticket_id is not None:
                    ticket = db.session.get(Ticket, request.ticket_id)
                    assert ticket.status == ("closed" if request.state == "resolved" else "open"), request.id
            assert all(count == 1 for count in open_slots.values()), open_slots
            db.session.remove()

        @invariant()
        def histories_are_connected_paths_from_new(self) -> None:
            rows = db.session.execute(select(RequestEvent).order_by(RequestEvent.request_id, RequestEvent.id)).scalars()
            paths: dict[int, list[RequestEvent]] = {}
            for row in rows:
                paths.setdefault(row.request_id, []).append(row)
            for request in db.session.execute(select(BillingRequest)).scalars():
                path = paths.get(request.id, [])
                assert path and path[0].from_state == "new", request.id
                assert path[0].event in ("submit", "open_by_agent")
                for before, after in zip(path, path[1:]):
                    assert after.from_state == before.to_state, (request.id, before.event, after.event)
                assert path[-1].to_state == request.state, request.id
                assert all(step.to_state != "new" for step in path)
            db.session.remove()

        @invariant()
        def money_moves_exactly_once(self) -> None:
            refunds = db.session.execute(select(Refund)).scalars().all()
            operations = {op.idempotency_key: op for op in db.session.execute(
                select(SandboxOperation).where(SandboxOperation.kind == "refund")).scalars()}
            pending = set(db.session.execute(
                select(BillingRequest.public_id).where(BillingRequest.pending_event.is_not(None))).scalars())
            assert len({r.idempotency_key for r in refunds}) == len(refunds)
            for refund in refunds:  # every refund in our books happened once at the processor, same amount
                op = operations.get(refund.idempotency_key)
                assert op is not None and op.amount_cents == refund.amount_cents, refund.idempotency_key
            booked = {r.idempotency_key for r in refunds}
            for key in operations:  # and the processor did nothing we do not know about (but a crash's step)
                assert key in booked or key in pending, key
            for payment in db.session.execute(select(Payment)).scalars():
                ours = sum(r.amount_cents for r in refunds if r.payment_id == payment.id)
                theirs = sum(op.amount_cents or 0 for key, op in operations.items()
                             if op.target == payment.payment_id and key in booked)
                assert payment.refunded_cents == ours == theirs, payment.payment_id
                assert 0 <= payment.refunded_cents <= payment.amount_cents, payment.payment_id
                expected = ("paid" if payment.refunded_cents == 0 else
                            "refunded" if payment.refunded_cents == payment.amount_cents else "partially_refunded")
                assert payment.status == expected, payment.payment_id
            db.session.remove()

        @invariant()
        def no_payment_after_a_cancellation(self) -> None:
            for purchase in db.session.execute(select(Purchase)).scalars():
                paid = db.session.execute(
                    select(Payment.paid_at).where(Payment.purchase_id == purchase.id)).scalars().all()
                if purchase.status == "cancelled":
                    assert purchase.cancelled_at is not None and purchase.next_payment_at is None
                    assert all(at <= purchase.cancelled_at for at in paid), purchase.order_id
                    seen = self.cancelled_payments.setdefault(purchase.id, len(paid))
                    assert len(paid) == seen, f"{purchase.order_id}: a payment recorded after its cancellation"
                elif purchase.status == "cancel_scheduled":
                    assert purchase.cancels_at is not None and purchase.next_payment_at is None
                    assert all(at < purchase.cancels_at for at in paid), purchase.order_id
                elif purchase.kind == "subscription":
                    assert purchase.status == "active" and purchase.next_payment_at is not None
            db.session.remove()

    return WorkflowMachine


def test_random_request_sequences_keep_every_invariant(fresh_database, tmp_path):
    machine = make_workflow_machine(fresh_database, str(tmp_path / "instance"))
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)


# Sequences the machine's invariants caught, kept as plain tests (each failed before its fix).


@pytest.fixture
def machine(fresh_database, tmp_path):
    """One machine, set up with automatic cancellations and refunds; its invariants are checked by ``check``."""
    instance = make_workflow_machine(fresh_database, str(tmp_path / "instance"))()
    instance.shop(cancel_mode="automatic", refund_mode="automatic")
    yield instance
    instance.teardown()


def check(machine: Any) -> None:
    machine.requests_are_well_formed()
    machine.histories_are_connected_paths_from_new()
    machine.money_moves_exactly_once()
    machine.no_payment_after_a_cancellation()


def only_request(order_id: str) -> BillingRequest:
    request = db.session.execute(select(BillingRequest).join(Purchase, Purchase.id == BillingRequest.purchase_id)
                                 .where(Purchase.order_id == order_id)).scalar_one()
    db.session.expunge(request)
    return request


def test_an_agent_ending_a_scheduled_cancellation_now_ends_it_at_the_processor(machine):
    machine.customer_cancels("SUB-DELAYED", "", False)
    assert only_request("SUB-DELAYED").outcome == "cancel_scheduled"
    machine.agent_cancels("SUB-DELAYED", "now", None)
    check(machine)
    assert machine.purchase("SUB-DELAYED").status == "cancelled"
    details = db.session.execute(select(SandboxOperation.detail).where(SandboxOperation.kind == "cancel")
                                 .order_by(SandboxOperation.created_at)).scalars().all()
    assert sorted(details) == ["at_period_end", "now"]  # the second step was not answered with the first


def test_a_failed_cancel_now_keeps_the_schedule_and_its_date_still_ends_it(machine):
    from plugin.errors import Unavailable
    from plugin.workflows.tick import run_tick

    machine.customer_cancels("SUB-DELAYED", "", False)
    machine.processor_faults(refund=0, cancel=1)
    with pytest.raises(Unavailable):
        service.agent_cancel(machine.purchase("SUB-DELAYED"), AGENT, "now")
    db.session.remove()
    check(machine)
    request = only_request("SUB-DELAYED")
    assert (request.state, request.outcome, request.ticket_id) == ("auto_processed", "cancel_scheduled", None)
    machine.now += timedelta(days=40)
    run_tick(machine.now)  # used to raise: the request had become a ticket that period_end cannot end
    db.session.remove()
    check(machine)
    assert machine.purchase("SUB-DELAYED").status == "cancelled"


def test_a_confirmed_step_the_rules_no_longer_accept_goes_to_an_agent(machine):
    machine.crash_after_the_next_processor_answer()
    machine.customer_cancels("SUB-INSTANT", "", False)  # the processor cancelled; we crashed before recording
    machine.merchant_edits_a_price("monthly-instant", "delayed", 30)  # now the rules say "at period end"
    machine.time_passes(10, True)  # tick resumes the step
    check(machine)  # used to fail: auto_processed, nothing pending, no ticket, the slot held for ever
    request = only_request("SUB-INSTANT")
    assert request.state == "ticketed" and "processor confirmed 'complete'" in request.error
    assert db.session.get(Ticket, request.ticket_id).status == "open"


def test_a_due_cancellation_waits_for_the_step_in_flight(machine):
    machine.customer_cancels("SUB-DELAYED", "", False)
    cancels_at = machine.purchase("SUB-DELAYED").cancels_at
    db.session.remove()
    machine.now = cancels_at - timedelta(minutes=1)
    machine.crash_after_the_next_processor_answer()
    machine.agent_cancels("SUB-DELAYED", "now", None)
    machine.time_passes(2, True)  # the date has come, the step is not yet due for a resume
    check(machine)  # used to fail: period_end resolved the request under its pending step
    assert only_request("SUB-DELAYED").pending_event == "cancel_now"
    machine.time_passes(10, True)
    check(machine)
    request = only_request("SUB-DELAYED")
    assert (request.state, request.outcome, request.pending_event) == ("resolved", "cancelled", None)


# -- forms and JSON bodies -----------------------------------------------------------------------------


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    with app.app_context():
        with db.engine.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                    for t in Base.metadata.sorted_tables}


def raw(value: Any) -> bytes:
    """``value`` as the bytes a client sends (Python's json writes NaN and Infinity, which we must survive)."""
    return json.dumps(value).encode()


def check_answer(app: Flask, answer: Any, before: dict[str, list]) -> None:
    """Never a 5xx; a 4xx is the contract's error form and wrote nothing."""
    assert answer.status_code < 500, answer.get_data(as_text=True)[:500]
    if 400 <= answer.status_code < 500:
        body = answer.get_json(silent=True)
        assert isinstance(body, dict) and set(body) == {"error"}, answer.get_data(as_text=True)[:300]
        error = body["error"]
        assert ERROR_CODE.match(error.get("code", "")), error
        assert isinstance(error.get("message"), str) and error["message"].strip(), error
        if "fields" in error:
            assert isinstance(error["fields"], dict) and error["fields"], error
            assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in error["fields"].items()), error
        assert snapshot(app) == before, f"a {answer.status_code} answer wrote to the database"


@pytest.fixture
def fuzz_app(make_app):
    from tests.agent_support import bearer_agent
    from tests.conftest import Ledger

    app = make_app(agent_loader=bearer_agent, RATELIMIT_ENABLED=False)  # every login reaches validation
    shop = Ledger(app)
    shop.settings(enabled=True, cancellation={"mode": "request"}, refunds={"mode": "request"})
    recent = (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    shop.price("pro-monthly")
    shop.order("ORD-1", purchased_at=recent)
    shop.payment("ORD-1", "PAY-1", recent)
    shop.payment("ORD-1", "PAY-2", (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return app


@pytest.fixture
def logged_in(fuzz_app):
    client = fuzz_app.test_client()
    answer = client.post("/billing/api/portal/login", json={"order_id": "ORD-1", "email": "ann@example.com"})
    return client, {"X-CSRFToken": answer.get_json()["csrf_token"]}


@FUZZ_SETTINGS
@given(body=st.one_of(fields_of(good_address), json_values))
@example(body={"name": "Ann", "line1": "1 Main St", "city": "X", "country": "US", "line2": "\ud800"})
@example(body={"name": "Ann", "line1": "1 Main St", "city": "X", "country": float("nan")})
def test_portal_address_put_takes_any_json(fuzz_app, logged_in, body):
    client, headers = logged_in
    before = snapshot(fuzz_app)
    answer = client.put("/billing/api/portal/purchases/ORD-1/billing-address", data=raw(body),
                        content_type="application/json", headers=headers)
    check_answer(fuzz_app, answer, before)


@FUZZ_SETTINGS
@given(body=st.one_of(fields_of({"order_id": st.sampled_from(["ORD-1", " ORD-1 ", "ord-1", "x" * 65, ""]),
                                 "email": st.sampled_from(["ann@example.com", " ANN@example.com ", "a" * 321,
                                                           "ann@example.com\x00"])}), json_values))
def test_portal_login_takes_any_json(fuzz_app, body):
    client = fuzz_app.test_client()
    before = snapshot(fuzz_app)
    answer = client.post("/billing/api/portal/login", data=raw(body), content_type="application/json")
    check_answer(fuzz_app, answer, before)
    if answer.status_code == 200:
        assert answer.get_json()["lead"]["email"] == "ann@example.com"


order_fields = {
    "email": st.sampled_from(["eve@example.com", "not-an-email", "EVE@EXAMPLE.COM", ""]),
    "first_name": st.text(max_size=5), "last_name": st.text(max_size=5),
    "price_point": st.sampled_from(["pro-monthly", "missing", "../x", ""]),
    "purchased_at": st.sampled_from(["2026-11-01T10:00:00Z", "2026-11-01T10:00:00", "yesterday",
                                     "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00Z"]),
    "billing_address": fields_of(good_address),
    "payment_method": st.one_of(
        fields_of({"type": st.sampled_from(["card", "paypal", "cash"]), "brand": st.sampled_from(["visa", ""]),
                   "last4": st.sampled_from(["4242", "42", "abcd"]), "exp_month": st.integers(-1, 13),
                   "exp_year": st.integers(1999, 2101), "payer_email": st.sampled_from(["p@example.com", "p"])})),
    "send_confirmation": st.sampled_from([True, False, "yes", 1]),
}
path_ids = st.one_of(st.sampled_from(["ORD-NEW", "ORD-1", "-x", "a" * 65]),
                     st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s and s not in (".", "..")))


@FUZZ_SETTINGS
@given(order_id=path_ids, body=st.one_of(fields_of(order_fields), json_values))
def test_merchant_order_put_takes_any_json(fuzz_app, order_id, body):
    client = fuzz_app.test_client()
    before = snapshot(fuzz_app)
    answer = client.put(f"/billing/api/admin/orders/{quote(order_id, safe='')}", data=raw(body),
                        content_type="application/json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    check_answer(fuzz_app, answer, before)


@pytest.fixture
def tickets(fuzz_app) -> list[int]:
    """Two open tickets: a refund request and a cancellation request."""
    from plugin.ledger.models import Payment
    from plugin.workflows.service import submit_cancellation, submit_refund

    with fuzz_app.app_context():
        payment = db.session.execute(select(Payment).where(Payment.payment_id == "PAY-1")).scalar_one()
        refund = submit_refund(payment).ticket_id
        purchase = db.session.execute(select(Purchase).where(Purchase.order_id == "ORD-1")).scalar_one()
        cancel = submit_cancellation(purchase).ticket_id
    return [refund, cancel]


@FUZZ_SETTINGS
@given(which=st.integers(0, 2), body=st.one_of(
    fields_of({"event": events, "amount": amounts.filter(lambda a: not isinstance(a, Decimal)),
               "message": messages}),
    json_values))
@example(which=0, body={"event": "refund_partial", "amount": "1e30"})
@example(which=0, body={"event": "refund_partial", "amount": "99999999999999999999999999999.99"})
@example(which=0, body={"event": "refund_partial", "amount": 10**30})
def test_agent_event_post_takes_any_json(fuzz_app, tickets, which, body):
    from tests.agent_support import ALICE

    ticket_id = (tickets + [999999])[which]
    client = fuzz_app.test_client()
    before = snapshot(fuzz_app)
    answer = client.post(f"/billing/api/agent/tickets/{ticket_id}/events", data=raw(body),
                         content_type="application/json", headers=ALICE)
    check_answer(fuzz_app, answer, before)
    if answer.status_code == 409:
        assert isinstance(answer.get_json()["error"].get("accepted", []), list)


@FUZZ_SETTINGS
@given(amount=amounts, event=st.sampled_from(["refund_partial", "refund_full"]))
@example(amount="1e30", event="refund_partial")
def test_desk_event_form_takes_any_amount(fuzz_app, tickets, amount, event):
    """The desk's form posts the same event with a typed amount: never a 5xx, nothing written on a 4xx."""
    client = fuzz_app.test_client()
    from tests.agent_support import ALICE

    page = client.get(f"/billing/desk/tickets/{tickets[0]}", headers=ALICE).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    before = snapshot(fuzz_app)
    answer = client.post(f"/billing/desk/tickets/{tickets[0]}/events", headers=ALICE,
                         data={"csrf_token": match.group(1) if match else "", "event": event,
                               "amount": "" if amount is None else str(amount)})
    assert answer.status_code < 500, answer.get_data(as_text=True)[:300]
    if answer.status_code >= 400:
        assert snapshot(fuzz_app) == before


@FUZZ_SETTINGS
@given(order_id=path_ids, body=st.one_of(fields_of(order_fields), json_values))
@example(order_id="ORD-NUL", body={"email": "eve@example.com", "first_name": "\x00", "price_point": "pro-monthly",
                                   "purchased_at": "2026-11-01T10:00:00Z",
                                   "billing_address": {"name": "Eve", "line1": "1 St", "city": "X", "country": "US"},
                                   "payment_method": {"type": "paypal", "payer_email": "p@example.com"}})
def test_the_merchants_python_api_raises_only_billing_errors(fuzz_app, order_id, body):
    """Hosts call the ledger in-process with plain dicts: bad input is a BillingError that wrote nothing."""
    before = snapshot(fuzz_app)
    with fuzz_app.app_context():
        try:
            ledger.upsert_order(order_id, body)
        except BillingError as err:
            assert 400 <= err.status < 500 and ERROR_CODE.match(err.code), err.to_dict()
            db.session.remove()
            assert snapshot(fuzz_app) == before
        finally:
            db.session.remove()

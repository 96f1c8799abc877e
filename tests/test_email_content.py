"""What every kind of customer email says, caused the way a customer, an agent or the merchant causes it.

Each kind is brought about through its real path (the portal and agent JSON APIs, the merchant
API, ``tick``), sent by the outbox worker to an SMTP server on loopback (aiosmtpd), and read as the
customer's mail program reads it: the Order ID in the subject, the merchant's name in the sign-off
and the footer (with their contact email, address and why the customer gets the email), the
``Reply-To`` header, and the kind's own facts (amounts, payment IDs, dates, invoice numbers), in
the text part and in the HTML part alike.
"""
from __future__ import annotations

import html as html_lib
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from babel.dates import format_date
from sqlalchemy import select

from plugin.db import db, utcnow
from plugin.invoices.documents import CreditNote, Invoice
from plugin.ledger.models import Payment
from plugin.ledger.service import get_purchase, record_payment
from plugin.notifications import KINDS, card_session
from plugin.notifications.models import OutboxEmail
from plugin.notifications.worker import run_worker
from plugin.workflows.tick import run_tick
from tests.agent_support import ALICE, bearer_agent
from tests.conftest import Customer, Ledger
from tests.mail_support import SENDER, parts, smtp  # noqa: F401 - smtp is a fixture

MERCHANT = {"SELF_BILLING_MERCHANT_NAME": "Acme Tools Ltd", "SELF_BILLING_MERCHANT_EMAIL": "support@acme.test",
            "SELF_BILLING_MERCHANT_ADDRESS": "1 Forge Lane\nSheffield S1 2AB\nUnited Kingdom"}
REPLY_TO = "Acme Tools Ltd <support@acme.test>"
AGENT_API = "/billing/api/agent"
ADMIN_API = "/billing/api/admin"


def days_ago(days: float) -> datetime:
    return (datetime.now(timezone.utc) - timedelta(days=days)).replace(microsecond=0)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def long_date(when: datetime | str) -> str:
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return format_date(when, format="long", locale="en_US")


def html_text(markup: str) -> str:
    """The HTML part as a reader sees it: tags gone, entities read, white space collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


class World:
    """A shop with the merchant's details, a mail server, a customer and an agent."""

    def __init__(self, app: Any, smtp_server: Any) -> None:
        self.app = app
        self.smtp = smtp_server
        self.ledger = Ledger(app)
        self.client = app.test_client()
        self.ledger.price("pro-monthly")
        self.ledger.price("pro-delayed", product="Team Plan", amount="99.00", cancellation="delayed")
        self.ledger.price("ebook", product="Python Ebook", amount="19.00", interval=None)

    def modes(self, cancellation: str = "request", refunds: str = "request") -> None:
        self.ledger.settings(enabled=True, portal="both", cancellation={"mode": cancellation},
                             refunds={"mode": refunds}, department="Billing")

    def subscription(self, order_id: str = "SUB-1", price_point: str = "pro-monthly",
                     paid_at: datetime | None = None) -> datetime:
        paid_at = paid_at or days_ago(5)
        self.ledger.order(order_id, price_point=price_point, purchased_at=iso(paid_at))
        self.ledger.payment(order_id, "PAY-1", iso(paid_at))
        return paid_at

    def customer(self, order_id: str = "SUB-1") -> Customer:
        customer = Customer(self.app.test_client())
        assert customer.login(order_id).status_code == 200
        return customer

    def ticket_of(self, answer: Any) -> int:
        assert answer.status_code == 202, answer.get_json()
        request = answer.get_json()["request"]
        assert request["state"] == "ticketed", request
        return request["ticket_id"]

    def agent_event(self, ticket_id: int, **body: Any) -> None:
        answer = self.client.post(f"{AGENT_API}/tickets/{ticket_id}/events", headers=ALICE, json=body)
        assert answer.status_code == 200, answer.get_json()

    def send(self, later: timedelta = timedelta(0)) -> list[tuple[str, Any]]:
        """Run the worker (``later`` from now) and return ``(kind, message)`` of what the server received."""
        start = len(self.smtp.messages)
        with self.app.app_context():
            report = run_worker(once=True, now=utcnow() + later)
            assert report.failed == 0, report.errors
            kinds = dict(db.session.execute(select(OutboxEmail.message_id, OutboxEmail.kind)).all())
        return [(kinds[str(m["Message-ID"])], m) for m in self.smtp.messages[start:]]

    def one(self, kind: str, later: timedelta = timedelta(0)) -> Any:
        found = [message for k, message in self.send(later) if k == kind]
        assert len(found) == 1, f"{len(found)} {kind} email(s)"
        return found[0]


@pytest.fixture
def world(make_app, smtp) -> World:
    app = make_app(agent_loader=bearer_agent, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port,
                   MAIL_SUPPRESS_SEND=False, MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_MAIL_TIMEOUT_SECONDS=10,
                   **MERCHANT)
    return World(app, smtp)


# -- one scenario per kind: (the message, its order ID, its facts) ------------------------------------------
# A fact is (label, value): "label: value" in the text part, "label value" in the HTML part's text;
# a label of None: the value as a sentence in both.

Fact = tuple[str | None, str]


def refund_request_received(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(refunds="request")
    paid_at = w.subscription()
    w.ticket_of(w.customer().post("/payments/PAY-1/refund", json={"reason": "Charged twice"}))
    return w.one("request_ticketed"), "SUB-1", [
        ("Request", "refund of $49.00"), ("Payment", f"PAY-1, $49.00 paid on {long_date(paid_at)}"),
        (None, "Thank you for your request about Pro Plan (order SUB-1)")]


def cancellation_request_received(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(cancellation="request")
    paid_at = w.subscription()
    w.ticket_of(w.customer().post("/purchases/SUB-1/cancel", json={"reason": "Moving on"}))
    with w.app.app_context():
        next_payment = get_purchase("SUB-1").next_payment_at
    assert next_payment > paid_at
    return w.one("request_ticketed"), "SUB-1", [
        ("Request", "cancellation of your Pro Plan subscription"),
        ("Next payment", f"$49.00 on {long_date(next_payment)} (not taken if we cancel before)")]


def cancellation_scheduled(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(cancellation="automatic")
    w.subscription(price_point="pro-delayed")
    answer = w.customer().post("/purchases/SUB-1/cancel", json={})
    assert answer.status_code == 202, answer.get_json()
    cancels_at = w.customer().get("/purchases/SUB-1").get_json()["cancels_at"]
    return w.one("cancellation_scheduled"), "SUB-1", [
        ("Access until", long_date(cancels_at)), (None, "You keep access until")]


def cancellation_done(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(cancellation="automatic")
    w.subscription()
    assert w.customer().post("/purchases/SUB-1/cancel", json={}).status_code == 202
    return w.one("cancellation_done"), "SUB-1", [("Cancelled on", long_date(utcnow()))]


def refund_done(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(refunds="automatic")
    w.subscription()
    assert w.customer().post("/payments/PAY-1/refund", json={"reason": "Did not use it"}).status_code == 202
    with w.app.app_context():
        number = db.session.execute(select(CreditNote.number)).scalar_one()
    return w.one("refund_done"), "SUB-1", [
        ("Refunded", "$49.00"), ("Payment", "PAY-1"), ("Credit note", f"{number} (download it with the payment")]


def request_declined(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(refunds="request")
    w.subscription()
    ticket = w.ticket_of(w.customer().post("/payments/PAY-1/refund", json={}))
    w.agent_event(ticket, event="decline", message="Outside our refund policy.")
    return w.one("request_declined"), "SUB-1", [
        ("Request", "refund request, declined"), (None, "Outside our refund policy.")]


def agent_reply(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(cancellation="request")
    w.subscription()
    ticket = w.ticket_of(w.customer().post("/purchases/SUB-1/cancel", json={}))
    answer = w.client.post(f"{AGENT_API}/tickets/{ticket}/replies", headers=ALICE,
                           json={"message": "We are looking at it today."})
    assert answer.status_code == 201
    return w.one("agent_reply"), "SUB-1", [("Ticket", f"#{ticket}"), (None, "We are looking at it today.")]


def address_changed(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes()
    w.subscription()
    address = {"name": "Ann Lee", "line1": "9 New Road", "line2": "", "city": "Portland", "region": "OR",
               "postal_code": "97201", "country": "US"}
    assert w.customer().put("/purchases/SUB-1/billing-address", json=address).status_code == 200
    return w.one("address_changed"), "SUB-1", [
        ("Changed on", long_date(utcnow())), ("New address", "Ann Lee, 9 New Road, Portland, OR, 97201, US")]


def card_token(w: World, number: str) -> str:
    answer = w.client.post("/billing/sandbox/tokens", json={"number": number, "exp_month": 12, "exp_year": 2031,
                                                             "cvc": "123"})
    assert answer.status_code in (200, 201), answer.get_json()
    return answer.get_json()["token"]


def card_session_of_three_changes(w: World) -> tuple[Any, str, list[Fact]]:
    """Add a card, make it the default, remove the old one: one email, stating every change and the end."""
    w.modes()
    w.subscription()
    ann = w.customer()
    [old] = ann.get("/purchases/SUB-1/payment-methods").get_json()["payment_methods"]
    new = ann.post("/purchases/SUB-1/payment-methods", json={"token": card_token(w, "5555555555554444")})
    assert new.status_code == 201, new.get_json()
    assert ann.post(f"/purchases/SUB-1/payment-methods/{new.get_json()['id']}/default").status_code == 200
    assert ann.delete(f"/purchases/SUB-1/payment-methods/{old['id']}").status_code == 200
    assert [k for k, _ in w.send()] == []  # the session may go on: nothing yet
    return w.one("payment_method_changed", later=card_session.QUIET), "SUB-1", [
        ("Card added", "Mastercard ending in 4444"), ("New default card", "Mastercard ending in 4444"),
        ("Card removed", "Visa ending in 4242"), ("Default card now", "Mastercard ending in 4444"),
        ("Cards on file", "Mastercard ending in 4444 (default)")]


def purchase_confirmation(w: World) -> tuple[Any, str, list[Fact]]:
    order = {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "price_point": "ebook",
             "purchased_at": "2026-11-01T10:00:00Z", "send_confirmation": True,
             "billing_address": {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "country": "US"},
             "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2031}}
    answer = w.client.put(f"{ADMIN_API}/orders/BOOK-9", json=order,
                          headers={"Authorization": "Bearer test-admin-token"})
    assert answer.status_code == 201, answer.get_json()
    return w.one("purchase_confirmation"), "BOOK-9", [
        ("Amount", "$19.00"), ("Date", "November 1, 2026"), (None, "Your Order ID is BOOK-9")]


def record_through_the_api(w: World, order_id: str, payment_id: str, paid_at: datetime) -> str:
    answer = w.client.post(f"{ADMIN_API}/orders/{order_id}/payments", json={"payment_id": payment_id,
                                                                            "paid_at": iso(paid_at)},
                           headers={"Authorization": "Bearer test-admin-token"})
    assert answer.status_code == 201, answer.get_json()
    with w.app.app_context():
        return db.session.execute(select(Invoice.number).join(Payment, Payment.id == Invoice.payment_id)
                                  .where(Payment.payment_id == payment_id)).scalar_one()


def renewal_receipt(w: World) -> tuple[Any, str, list[Fact]]:
    w.subscription(paid_at=days_ago(40))  # the first payment is history: no receipt for it
    paid_at = days_ago(0.5)
    number = record_through_the_api(w, "SUB-1", "PAY-2", paid_at)
    with w.app.app_context():
        next_payment = get_purchase("SUB-1").next_payment_at  # one interval after this payment
    return w.one("payment_receipt"), "SUB-1", [
        ("Amount paid", "$49.00"), ("Paid on", long_date(paid_at)), ("Payment ID", "PAY-2"), ("Invoice", number),
        ("Period", f"{long_date(paid_at)} to {long_date(next_payment)}"),
        ("Next payment", f"$49.00 on {long_date(next_payment)}"),
        (None, "Thank you for your payment of $49.00 for Pro Plan (order SUB-1)")]


def one_time_receipt(w: World) -> tuple[Any, str, list[Fact]]:
    w.ledger.order("BOOK-1", price_point="ebook", purchased_at=iso(days_ago(0.1)))
    number = record_through_the_api(w, "BOOK-1", "PAY-B1", days_ago(0.1))
    message = w.one("payment_receipt")
    assert "Next payment" not in parts(message)["text/plain"]
    return message, "BOOK-1", [("Amount paid", "$19.00"), ("Payment ID", "PAY-B1"), ("Invoice", number)]


def login_link(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes()
    w.subscription()
    answer = w.client.post("/billing/api/portal/login-link", json={"order_id": "SUB-1", "email": "ann@example.com"})
    assert answer.status_code == 202
    message = w.one("login_link")
    assert "/login/link/" in parts(message)["text/plain"]
    return message, "SUB-1", [(None, "works once, for 15 minutes"),
                              (None, "a login link to the billing portal of Acme Tools Ltd was asked for")]


def order_lookup(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes()
    sub_at = w.subscription()
    book_at = days_ago(1)
    w.ledger.order("BOOK-1", price_point="ebook", purchased_at=iso(book_at))
    w.ledger.order("BOB-1", email="bob@example.com", first_name="Bob", purchased_at=iso(days_ago(2)))
    answer = w.client.post("/billing/api/portal/order-lookup", json={"email": "Ann@Example.com"})
    assert answer.status_code == 202
    message = w.one("order_lookup")
    text = parts(message)["text/plain"]
    assert "BOB-1" not in text and "BOB-1" not in parts(message)["text/html"]  # another lead's stays theirs
    assert text.index("BOOK-1") < text.index("SUB-1")  # newest first
    return message, "BOOK-1", [("Python Ebook", f"Order ID BOOK-1, bought {long_date(book_at)}, Paid"),
                               ("Pro Plan", f"Order ID SUB-1, bought {long_date(sub_at)}, Active"),
                               (None, "the Order IDs of this email address's purchases from Acme Tools Ltd")]


def cancellation_undone(w: World) -> tuple[Any, str, list[Fact]]:
    w.modes(cancellation="automatic")
    w.subscription(price_point="pro-delayed")
    ann = w.customer()
    assert ann.post("/purchases/SUB-1/cancel", json={}).status_code == 202
    kept = ann.post("/purchases/SUB-1/resume")
    assert kept.status_code == 200, kept.get_json()
    next_payment = kept.get_json()["next_payment_at"]
    return w.one("cancellation_undone"), "SUB-1", [
        ("Next payment", f"$99.00 on {long_date(next_payment)}"),
        (None, "You kept your subscription to Team Plan (order SUB-1)")]


SCENARIOS: dict[str, tuple[str, Callable[[World], tuple[Any, str, list[Fact]]]]] = {
    "refund request received": ("request_ticketed", refund_request_received),
    "cancellation request received": ("request_ticketed", cancellation_request_received),
    "cancellation scheduled": ("cancellation_scheduled", cancellation_scheduled),
    "cancellation done": ("cancellation_done", cancellation_done),
    "refund done": ("refund_done", refund_done),
    "request declined": ("request_declined", request_declined),
    "agent reply": ("agent_reply", agent_reply),
    "address changed": ("address_changed", address_changed),
    "card session": ("payment_method_changed", card_session_of_three_changes),
    "purchase confirmation": ("purchase_confirmation", purchase_confirmation),
    "renewal receipt": ("payment_receipt", renewal_receipt),
    "one-time purchase receipt": ("payment_receipt", one_time_receipt),
    "login link": ("login_link", login_link),
    "order lookup": ("order_lookup", order_lookup),
    "cancellation undone": ("cancellation_undone", cancellation_undone),
}


def test_every_kind_has_a_scenario():
    assert {kind for kind, _ in SCENARIOS.values()} == set(KINDS)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_email_names_the_merchant_has_a_reply_to_and_says_its_facts(world, name):
    _kind, scenario = SCENARIOS[name]
    message, order_id, facts = scenario(world)

    assert order_id in str(message["Subject"])
    assert message["To"] == "ann@example.com"
    assert message["Reply-To"] == REPLY_TO
    body = parts(message)
    text, html = body["text/plain"], body["text/html"]
    seen = html_text(html)
    # Signed by the merchant, and a footer: name, address lines, contact email, why this email.
    assert "Kind regards,\nAcme Tools Ltd" in text
    assert "Kind regards, Acme Tools Ltd" in seen
    footer = text.split("\n-- \n", 1)[1]
    for line in ("Acme Tools Ltd", "1 Forge Lane", "Sheffield S1 2AB", "United Kingdom", "support@acme.test"):
        assert line in footer.splitlines(), (line, footer)
        assert line in seen
    assert "You receive this email because" in footer and "You receive this email because" in seen
    assert 'href="mailto:support@acme.test"' in html
    assert f"Order ID: {order_id}" in text and f"Order ID {order_id}" in seen
    for label, value in facts:
        if label is None:
            assert value in " ".join(text.split()), (value, text)
            assert value in seen, (value, seen)
        else:
            assert f"{label}: {value}" in text, (label, value, text)
            assert f"{label} {value}" in seen, (label, value, seen)


# -- the merchant: settings over config, Reply-To, no name at all -------------------------------------------


def test_the_seller_profile_of_the_settings_signs_the_email_and_is_the_reply_to(world):
    world.modes()
    world.ledger.settings(seller={"name": "Smith & <Sons>\nTools", "email": "help@smith.example.com",
                                  "address": ["2 Mill Street", "Leeds LS1 4AP"]})
    world.subscription()
    assert world.customer().put("/purchases/SUB-1/billing-address", json={
        "name": "Ann Lee", "line1": "9 New Road", "city": "Portland", "region": "OR", "postal_code": "97201",
        "country": "US"}).status_code == 200
    message = world.one("address_changed")
    assert message["Reply-To"] == '"Smith & <Sons> Tools" <help@smith.example.com>'
    text, html = parts(message)["text/plain"], parts(message)["text/html"]
    assert "Kind regards,\nSmith & <Sons> Tools" in text
    assert "2 Mill Street\nLeeds LS1 4AP\nhelp@smith.example.com" in text
    assert "1 Forge Lane" not in text  # the settings' address, not the configured one
    assert "Smith &amp; &lt;Sons&gt; Tools" in html and "<Sons>" not in html


def test_the_reply_to_setting_wins_over_the_seller_email(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False,
                   MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_MAIL_REPLY_TO="Acme Support <help@acme.test>", **MERCHANT)
    w = World(app, smtp)
    w.ledger.order("BOOK-1", price_point="ebook", purchased_at=iso(days_ago(0.1)))
    record_through_the_api(w, "BOOK-1", "PAY-B1", days_ago(0.1))
    message = w.one("payment_receipt")
    assert message["Reply-To"] == "Acme Support <help@acme.test>"
    assert "support@acme.test" in parts(message)["text/plain"]  # the footer still gives the contact email


# -- receipts: one per payment made, none for history ------------------------------------------------------


def receipts(w: World) -> list[OutboxEmail]:
    with w.app.app_context():
        return list(db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "payment_receipt")).scalars())


def test_a_payment_recorded_twice_has_one_receipt_and_a_refused_one_none(world):
    world.ledger.order("SUB-1", purchased_at=iso(days_ago(40)))
    paid_at = days_ago(1)  # once: the repeat must name the very same second, however slow the machine
    record_through_the_api(world, "SUB-1", "PAY-2", paid_at)
    again = world.client.post(f"{ADMIN_API}/orders/SUB-1/payments", json={"payment_id": "PAY-2",
                                                                         "paid_at": iso(paid_at)},
                              headers={"Authorization": "Bearer test-admin-token"})
    assert again.status_code == 200  # the same payment: nothing new
    reused = world.client.post(f"{ADMIN_API}/orders/SUB-1/payments", json={"payment_id": "PAY-2",
                                                                          "paid_at": iso(days_ago(2))},
                               headers={"Authorization": "Bearer test-admin-token"})
    assert reused.status_code == 409
    assert [row.context["payment"]["payment_id"] for row in receipts(world)] == ["PAY-2"]


def test_no_receipt_for_history_nor_when_the_caller_says_so(world):
    world.ledger.order("SUB-1", purchased_at=iso(days_ago(100)))
    record_through_the_api(world, "SUB-1", "PAY-OLD", days_ago(70))  # a backfill of past payments
    with world.app.app_context():
        _payment, created = record_payment("SUB-1", {"payment_id": "PAY-NOW", "paid_at": iso(days_ago(0.1))},
                                           notify=False)  # an import that tells the customer nothing
    assert created
    assert receipts(world) == []
    assert world.send() == []


def test_a_renewal_recorded_by_tick_sends_its_receipt(world):
    world.subscription(paid_at=days_ago(31) - timedelta(hours=12))  # the next payment fell due half a day ago
    with world.app.app_context():
        run_tick(utcnow())
        renewal = db.session.execute(select(Payment).where(Payment.payment_id != "PAY-1")).scalar_one()
        renewal_id, invoice = renewal.payment_id, db.session.execute(
            select(Invoice.number).where(Invoice.payment_id == renewal.id)).scalar_one()
    message = world.one("payment_receipt")
    text = parts(message)["text/plain"]
    assert "SUB-1" in str(message["Subject"]) and message["Reply-To"] == REPLY_TO
    assert f"Payment ID: {renewal_id}" in text and f"Invoice: {invoice}" in text and "Next payment: $49.00 on" in text


# -- the card session --------------------------------------------------------------------------------------


def card_emails(w: World) -> list[OutboxEmail]:
    with w.app.app_context():
        return list(db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "payment_method_changed")
                                       .order_by(OutboxEmail.id)).scalars())


def test_a_change_after_the_session_email_left_gets_its_own_email(world):
    world.modes()
    world.subscription()
    ann = world.customer()
    added = ann.post("/purchases/SUB-1/payment-methods", json={"token": card_token(world, "5555555555554444")})
    assert added.status_code == 201
    first = world.one("payment_method_changed", later=card_session.QUIET)
    assert "Card added: Mastercard ending in 4444" in parts(first)["text/plain"]
    assert "Cards on file: Visa ending in 4242 (default), Mastercard ending in 4444" in parts(first)["text/plain"]

    assert ann.post(f"/purchases/SUB-1/payment-methods/{added.get_json()['id']}/default").status_code == 200
    second = world.one("payment_method_changed", later=card_session.LONGEST)
    text = parts(second)["text/plain"]
    assert "New default card: Mastercard ending in 4444" in text and "Card added" not in text
    assert "Cards on file: Visa ending in 4242, Mastercard ending in 4444 (default)" in text
    assert len(card_emails(world)) == 2


def test_a_long_session_is_told_at_most_longest_after_its_first_change(world):
    world.modes()
    world.subscription()
    ann = world.customer()
    start = utcnow()
    added = ann.post("/purchases/SUB-1/payment-methods", json={"token": card_token(world, "5555555555554444")})
    [row] = card_emails(world)
    assert start + card_session.QUIET <= row.next_attempt_at <= utcnow() + card_session.QUIET
    assert card_session.due(start + timedelta(minutes=14), start) == start + card_session.LONGEST
    assert ann.post(f"/purchases/SUB-1/payment-methods/{added.get_json()['id']}/default").status_code == 200
    [row] = card_emails(world)  # merged, and due again QUIET after the latest change
    assert row.next_attempt_at >= start + card_session.QUIET
    assert [c["change"] for c in row.context["extra"]["changes"]] == ["added", "default"]


def test_a_session_email_a_worker_already_took_is_not_changed(world):
    world.modes()
    world.subscription()
    ann = world.customer()
    added = ann.post("/purchases/SUB-1/payment-methods", json={"token": card_token(world, "5555555555554444")})
    with world.app.app_context():  # a worker claimed it a moment ago (it renders before it sends)
        row = db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "payment_method_changed")).scalar_one()
        row.status, row.claimed_by, row.claimed_at = "sending", "another-worker", utcnow()
        db.session.commit()
    assert ann.post(f"/purchases/SUB-1/payment-methods/{added.get_json()['id']}/default").status_code == 200
    rows = card_emails(world)
    assert [(r.status, [c["change"] for c in r.context["extra"]["changes"]]) for r in rows] == [
        ("sending", ["added"]), ("queued", ["default"])]

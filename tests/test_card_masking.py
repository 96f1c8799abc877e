"""Card numbers typed as free text are masked where they enter: never stored, emailed or logged in clear.

The mask function itself (:mod:`plugin.cardmask`), then every door through HTTP: customer reasons
(portal JSON API and pages), billing addresses (portal JSON API and page), names and address lines of
the merchant API's orders, agent replies and agent event messages. Each door test looks at the JSON
answer, every row of every table, the rendered emails and everything logged at DEBUG (SQL with its
parameters and the rows read back included).
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from sqlalchemy import select

from plugin.cardmask import luhn_valid, mask_card_numbers
from tests.agent_support import ALICE, agent_app, agent_client, shop  # noqa: F401  (fixtures)
from tests.conftest import ADMIN_TOKEN

API = "/billing/api/agent"
PORTAL_API = "/billing/api/portal"

#: The three ways people type a card number, each a different test card, and what is kept of it.
SPACED = ("4242 4242 4242 4242", "•••• •••• •••• 4242")
DASHED = ("5555-5555-5555-4444", "••••-••••-••••-4444")
PLAIN = ("4000056655665556", "••••••••••••5556")
CARDS = pytest.mark.parametrize("card, masked", [SPACED, DASHED, PLAIN], ids=["spaced", "dashed", "plain"])

#: Sixteen digits failing Luhn, and IDs: free text keeps them as written.
NOT_A_CARD = "4242 4242 4242 4241"
IDS = "ORD-1001, DEMO-1001-20261128, PAY-12 and INV-4242424242424241"


# -- the mask ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("4242 4242 4242 4242", "•••• •••• •••• 4242"),
    ("4242-4242-4242-4242", "••••-••••-••••-4242"),
    ("4242424242424242", "••••••••••••4242"),
    ("Please refund, my card is 4242 4242 4242 4242.", "Please refund, my card is •••• •••• •••• 4242."),
    ("3782 822463 10005", "•••• •••••• •0005"),                       # 15 digits in 4-6-5 groups
    ("4222222222222", "•••••••••2222"),                               # 13 digits
    ("6304 0000 0000 0000 018", "•••• •••• •••• •••0 018"),           # 19 digits, last four 0018
    ("card 4242 4242 4242 4242 123 exp 12/27", "card •••• •••• •••• 4242 123 exp 12/27"),  # the CVC stays
    ("4111111111111111 or 5555-5555-5555-4444", "••••••••••••1111 or ••••-••••-••••-4444"),
    ("card:4242424242424242!", "card:••••••••••••4242!"),
])
def test_card_numbers_are_masked_keeping_the_last_four(text, expected):
    assert mask_card_numbers(text) == expected
    assert len(mask_card_numbers(text)) == len(text)  # fits every length limit the original fitted
    assert mask_card_numbers(expected) == expected    # masking twice changes nothing


@pytest.mark.parametrize("text", [
    "4242 4242 4242 4241",            # 16 digits failing Luhn
    "4242424242424241",
    "ORD-1001", "DEMO-1001-20261128", "PAY-12",
    "INV-4242424242424241",           # an ID-like string with a long digit part failing Luhn
    "424242424242",                   # 12 digits: too short to be a card number
    "42424242424242424242",           # 20 digits in one run: too long
    "Call +1 555-123-4567 on 2026-11-28, order 1001, amount 1,234.56",
    "",
])
def test_everything_else_is_left_as_written(text):
    assert mask_card_numbers(text) == text


def test_luhn_check():
    assert luhn_valid("4242424242424242") and luhn_valid("378282246310005") and luhn_valid("6304000000000000018")
    assert not luhn_valid("4242424242424241") and not luhn_valid("378282246310006")


def test_none_stays_none():
    assert mask_card_numbers(None) is None


# -- helpers ---------------------------------------------------------------------------------------


def digits(card: str) -> str:
    return re.sub(r"\D", "", card)


def digits_only_runs(text: str) -> str:
    """``text`` with spaces and dashes between digits removed, so "4242 4242" is found as "42424242"."""
    return re.sub(r"(?<=\d)[ -](?=\d)", "", text)


def everything_stored(app) -> str:
    """Every row of every table of the plugin, as one text."""
    from plugin.db import Base, db

    with app.app_context():
        rows = [json.dumps(dict(row), default=str, ensure_ascii=False)
                for table in Base.metadata.sorted_tables
                for row in db.session.execute(select(table)).mappings()]
        db.session.remove()
    return "\n".join(rows)


def render_outbox(app) -> list[Any]:
    """Render and 'send' every queued email (the worker's round); returns the outbox rows."""
    from plugin.db import db
    from plugin.notifications import record_messages
    from plugin.notifications.models import OutboxEmail
    from plugin.notifications.worker import drain

    app.config["MAIL_DEFAULT_SENDER"] = "billing@example.com"
    with app.app_context():
        with record_messages():
            drain()
        rows = list(db.session.execute(select(OutboxEmail).order_by(OutboxEmail.id)).scalars())
        db.session.expunge_all()
        db.session.remove()
    return rows


def email_text(rows: list[Any], kind: str | None = None) -> str:
    chosen = [r for r in rows if kind is None or r.kind == kind]
    assert chosen, f"an email of kind {kind}"
    for row in chosen:
        assert row.text_body and row.html_body, "the email was rendered"
    return "\n".join(f"{r.subject}\n{r.text_body}\n{r.html_body}" for r in chosen)


@pytest.fixture
def logs(caplog):
    """Everything logged at DEBUG, SQL statements with their parameters and result rows included."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    return caplog


def logged(caplog) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


def assert_never_in_clear(app, caplog, card: str, *texts: str) -> None:
    """The card's digits are in no table, no email, no log line and none of ``texts``."""
    emails = render_outbox(app)
    places = {"database": everything_stored(app), "emails": email_text(emails) if emails else "",
              "logs": logged(caplog), **{f"text {i}": text for i, text in enumerate(texts)}}
    assert "SELECT" in places["logs"], "SQL is logged, so the check of the logs sees it"
    for name, text in places.items():
        assert card not in text, f"{card!r} in clear in the {name}"
        assert digits(card) not in digits_only_runs(text), f"{card!r} in clear in the {name}"


def portal_login(app, order_id: str = "ORD-1001") -> tuple[Any, dict[str, str]]:
    client = app.test_client()
    login = client.post(PORTAL_API + "/login", json={"order_id": order_id, "email": "ann@example.com"})
    assert login.status_code == 200, login.get_json()
    return client, {"X-CSRFToken": login.get_json()["csrf_token"]}


def requests(app) -> list[Any]:
    from plugin.db import db
    from plugin.workflows.models import BillingRequest

    with app.app_context():
        rows = list(db.session.execute(select(BillingRequest).order_by(BillingRequest.id)).scalars())
        db.session.expunge_all()
        db.session.remove()
    return rows


def ticket_bodies(agent_client, ticket_id: int) -> list[str]:
    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE)
    assert detail.status_code == 200
    return [m["body"] for m in detail.get_json()["messages"]]


# -- customer reasons ----------------------------------------------------------------------------------


@CARDS
@pytest.mark.parametrize("path", ["/payments/PAY-1/refund", "/purchases/ORD-1001/cancel"], ids=["refund", "cancel"])
def test_a_reason_through_the_portal_api_is_kept_masked(agent_app, agent_client, shop, logs, path, card, masked):
    shop.subscription()
    client, headers = portal_login(agent_app)
    answer = client.post(PORTAL_API + path, headers=headers, json={"reason": f"Refund to card {card} please"})
    assert answer.status_code == 202, answer.get_json()
    request = answer.get_json()["request"]
    assert request["reason"] == f"Refund to card {masked} please"
    [row] = requests(agent_app)
    assert row.reason == f"Refund to card {masked} please"
    opening = ticket_bodies(agent_client, request["ticket_id"])[0]
    assert f"Refund to card {masked} please" in opening
    assert_never_in_clear(agent_app, logs, card, answer.get_data(as_text=True), opening)


@pytest.mark.parametrize("path", ["/payments/PAY-1/refund", "/purchases/ORD-1001/cancel"], ids=["refund", "cancel"])
def test_a_reason_through_the_portal_page_is_kept_masked(agent_app, shop, logs, path):
    from tests.test_portal_pages import csrf, login, text

    shop.ledger.settings(portal="both")
    shop.subscription()
    client = agent_app.test_client()
    assert login(client, order_id="ORD-1001").status_code == 302
    page = client.get("/billing/portal" + path)
    assert page.status_code == 200
    answer = client.post("/billing/portal" + path, data={"csrf_token": csrf(text(page)), "reason": SPACED[0]})
    assert answer.status_code == 302
    [row] = requests(agent_app)
    assert row.reason == SPACED[1]
    assert_never_in_clear(agent_app, logs, SPACED[0])


def test_a_reason_without_card_numbers_is_kept_as_written(agent_app, shop):
    shop.subscription()
    client, headers = portal_login(agent_app)
    reason = f"Not {NOT_A_CARD}; see {IDS}"
    answer = client.post(PORTAL_API + "/payments/PAY-1/refund", headers=headers, json={"reason": reason})
    assert answer.status_code == 202
    assert answer.get_json()["request"]["reason"] == reason
    assert requests(agent_app)[0].reason == reason


# -- billing addresses and names ------------------------------------------------------------------------


ADDRESS = {"name": "Ann Lee", "line1": "1 Main St", "line2": "", "city": "Springfield", "region": "IL",
           "postal_code": "62701", "country": "US"}


def stored_address_and_names(app, order_id: str) -> tuple[dict[str, Any], tuple[str, str]]:
    from plugin.db import db
    from plugin.ledger.models import Purchase

    with app.app_context():
        purchase = db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one()
        found = dict(purchase.billing_address), (purchase.lead.first_name, purchase.lead.last_name)
        db.session.remove()
    return found


@CARDS
def test_an_address_through_the_portal_api_is_kept_masked(agent_app, shop, logs, card, masked):
    shop.subscription()
    client, headers = portal_login(agent_app)
    body = {**ADDRESS, "name": f"Ann {card}", "line1": f"{card} Main St", "line2": card}
    answer = client.put(PORTAL_API + "/purchases/ORD-1001/billing-address", headers=headers, json=body)
    assert answer.status_code == 200, answer.get_json()
    expected = {**ADDRESS, "name": f"Ann {masked}", "line1": f"{masked} Main St", "line2": masked}
    assert answer.get_json()["billing_address"] == expected
    assert stored_address_and_names(agent_app, "ORD-1001")[0] == expected
    emails = render_outbox(agent_app)
    assert f"{masked} Main St" in email_text(emails, "address_changed")
    assert_never_in_clear(agent_app, logs, card, answer.get_data(as_text=True))


def test_an_address_through_the_portal_page_is_kept_masked(agent_app, shop, logs):
    from tests.test_portal_pages import csrf, login, text

    shop.ledger.settings(portal="both")
    shop.subscription()
    client = agent_app.test_client()
    assert login(client, order_id="ORD-1001").status_code == 302
    page = client.get("/billing/portal/purchases/ORD-1001/address")
    answer = client.post("/billing/portal/purchases/ORD-1001/address",
                         data={**ADDRESS, "line1": DASHED[0], "csrf_token": csrf(text(page))})
    assert answer.status_code == 302
    assert stored_address_and_names(agent_app, "ORD-1001")[0]["line1"] == DASHED[1]
    assert_never_in_clear(agent_app, logs, DASHED[0])


@CARDS
def test_names_and_address_lines_of_a_merchant_order_are_kept_masked(agent_app, logs, card, masked):
    client = agent_app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.put("/billing/api/admin/price-points/pro", headers=admin, json={
        "product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month"}).status_code in (200, 201)
    order = {"email": "ann@example.com", "first_name": f"Ann {card}", "last_name": card, "price_point": "pro",
             "purchased_at": "2026-11-01T10:00:00Z", "send_confirmation": True,
             "billing_address": {**ADDRESS, "line1": f"{card} Main St", "postal_code": card},
             "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2031}}
    answer = client.put("/billing/api/admin/orders/DEMO-1001-20261128", headers=admin, json=order)
    assert answer.status_code == 201, answer.get_json()
    address, names = stored_address_and_names(agent_app, "DEMO-1001-20261128")
    assert names == (f"Ann {masked}", masked)
    assert (address["line1"], address["postal_code"]) == (f"{masked} Main St", masked)
    assert f"Hi Ann {masked}" in email_text(render_outbox(agent_app), "purchase_confirmation")
    read_back = client.get("/billing/api/admin/orders/DEMO-1001-20261128", headers=admin)
    assert read_back.get_json()["order_id"] == "DEMO-1001-20261128"  # the ID itself is never masked
    assert_never_in_clear(agent_app, logs, card, answer.get_data(as_text=True), read_back.get_data(as_text=True))


# -- agents ----------------------------------------------------------------------------------------------


@CARDS
def test_an_agent_reply_is_kept_and_emailed_masked(agent_app, agent_client, shop, logs, card, masked):
    shop.subscription()
    ticket_id = shop.customer_cancels(reason="Too expensive")["ticket_id"]
    answer = agent_client.post(f"{API}/tickets/{ticket_id}/replies", headers=ALICE,
                               json={"message": f"We never need your card ({card}); please do not send it."})
    assert answer.status_code == 201, answer.get_json()
    expected = f"We never need your card ({masked}); please do not send it."
    assert answer.get_json()["messages"][-1]["body"] == expected
    assert ticket_bodies(agent_client, ticket_id)[-1] == expected
    reply = email_text(render_outbox(agent_app), "agent_reply")
    assert reply.count(expected) == 2  # the text part and the HTML part
    assert_never_in_clear(agent_app, logs, card, answer.get_data(as_text=True))


def test_an_agent_event_message_is_kept_and_emailed_masked(agent_app, agent_client, shop, logs):
    shop.subscription()
    ticket_id = shop.customer_asks_refund("PAY-1")["ticket_id"]
    answer = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE,
                               json={"event": "decline", "message": f"Card {PLAIN[0]} is not ours."})
    assert answer.status_code == 200, answer.get_json()
    expected = f"Card {PLAIN[1]} is not ours."
    assert answer.get_json()["request"]["history"][-1]["note"] == expected
    assert expected in email_text(render_outbox(agent_app), "request_declined")
    assert_never_in_clear(agent_app, logs, PLAIN[0], answer.get_data(as_text=True))


def test_a_manual_refund_message_is_kept_and_emailed_masked(agent_app, agent_client, shop, logs):
    shop.subscription()
    answer = agent_client.post(f"{API}/payments/PAY-1/refunds", headers=ALICE,
                               json={"amount": "10.00", "message": f"Refunded to {DASHED[0]}."})
    assert answer.status_code == 200, answer.get_json()
    [row] = requests(agent_app)
    assert row.reason == f"Refunded to {DASHED[1]}."
    assert f"Refunded to {DASHED[1]}." in email_text(render_outbox(agent_app), "refund_done")
    assert_never_in_clear(agent_app, logs, DASHED[0], answer.get_data(as_text=True))


def test_an_agent_reply_without_card_numbers_is_kept_as_written(agent_client, shop):
    shop.subscription()
    ticket_id = shop.customer_cancels()["ticket_id"]
    message = f"{NOT_A_CARD} is not a card number; your orders are {IDS}."
    answer = agent_client.post(f"{API}/tickets/{ticket_id}/replies", headers=ALICE, json={"message": message})
    assert answer.status_code == 201
    assert answer.get_json()["messages"][-1]["body"] == message

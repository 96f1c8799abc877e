"""Cancellation reasons: the confirmation offers the merchant's list (a sensible default), the customer may
pick one and write more, agents see both, and the merchant counts them per reason over a time range."""
from __future__ import annotations

import re

import pytest

from tests.conftest import ADMIN_TOKEN, Customer
from tests.test_portal_api import days_ago, stock
from tests.test_portal_pages import PORTAL, csrf, login, text, visible

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REPORT = "/billing/api/admin/reports/cancellations"


def _cancel(app, order_id: str, email: str, **body) -> dict:
    customer = Customer(app.test_client())
    assert customer.login(order_id, email).status_code == 200
    answer = customer.post(f"/purchases/{order_id}/cancel", body)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["request"]


def _shop(ledger, orders: int) -> None:
    stock(ledger, cancellation="request")
    for n in range(orders):
        ledger.order(f"SUB-{n + 10}", email=f"c{n}@example.com", purchased_at=days_ago(5))


def test_the_confirmation_offers_the_default_reasons_and_keeps_the_choice(client, ledger):
    stock(ledger, cancellation="request")
    login(client)
    page = text(client.get(PORTAL + "/purchases/SUB-1/cancel"))
    shown = visible(page)
    assert "Why are you cancelling? (optional)" in shown
    options = re.findall(r'<input[^>]*name="reason_choice"[^>]*value="([^"]+)"', page)
    assert options[:2] == ["It costs too much", "I no longer need it"] and len(options) == 6
    answer = client.post(PORTAL + "/purchases/SUB-1/cancel",
                         data={"csrf_token": csrf(page), "reason_choice": "It costs too much",
                               "reason": "Line one\nLine two"})
    assert answer.status_code == 302
    order = client.get("/billing/api/admin/orders/SUB-1", headers=ADMIN).get_json()
    [cancel] = [r for r in order["requests"] if r["type"] == "cancellation"]
    assert cancel["reason_choice"] == "It costs too much" and cancel["reason"] == "Line one\nLine two"


def test_the_agent_sees_the_picked_reason_and_the_comment_on_the_ticket(make_app):
    from tests.conftest import Ledger

    app = make_app(agent_loader=lambda: "agent@helpdesk.example.com")
    stock(Ledger(app), cancellation="request")
    request = _cancel(app, "SUB-1", "ann@example.com", reason_choice="I no longer need it", reason="Project ended")
    page = text(app.test_client().get(f"/billing/desk/tickets/{request['ticket_id']}"))
    summary = visible(page)
    assert "Customer’s reason I no longer need it Project ended" in summary
    # the ticket's first message (what a host's helpdesk receives) says both too
    opening = app.test_client().get(f"/billing/api/agent/tickets/{request['ticket_id']}").get_json()["messages"][0]
    assert "Customer's reason: I no longer need it\nIn their words: Project ended" in opening["body"]
    picked_only = _cancel(app, "BOB-1", "bob@example.com", reason_choice="It costs too much")
    opening = app.test_client().get(f"/billing/api/agent/tickets/{picked_only['ticket_id']}").get_json()["messages"][0]
    assert "Customer's reason: It costs too much\n" in opening["body"] and "(none given)" not in opening["body"]


def test_a_choice_not_offered_is_a_400_and_opens_nothing(app, ledger):
    stock(ledger, cancellation="request")
    customer = Customer(app.test_client())
    customer.login("SUB-1")
    answer = customer.post("/purchases/SUB-1/cancel", {"reason_choice": "Because I said so"})
    assert answer.status_code == 400 and "reason_choice" in answer.get_json()["error"]["fields"]
    assert customer.post("/purchases/SUB-1/cancel", {"reason_choice": 3}).status_code == 400
    order = app.test_client().get("/billing/api/admin/orders/SUB-1", headers=ADMIN).get_json()
    assert [r for r in order["requests"] if r["type"] == "cancellation"] == []


def test_the_merchant_sets_the_list_and_counts_cancellations_per_reason(app, ledger):
    _shop(ledger, 5)
    http = app.test_client()
    reasons = ["Too expensive", "Found another tool", "Other"]
    answer = http.put("/billing/api/admin/settings", json={"cancellation_reasons": reasons}, headers=ADMIN)
    assert answer.status_code == 200 and answer.get_json()["cancellation_reasons"] == reasons
    bad = http.put("/billing/api/admin/settings", json={"cancellation_reasons": ["A", "a"]}, headers=ADMIN)
    assert bad.status_code == 400 and "cancellation_reasons" in bad.get_json()["error"]["fields"]

    _cancel(app, "SUB-10", "c0@example.com", reason_choice="Too expensive")
    _cancel(app, "SUB-11", "c1@example.com", reason_choice="Too expensive", reason="Half the price, please")
    _cancel(app, "SUB-12", "c2@example.com", reason_choice="Other", reason="Moving abroad")
    _cancel(app, "SUB-13", "c3@example.com")
    report = http.get(REPORT, headers=ADMIN).get_json()
    assert report["reasons"] == [{"reason": "Too expensive", "count": 2}, {"reason": "Found another tool", "count": 0},
                                 {"reason": "Other", "count": 1}]
    assert (report["total"], report["no_reason"], report["with_comment"]) == (4, 1, 2)

    # a reason of an earlier list still counts, after the current ones
    http.put("/billing/api/admin/settings", json={"cancellation_reasons": ["Other"]}, headers=ADMIN)
    report = http.get(REPORT, headers=ADMIN).get_json()
    assert report["reasons"] == [{"reason": "Other", "count": 1}, {"reason": "Too expensive", "count": 2}]
    # a range with none of them
    empty = http.get(REPORT + "?from=2020-01-01&to=2020-02-01", headers=ADMIN).get_json()
    assert (empty["total"], empty["from"], empty["to"]) == (0, "2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z")
    # [] brings the default list back
    back = http.put("/billing/api/admin/settings", json={"cancellation_reasons": []}, headers=ADMIN).get_json()
    assert back["cancellation_reasons"][0] == "It costs too much"


@pytest.mark.parametrize(("query", "field"), [("?from=yesterday", "from"), ("?to=2026-13-01", "to"),
                                              ("?from=2026-11-01T00:00:00", "from"),
                                              ("?from=2026-12-01&to=2026-11-01", "from")])
def test_a_bad_report_range_is_a_400_naming_it(app, ledger, query, field):
    stock(ledger)
    answer = app.test_client().get(REPORT + query, headers=ADMIN)
    assert answer.status_code == 400 and field in answer.get_json()["error"]["fields"]
    assert app.test_client().get(REPORT).status_code == 401

"""The agent API (contract section 5): tickets, machine-driven events, replies, lead lookup, manual actions."""
from __future__ import annotations

import threading

import pytest

from tests.agent_support import ALICE, BOB, agent_app, agent_client, shop  # noqa: F401  (fixtures)

API = "/billing/api/agent"


def _ticket_id(request_dict) -> int:
    assert request_dict["state"] == "ticketed", request_dict
    assert request_dict["ticket_id"] is not None
    return request_dict["ticket_id"]


# -- who may call ------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("get", "/tickets"), ("get", "/tickets/1"), ("post", "/tickets/1/events"), ("post", "/tickets/1/replies"),
    ("get", "/leads?q=ann"), ("post", "/purchases/ORD-1001/cancel"), ("post", "/payments/PAY-1/refunds"),
])
def test_no_agent_is_401_on_every_route(agent_client, shop, method, path):
    shop.subscription()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic tok-alice"}):
        response = getattr(agent_client, method)(API + path, headers=headers, json={})
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "agent_required"


def test_host_without_agent_loader_answers_401(client, ledger):
    response = client.get(API + "/tickets", headers=ALICE)
    assert response.status_code == 401
    assert "agent" in response.get_json()["error"]["message"]


def test_customer_session_never_reaches_agent_routes(agent_app, agent_client, shop):
    shop.subscription()
    login = agent_client.post("/billing/api/portal/login", json={"order_id": "ORD-1001", "email": "ann@example.com"})
    assert login.status_code == 200, login.get_json()  # a live customer session in this cookie
    assert agent_client.get(API + "/tickets").status_code == 401
    assert agent_client.get(API + "/leads?q=ann").status_code == 401


# -- the full manual flows ---------------------------------------------------------------


def test_cancellation_request_handled_by_an_agent(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.portal_request("/purchases/ORD-1001/cancel", reason="Moving to another tool"))

    listed = agent_client.get(API + "/tickets?status=open&department=Billing", headers=ALICE).get_json()
    assert [t["id"] for t in listed["tickets"]] == [ticket_id]
    t = listed["tickets"][0]
    assert t["subject"] == "Cancellation request for order ORD-1001"
    assert (t["department"], t["status"], t["order_id"], t["email"]) == ("Billing", "open", "ORD-1001",
                                                                         "ann@example.com")
    opening = t["messages"][0]["body"]
    assert "ORD-1001" in opening and "Pro Plan" in opening and "Moving to another tool" in opening
    assert "We have received your cancellation request" in opening  # what the customer was told

    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert sorted(detail["available_events"]) == ["cancel_at_period_end", "cancel_now", "decline"]
    assert detail["purchase"]["order_id"] == "ORD-1001"
    assert [p["payment_id"] for p in detail["purchase"]["payments"]] == ["PAY-1"]
    assert detail["request"]["type"] == "cancellation"

    response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE,
                                 json={"event": "cancel_now", "message": "Cancelled as you asked."})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "closed"
    assert body["request"]["state"] == "resolved"
    assert body["request"]["outcome"] == "cancelled"
    assert body["available_events"] == []
    assert body["purchase"]["status"] == "cancelled"
    last = body["request"]["history"][-1]
    assert (last["event"], last["by"]) == ("cancel_now", "alice@helpdesk.test")

    assert agent_client.get(API + "/tickets?status=open", headers=ALICE).get_json()["tickets"] == []
    closed = agent_client.get(API + "/tickets?status=closed", headers=ALICE).get_json()["tickets"]
    assert [t["id"] for t in closed] == [ticket_id]
    assert [e.kind for e in shop.emails("ORD-1001", "cancellation_done")] == ["cancellation_done"]


def test_cancel_at_period_end_schedules(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    body = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE,
                             json={"event": "cancel_at_period_end"}).get_json()
    assert body["request"]["outcome"] == "cancel_scheduled"
    assert body["purchase"]["status"] == "cancel_scheduled"
    assert body["purchase"]["cancels_at"] is not None
    assert body["status"] == "closed"


def test_refund_request_partial_refund_by_agent(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.portal_request("/payments/PAY-1/refund", reason="Charged twice"))
    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert detail["subject"] == "Refund request for order ORD-1001"
    assert sorted(detail["available_events"]) == ["decline", "refund_full", "refund_partial"]
    assert detail["payment"]["remaining_amount"] == "49.00"
    opening = detail["messages"][0]["body"]
    assert "PAY-1" in opening and "49.00 USD" in opening and "Charged twice" in opening

    response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=BOB,
                                 json={"event": "refund_partial", "amount": "10.50"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["request"]["outcome"] == "partially_refunded"
    assert body["request"]["amount"] == "10.50"
    assert body["status"] == "closed"
    payment = body["purchase"]["payments"][0]
    assert (payment["status"], payment["refunded_amount"]) == ("partially_refunded", "10.50")
    assert body["request"]["history"][-1]["by"] == "bob@helpdesk.test"
    assert len(shop.emails("ORD-1001", "refund_done")) == 1
    # the ticket closes with a note in words (what the host's helpdesk and the JSON show), not codes
    closing = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()["messages"][-1]["body"]
    assert closing == "Resolved: Partially refunded (Refunded in part, by bob@helpdesk.test)."


def test_refund_request_full_refund_and_decline(agent_client, shop):
    shop.subscription()
    shop.one_time()
    first = _ticket_id(shop.customer_asks_refund("PAY-1"))
    second = _ticket_id(shop.customer_asks_refund("PAY-21"))

    body = agent_client.post(f"{API}/tickets/{first}/events", headers=ALICE,
                             json={"event": "refund_full"}).get_json()
    assert body["request"]["outcome"] == "refunded"
    assert body["purchase"]["payments"][0]["refunded_amount"] == "49.00"

    body = agent_client.post(f"{API}/tickets/{second}/events", headers=ALICE,
                             json={"event": "decline", "message": "Outside our policy."}).get_json()
    assert body["request"]["outcome"] == "declined"
    assert body["status"] == "closed"
    assert body["purchase"]["payments"][0]["refunded_amount"] == "0.00"
    assert len(shop.emails("ORD-2001", "request_declined")) == 1


# -- replies -----------------------------------------------------------------------------


def test_reply_is_recorded_and_emailed(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    response = agent_client.post(f"{API}/tickets/{ticket_id}/replies", headers=ALICE,
                                 json={"message": "We are looking at it today."})
    assert response.status_code == 201
    messages = response.get_json()["messages"]
    assert (messages[-1]["author"], messages[-1]["body"]) == ("alice@helpdesk.test", "We are looking at it today.")
    emails = shop.emails("ORD-1001", "agent_reply")
    assert len(emails) == 1 and emails[0].to_address == "ann@example.com"
    from plugin.notifications.templates import render_email

    with shop.app.app_context():
        subject, text, html = render_email("agent_reply", emails[0].context)
    assert "ORD-1001" in subject
    assert "We are looking at it today." in text and "We are looking at it today." in html


@pytest.mark.parametrize("body, status", [
    ({"message": ""}, 400),
    ({"message": "   "}, 400),
    ({}, 400),
    ({"message": 5}, 400),
    ({"message": "x" * 10_001}, 400),
    ({"message": "x" * 100 * 1024}, 400),
    ({"message": "ok", "cc": "x"}, 400),
])
def test_bad_replies_write_nothing(agent_client, shop, body, status):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    response = agent_client.post(f"{API}/tickets/{ticket_id}/replies", headers=ALICE, json=body)
    assert response.status_code == status
    assert "message" in response.get_json()["error"]
    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert len(detail["messages"]) == 1
    assert shop.emails("ORD-1001", "agent_reply") == []


def test_reply_of_exactly_ten_thousand_characters_is_accepted(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    response = agent_client.post(f"{API}/tickets/{ticket_id}/replies", headers=ALICE, json={"message": "é" * 10_000})
    assert response.status_code == 201


# -- bad events ----------------------------------------------------------------------------


def test_unknown_ticket_is_404(agent_client, shop):
    for method, path, body in (("get", "/tickets/999", None), ("post", "/tickets/999/events", {"event": "decline"}),
                               ("post", "/tickets/999/replies", {"message": "hi"})):
        response = getattr(agent_client, method)(API + path, headers=ALICE, json=body)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "ticket_not_found"


def test_event_not_accepted_is_409_listing_accepted(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    for event in ("refund_full", "explode", "submit", "open_ticket", "period_end"):
        response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json={"event": event})
        assert response.status_code == 409, event
        error = response.get_json()["error"]
        assert error["code"] == "event_not_accepted"
        assert sorted(error["accepted"]) == ["cancel_at_period_end", "cancel_now", "decline"]
        assert "cancel_now" in error["message"]
    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert detail["request"]["state"] == "ticketed" and detail["status"] == "open"

    agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json={"event": "decline"})
    response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json={"event": "cancel_now"})
    assert response.status_code == 409
    assert response.get_json()["error"]["accepted"] == []


@pytest.mark.parametrize("amount", ["0", "0.00", "-5", "-0.01", "49.00", "60", "10.505", "ten", "", "1e3x",
                                    "NaN", "Infinity", 10, 10.5, None])
def test_bad_partial_refund_amounts_are_400_and_move_nothing(agent_client, shop, amount):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_asks_refund())
    body = {"event": "refund_partial"}
    if amount is not None:
        body["amount"] = amount
    response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json=body)
    assert response.status_code == 400, (amount, response.get_json())
    error = response.get_json()["error"]
    assert "amount" in error.get("fields", {}), error
    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert detail["request"]["state"] == "ticketed"
    assert detail["payment"]["refunded_amount"] == "0.00"
    assert shop.emails("ORD-1001", "refund_done") == []


def test_amount_with_another_event_is_400(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_asks_refund())
    response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE,
                                 json={"event": "refund_full", "amount": "5.00"})
    assert response.status_code == 400
    assert "amount" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize("body", [None, "not json", [], {"event": ""}, {"event": 3}, {"evnt": "decline"}])
def test_malformed_event_bodies_are_4xx(agent_client, shop, body):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    if body == "not json":
        response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, data="{oops",
                                     content_type="application/json")
    else:
        response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json=body)
    assert response.status_code in (400, 415)
    assert "error" in response.get_json()


def test_form_body_is_415(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, data={"event": "decline"})
    assert response.status_code == 415


@pytest.mark.parametrize("alice_body, bob_body", [
    ({"event": "refund_full"}, {"event": "refund_partial", "amount": "5.00"}),
    ({"event": "refund_full"}, {"event": "refund_full"}),
    ({"event": "decline"}, {"event": "refund_full"}),
])
def test_two_agents_resolving_at_once_one_wins(agent_app, shop, alice_body, bob_body):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_asks_refund())
    barrier = threading.Barrier(2)
    results: dict[str, tuple[int, dict]] = {}

    def act(name, headers, body):
        client = agent_app.test_client()
        barrier.wait()
        response = client.post(f"{API}/tickets/{ticket_id}/events", headers=headers, json=body)
        results[name] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=act, args=("alice", ALICE, alice_body)),
               threading.Thread(target=act, args=("bob", BOB, bob_body))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(code for code, _ in results.values())
    assert statuses == [200, 409], results
    loser = next(body for code, body in results.values() if code == 409)
    assert "accepted" in loser["error"]

    client = agent_app.test_client()
    detail = client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    winner = next(name for name, (code, _) in results.items() if code == 200)
    won = alice_body if winner == "alice" else bob_body
    refunded = {"refund_full": "49.00", "refund_partial": "5.00", "decline": "0.00"}[won["event"]]
    assert detail["purchase"]["payments"][0]["refunded_amount"] == refunded
    assert detail["status"] == "closed"
    assert [h["by"] for h in detail["request"]["history"]].count(f"{winner}@helpdesk.test") == 1
    loser_name = "bob" if winner == "alice" else "alice"
    assert f"{loser_name}@helpdesk.test" not in [h["by"] for h in detail["request"]["history"]]
    kind = "request_declined" if won["event"] == "decline" else "refund_done"
    assert len(shop.emails("ORD-1001", kind)) == 1
    assert len(shop.emails("ORD-1001")) == 2  # request_ticketed + the one outcome


# -- lead lookup -------------------------------------------------------------------------


def test_leads_lookup_by_email_or_name(agent_client, shop):
    shop.subscription()
    shop.one_time()
    shop.ledger.price("pro-monthly")
    shop.ledger.order("ORD-3001", email="bo@example.org", first_name="Bo", last_name="Chen")
    for q in ("ann@example.com", "ANN@EXAMPLE", "Lee", "ann lee", "  ann  "):
        leads = agent_client.get(API + "/leads", query_string={"q": q}, headers=ALICE).get_json()["leads"]
        assert [lead["email"] for lead in leads] == ["ann@example.com"], q
        assert sorted(o["order_id"] for o in leads[0]["orders"]) == ["ORD-1001", "ORD-2001"]
        assert {o["email"] for o in leads[0]["orders"]} == {"ann@example.com"}
        order = leads[0]["orders"][0]
        assert set(order) >= {"order_id", "product", "status", "purchased_at", "email"}
    leads = agent_client.get(API + "/leads?q=chen", headers=ALICE).get_json()["leads"]
    assert [(lead["first_name"], lead["orders"][0]["order_id"]) for lead in leads] == [("Bo", "ORD-3001")]


def test_leads_lookup_by_exact_email_or_order_id_names_one_lead(agent_client, shop):
    shop.subscription()
    shop.ledger.price("pro-monthly")
    shop.ledger.order("ORD-3001", email="joann@example.com", first_name="Jo", last_name="Ann")
    for q in ("ann@example.com", "ORD-3001"):
        leads = agent_client.get(API + "/leads", query_string={"q": q}, headers=ALICE).get_json()["leads"]
        expected = "ann@example.com" if "@" in q else "joann@example.com"
        assert [lead["email"] for lead in leads] == [expected], q
    # Part of an email still searches: both leads contain it, the newest first.
    leads = agent_client.get(API + "/leads?q=ann@example", headers=ALICE).get_json()["leads"]
    assert [lead["email"] for lead in leads] == ["joann@example.com", "ann@example.com"]


def test_leads_lookup_nothing_found_hints_other_email(agent_client, shop):
    shop.subscription()
    body = agent_client.get(API + "/leads?q=nobody@nowhere.test", headers=ALICE).get_json()
    assert body["leads"] == []
    assert "different email at checkout" in body["hint"]
    # LIKE wildcards are searched for literally
    assert agent_client.get(API + "/leads?q=%25", headers=ALICE).get_json()["leads"] == []
    assert agent_client.get(API + "/leads?q=_", headers=ALICE).get_json()["leads"] == []


@pytest.mark.parametrize("query", ["", "q=", "q=%20%20", "q=" + "a" * 201, "q=ann&limit=0", "q=ann&limit=x"])
def test_leads_lookup_bad_queries_are_400(agent_client, shop, query):
    response = agent_client.get(f"{API}/leads?{query}", headers=ALICE)
    assert response.status_code == 400


# -- the queue ---------------------------------------------------------------------------


def test_queue_filters_and_pages(agent_client, shop):
    shop.subscription()
    ids = []
    for n in range(5):
        order_id, payment_id = f"ORD-9{n}", f"PAY-9{n}"
        shop.ledger.order(order_id)
        shop.ledger.payment(order_id, payment_id, "2026-11-20T10:00:00Z")
        ids.append(_ticket_id(shop.customer_asks_refund(payment_id)))
    shop.ledger.settings(department="Refunds")
    other = _ticket_id(shop.customer_cancels())

    billing = agent_client.get(API + "/tickets?department=billing", headers=ALICE).get_json()
    assert [t["id"] for t in billing["tickets"]] == ids[::-1]
    refunds = agent_client.get(API + "/tickets?department=Refunds", headers=ALICE).get_json()
    assert [t["id"] for t in refunds["tickets"]] == [other]
    assert agent_client.get(API + "/tickets?department=Nope", headers=ALICE).get_json()["tickets"] == []

    seen, before = [], None
    while True:
        query = "limit=2&status=open" + (f"&before={before}" if before else "")
        page = agent_client.get(f"{API}/tickets?{query}", headers=ALICE).get_json()
        seen += [t["id"] for t in page["tickets"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == sorted(ids + [other], reverse=True)


@pytest.mark.parametrize("query", ["status=pending", "limit=0", "limit=1000", "limit=abc", "before=-1"])
def test_queue_bad_filters_are_400(agent_client, shop, query):
    assert agent_client.get(f"{API}/tickets?{query}", headers=ALICE).status_code == 400


# -- manual actions outside requests -------------------------------------------------------


def test_manual_cancel_whatever_the_settings(agent_client, shop):
    shop.subscription()
    shop.ledger.settings(enabled=False, cancellation={"mode": "disabled"})
    response = agent_client.post(API + "/purchases/ORD-1001/cancel", headers=ALICE,
                                 json={"when": "now", "message": "Cancelled by phone request."})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["purchase"]["status"] == "cancelled"
    assert body["request"]["outcome"] == "cancelled"
    assert body["request"]["ticket_id"] is None
    assert {h["by"] for h in body["request"]["history"]} == {"alice@helpdesk.test"}

    again = agent_client.post(API + "/purchases/ORD-1001/cancel", headers=ALICE, json={"when": "now"})
    assert again.status_code == 409
    assert len(shop.emails("ORD-1001", "cancellation_done")) == 1


def test_manual_cancel_at_period_end(agent_client, shop):
    shop.subscription()
    body = agent_client.post(API + "/purchases/ORD-1001/cancel", headers=ALICE,
                             json={"when": "period_end"}).get_json()
    assert body["purchase"]["status"] == "cancel_scheduled"
    assert body["request"]["outcome"] == "cancel_scheduled"


def test_manual_refund_partial_then_rest_whatever_the_settings(agent_client, shop):
    shop.one_time()
    shop.ledger.settings(enabled=False, refunds={"mode": "disabled"})
    first = agent_client.post(API + "/payments/PAY-21/refunds", headers=ALICE, json={"amount": "30.00"})
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["request"]["outcome"] == "partially_refunded"
    assert first.get_json()["purchase"]["status"] == "partially_refunded"

    too_much = agent_client.post(API + "/payments/PAY-21/refunds", headers=ALICE, json={"amount": "70.01"})
    assert too_much.status_code == 400
    assert "70.00" in too_much.get_json()["error"]["message"]

    rest = agent_client.post(API + "/payments/PAY-21/refunds", headers=BOB, json={"amount": "70.00"})
    assert rest.status_code == 200
    assert rest.get_json()["purchase"]["status"] == "refunded"
    assert rest.get_json()["purchase"]["payments"][0]["refunded_amount"] == "100.00"

    done = agent_client.post(API + "/payments/PAY-21/refunds", headers=BOB, json={"amount": "1.00"})
    assert done.status_code == 409


@pytest.mark.parametrize("body", [{}, {"amount": "0"}, {"amount": "-1"}, {"amount": "1.234"}, {"amount": "abc"},
                                  {"amount": 5}, {"amount": "101.00"}, {"amount": "5", "extra": 1}])
def test_manual_refund_bad_amounts(agent_client, shop, body):
    shop.one_time()
    response = agent_client.post(API + "/payments/PAY-21/refunds", headers=ALICE, json=body)
    assert response.status_code == 400
    assert shop.emails("ORD-2001", "refund_done") == []


@pytest.mark.parametrize("body", [{}, {"when": "tomorrow"}, {"when": "now", "x": 1}])
def test_manual_cancel_bad_bodies(agent_client, shop, body):
    shop.subscription()
    assert agent_client.post(API + "/purchases/ORD-1001/cancel", headers=ALICE, json=body).status_code == 400


def test_manual_actions_unknown_ids_are_404(agent_client, shop):
    assert agent_client.post(API + "/purchases/NOPE/cancel", headers=ALICE,
                             json={"when": "now"}).status_code == 404
    assert agent_client.post(API + "/payments/NOPE/refunds", headers=ALICE,
                             json={"amount": "1.00"}).status_code == 404


def test_manual_cancel_of_one_time_purchase_is_409(agent_client, shop):
    shop.one_time()
    response = agent_client.post(API + "/purchases/ORD-2001/cancel", headers=ALICE, json={"when": "now"})
    assert response.status_code == 409


# -- cost ----------------------------------------------------------------------------------


def _statements(app, fn) -> int:
    from sqlalchemy import event

    from plugin.db import db

    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def test_queue_and_lookup_cost_does_not_grow_with_tickets_or_orders(agent_app, agent_client, shop):
    shop.subscription()

    def add_tickets(start: int, count: int) -> None:
        for n in range(start, start + count):
            shop.ledger.order(f"ORD-5{n:02d}")
            shop.ledger.payment(f"ORD-5{n:02d}", f"PAY-5{n:02d}", "2026-11-20T10:00:00Z")
            _ticket_id(shop.customer_asks_refund(f"PAY-5{n:02d}"))

    def list_page():
        assert agent_client.get(API + "/tickets?status=open", headers=ALICE).status_code == 200

    def lookup():
        assert agent_client.get(API + "/leads?q=ann", headers=ALICE).status_code == 200

    add_tickets(0, 2)
    few = _statements(agent_app, list_page), _statements(agent_app, lookup)
    add_tickets(2, 10)
    many = _statements(agent_app, list_page), _statements(agent_app, lookup)
    assert many == few
    page = agent_client.get(API + "/tickets?status=open", headers=ALICE).get_json()["tickets"]
    assert len(page) == 12 and all(len(t["request"]["history"]) == 2 for t in page)


def test_manual_refund_while_a_customer_request_is_open_resolves_it_and_closes_its_ticket(agent_client, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_asks_refund())
    response = agent_client.post(API + "/payments/PAY-1/refunds", headers=ALICE, json={"amount": "49.00"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["request"]["ticket_id"] == ticket_id
    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert detail["status"] == "closed"
    assert detail["request"]["outcome"] == "refunded"
    assert detail["available_events"] == []


def test_processor_outage_on_an_agent_refund_is_503_and_a_retry_refunds_once(agent_client, shop):
    from tests.conftest import ADMIN_TOKEN

    shop.subscription()
    ticket_id = _ticket_id(shop.customer_asks_refund())
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert agent_client.put("/billing/api/admin/sandbox/faults", headers=admin, json={"refund": 1}).status_code == 200

    response = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json={"event": "refund_full"})
    assert response.status_code == 503
    assert "try" in response.get_json()["error"]["message"].lower()
    detail = agent_client.get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert detail["status"] == "open" and detail["payment"]["refunded_amount"] == "0.00"
    assert "refund_full" in detail["available_events"]

    again = agent_client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json={"event": "refund_full"})
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["purchase"]["payments"][0]["refunded_amount"] == "49.00"
    assert len(shop.emails("ORD-1001", "refund_done")) == 1


def test_a_refund_that_no_longer_fits_after_another_finished_is_409_never_another_amount(
        agent_app, agent_client, shop, monkeypatch):
    """The asked amount is checked under the purchase lock: a partial refund that completes between the
    agent's request and the lock leaves less than asked, and the answer says so instead of refunding
    what remains (199.00 asked, 149.00 refunded, before)."""
    from plugin.workflows import service

    shop.one_time()
    shop.ledger.price("ebook", product="Cookbook", amount="199.00", interval=None)
    shop.ledger.order("ORD-7001", price_point="ebook", email="cy@example.com", purchased_at="2026-11-20T10:00:00Z")
    shop.ledger.payment("ORD-7001", "PAY-7001", "2026-11-20T10:00:00Z")
    real_lock = service.lock_purchase
    raced = []

    def lock_after_another_refund(purchase_id):
        if not raced:  # once: another agent's 50.00 completes just before this request takes the lock
            raced.append(None)
            raced[0] = agent_app.test_client().post(API + "/payments/PAY-7001/refunds", headers=BOB,
                                                     json={"amount": "50.00"})
        return real_lock(purchase_id)

    monkeypatch.setattr(service, "lock_purchase", lock_after_another_refund)
    answer = agent_client.post(API + "/payments/PAY-7001/refunds", headers=ALICE, json={"amount": "199.00"})
    monkeypatch.setattr(service, "lock_purchase", real_lock)

    assert raced and raced[0].status_code == 200, raced[0].get_json()
    assert answer.status_code == 409, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "amount_exceeds_remaining" and error["remaining"] == "149.00"
    assert "$149.00 remains" in error["message"] and "Nothing was refunded" in error["message"]
    with agent_app.app_context():
        from sqlalchemy import select

        from plugin.db import db
        from plugin.ledger.models import Payment, Refund

        paid = db.session.execute(select(Payment).where(Payment.payment_id == "PAY-7001")).scalar_one()
        refunds = db.session.execute(select(Refund.amount_cents).where(Refund.payment_id == paid.id)).scalars().all()
    assert refunds == [5000], f"only the 50.00 moved, got {refunds}"
    # What remains can still be refunded, exactly.
    rest = agent_client.post(API + "/payments/PAY-7001/refunds", headers=ALICE, json={"amount": "149.00"})
    assert rest.status_code == 200 and rest.get_json()["request"]["outcome"] == "refunded"

"""The agent desk pages: the queue, a ticket's page and its forms, the lead lookup, manual actions."""
from __future__ import annotations

import re
from html import unescape

import pytest

from tests.parts import WKHTMLTOPDF, in_ci
from tests.agent_support import ALICE, agent_app, agent_client, bearer_agent, shop  # noqa: F401  (fixtures)

DESK = "/billing/desk"


@pytest.fixture
def desk(agent_app):
    client = agent_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ALICE["Authorization"]
    return client


def _text(response) -> str:
    """What a person reads on the page: no markup, no style sheet, no script."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _buttons(html: str) -> list[str]:
    """The events whose forms the page offers (hidden input 'event')."""
    return re.findall(r'<input type="hidden" name="event" value="([^"]+)">', html)


def _ticket_id(request_dict) -> int:
    assert request_dict["state"] == "ticketed"
    return request_dict["ticket_id"]


def test_desk_needs_an_agent(agent_app, shop):
    client = agent_app.test_client()
    for path in ("/", "/tickets/1", "/leads?q=ann", "/orders/ORD-1"):
        response = client.get(DESK + path)
        assert response.status_code == 401
        assert "Sign in to the helpdesk as an agent" in _text(response)
    assert client.post(DESK + "/tickets/1/events", data={"event": "decline"}).status_code == 401


def test_queue_lists_tickets_by_department_and_status(desk, shop):
    shop.subscription()
    shop.one_time()
    cancel_ticket = _ticket_id(shop.customer_cancels())
    shop.ledger.settings(department="Refunds")
    refund_ticket = _ticket_id(shop.customer_asks_refund("PAY-21"))

    page = _text(desk.get(DESK + "/"))
    assert "Cancellation request for order ORD-1001" in page
    assert "Refund request for order ORD-2001" in page
    billing = _text(desk.get(DESK + "/?department=Billing&status=open"))
    assert "ORD-1001" in billing and "ORD-2001" not in billing
    refunds = desk.get(DESK + "/?department=Refunds")
    assert f'/billing/desk/tickets/{refund_ticket}"' in refunds.get_data(as_text=True)
    assert f'/billing/desk/tickets/{cancel_ticket}"' not in refunds.get_data(as_text=True)
    assert "No closed tickets" in _text(desk.get(DESK + "/?status=closed"))


def test_cancellation_flow_through_the_desk(desk, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.portal_request("/purchases/ORD-1001/cancel", reason="Switching tools"))

    page = desk.get(f"{DESK}/tickets/{ticket_id}")
    html = page.get_data(as_text=True)
    text = _text(page)
    assert page.status_code == 200
    assert sorted(_buttons(html)) == ["cancel_at_period_end", "cancel_now", "decline"]
    assert "Switching tools" in text and "Pro Plan" in text and "PAY-1" in text
    assert 'href="/billing/api/agent/payments/PAY-1/invoice.pdf"' in html
    assert "Download invoice" in text
    assert "Request history" in text and "Ticket opened" in text and "open_ticket" not in text

    response = desk.post(f"{DESK}/tickets/{ticket_id}/events",
                         data={"csrf_token": _csrf(html), "event": "cancel_now", "message": "Done for you."})
    assert response.status_code == 302
    after = desk.get(response.headers["Location"])
    text = _text(after)
    assert "Done: The subscription was cancelled now. The customer was emailed." in text
    assert _buttons(after.get_data(as_text=True)) == []
    assert "Ticket: Closed" in text and "Resolved" in text
    assert "Cancelled now" in text and "alice@helpdesk.test" in text  # the history names the agent
    assert len(shop.emails("ORD-1001", "cancellation_done")) == 1


def test_partial_refund_through_the_desk_shows_what_remains(desk, shop):
    shop.one_time()
    ticket_id = _ticket_id(shop.customer_asks_refund("PAY-21"))
    page = desk.get(f"{DESK}/tickets/{ticket_id}")
    html = page.get_data(as_text=True)
    assert sorted(_buttons(html)) == ["decline", "refund_full", "refund_partial"]
    assert "Remaining on payment PAY-21: $100.00" in _text(page)
    assert 'name="amount"' in html

    for bad, words in (("0", "more than 0"), ("-3", "more than 0"), ("100.00", "less"), ("150", "more than remains"),
                       ("1.234", "two decimal places"), ("abc", "not a number")):
        response = desk.post(f"{DESK}/tickets/{ticket_id}/events",
                             data={"csrf_token": _csrf(html), "event": "refund_partial", "amount": bad})
        assert response.status_code == 400, bad
        assert words in _text(response), (bad, _text(response))
    assert shop.emails("ORD-2001", "refund_done") == []

    response = desk.post(f"{DESK}/tickets/{ticket_id}/events",
                         data={"csrf_token": _csrf(html), "event": "refund_partial", "amount": "25.00"})
    assert response.status_code == 302
    text = _text(desk.get(response.headers["Location"]))
    assert "Partially refunded" in text and "$25.00" in text and "partially_refunded" not in text


def test_event_the_machine_does_not_accept_is_409_on_the_page(desk, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    html = desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True)
    response = desk.post(f"{DESK}/tickets/{ticket_id}/events", data={"csrf_token": _csrf(html), "event": "refund_full"})
    assert response.status_code == 409
    assert "It accepts: " in _text(response)


def test_forms_need_their_csrf_token(desk, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    response = desk.post(f"{DESK}/tickets/{ticket_id}/events", data={"event": "cancel_now"})
    assert response.status_code == 400
    assert "Reload the page" in _text(response)
    response = desk.post(f"{DESK}/tickets/{ticket_id}/replies", data={"message": "hi", "csrf_token": "forged"})
    assert response.status_code == 400
    detail = desk.get(f"{DESK}/tickets/{ticket_id}")
    assert sorted(_buttons(detail.get_data(as_text=True))) == ["cancel_at_period_end", "cancel_now", "decline"]
    assert shop.emails("ORD-1001", "agent_reply") == []


def test_reply_box(desk, shop):
    shop.subscription()
    ticket_id = _ticket_id(shop.customer_cancels())
    html = desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True)
    for bad in ("", "   ", "y" * 100 * 1024):
        response = desk.post(f"{DESK}/tickets/{ticket_id}/replies", data={"csrf_token": _csrf(html), "message": bad})
        assert response.status_code == 400
    response = desk.post(f"{DESK}/tickets/{ticket_id}/replies",
                         data={"csrf_token": _csrf(html), "message": "We'll cancel it today."})
    assert response.status_code == 302
    text = _text(desk.get(response.headers["Location"]))
    assert "We'll cancel it today." in text and "emailed to the customer" in text
    assert len(shop.emails("ORD-1001", "agent_reply")) == 1


def test_unknown_ticket_page_is_404(desk, shop):
    assert desk.get(DESK + "/tickets/999").status_code == 404
    assert desk.get(DESK + "/orders/NOPE").status_code == 404


def test_lead_lookup_page(desk, shop):
    shop.subscription()
    page = desk.get(DESK + "/leads?q=ann")
    html = page.get_data(as_text=True)
    assert 'value="ORD-1001"' in html and 'value="ann@example.com"' in html  # ready to copy
    assert "readonly" in html
    assert "different email at checkout" in _text(page)

    nothing = _text(desk.get(DESK + "/leads?q=zed@nowhere.test"))
    assert "No lead matches" in nothing
    assert "the customer may have used a different email at checkout" in nothing.lower()


def test_lead_lookup_lists_the_newest_matches_first_and_says_when_there_may_be_more(desk, shop):
    shop.subscription()
    for n in range(1, 23):  # 22 more leads whose email contains "shopper", ORD-2001 the oldest
        shop.ledger.order(f"ORD-{2000 + n}", email=f"shopper{n:02d}@example.com")
    html = desk.get(DESK + "/leads?q=shopper").get_data(as_text=True)
    listed = re.findall(r'value="(shopper\d+@example\.com)"', html)
    assert listed == [f"shopper{n:02d}@example.com" for n in range(22, 2, -1)]  # the 20 newest, newest first
    assert "Showing the 20 newest leads that match “shopper”; there may be more." in _text(desk.get(DESK + "/leads?q=shopper"))

    few = _text(desk.get(DESK + "/leads?q=shopper0"))  # 9 matches: all of them, no such hint
    assert "shopper09@example.com" in few and "shopper01@example.com" in few
    assert "there may be more" not in few


def test_the_order_and_ticket_pages_show_the_bill_to_address_and_the_card(desk, shop):
    shop.subscription()
    order = _text(desk.get(DESK + "/orders/ORD-1001"))
    assert "Bill to Ann Lee 1 Main St Springfield, IL 62701" in order
    assert "Payment method Visa ending in 4242, expires 12/2030" in order

    shop.ledger.order("ORD-1002", email="eva@example.com", billing_address={
        "name": "Eva Schmidt", "line1": "Hauptstr. 5", "city": "Berlin", "postal_code": "10115", "country": "DE",
        "vat_id": "DE136695976"}, payment_method={"type": "paypal", "payer_email": "eva@paypal.example"})
    german = _text(desk.get(DESK + "/orders/ORD-1002"))
    assert "Bill to Eva Schmidt Hauptstr. 5 10115 Berlin" in german and "VAT ID DE136695976" in german
    assert "Payment method PayPal (eva@paypal.example)" in german

    ticket = _text(desk.get(f"{DESK}/tickets/{_ticket_id(shop.customer_cancels())}"))
    assert "Bill to Ann Lee 1 Main St Springfield, IL 62701" in ticket and "Visa ending in 4242" in ticket


def test_manual_cancel_and_refund_on_the_order_page(desk, shop):
    shop.subscription()
    shop.ledger.settings(cancellation={"mode": "disabled"}, refunds={"mode": "disabled"})
    page = desk.get(DESK + "/orders/ORD-1001")
    html = page.get_data(as_text=True)
    assert "Cancel now" in html and "Cancel at the end of the paid period" in html

    response = desk.post(DESK + "/payments/PAY-1/refunds", data={"csrf_token": _csrf(html), "amount": "9.00"})
    assert response.status_code == 302
    text = _text(desk.get(response.headers["Location"]))
    assert "Payment PAY-1 was refunded." in text and "$9.00" in text

    too_much = desk.post(DESK + "/payments/PAY-1/refunds", data={"csrf_token": _csrf(html), "amount": "41.00"})
    assert too_much.status_code == 400 and "more than remains" in _text(too_much)

    response = desk.post(DESK + "/orders/ORD-1001/cancel", data={"csrf_token": _csrf(html), "when": "now"})
    assert response.status_code == 302
    text = _text(desk.get(response.headers["Location"]))
    assert "The subscription was cancelled." in text
    assert "Cancel now" not in text  # nothing left to cancel
    assert "alice@helpdesk.test" in text


def test_host_mount_with_login_redirect_and_base_template(make_app, tmp_path):
    from plugin import SelfBilling

    app = make_app(agent_loader=bearer_agent, base_template="host_layout.html")
    app.jinja_loader.searchpath.append(str(tmp_path))  # the host's own templates
    (tmp_path / "host_layout.html").write_text(
        "<html><title>{% block title %}{% endblock %} · Host</title>"
        "<body><header>HOST HELPDESK</header>{% block content %}{% endblock %}</body></html>")
    SelfBilling().register_agent_desk(app, "/desk", login_url="/agent-login")

    anonymous = app.test_client().get("/desk/?status=open")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == "/agent-login?next=%2Fdesk%2F%3Fstatus%3Dopen"

    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ALICE["Authorization"]
    page = client.get("/desk/")
    assert page.status_code == 200
    assert "HOST HELPDESK" in page.get_data(as_text=True)
    assert 'href="/desk/leads"' in page.get_data(as_text=True)
    assert client.get("/billing/desk/").status_code == 200


# -- the demo host's desk ----------------------------------------------------------------


def test_demo_host_desk_end_to_end(database_url, tmp_path):
    """The demo helpdesk serves the plugin's desk at /desk/ behind its own agent login."""
    from plugin.demo import create_app
    from plugin.demo.settings import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
    from tests.agent_support import Shop
    from tests.conftest import Ledger

    app = create_app({"TESTING": True, "SECRET_KEY": "s", "SQLALCHEMY_DATABASE_URI": database_url,
                      "MAIL_SUPPRESS_SEND": True}, instance_path=str(tmp_path / "instance"))
    try:
        ledger = Ledger(app)
        ledger.settings(enabled=True, refunds={"mode": "request"}, department="Billing")
        shop = Shop(app, ledger)
        shop.subscription()
        ticket_id = _ticket_id(shop.portal_request("/payments/PAY-1/refund"))

        client = app.test_client()
        assert client.get("/desk/").headers["Location"].startswith("/desk/login?next=")
        login = client.get("/desk/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
        client.post("/desk/login", data={"csrf_token": token, "email": DEMO_AGENT_EMAIL,
                                         "password": DEMO_AGENT_PASSWORD, "next": ""})

        queue = client.get("/desk/")
        html = queue.get_data(as_text=True)
        assert queue.status_code == 200
        assert f'href="/desk/tickets/{ticket_id}"' in html and "Refund request for order ORD-1001" in html

        page = client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)
        assert sorted(_buttons(page)) == ["decline", "refund_full", "refund_partial"]
        invoice = client.get("/billing/api/agent/payments/PAY-1/invoice.pdf")  # the "Download invoice" link
        if WKHTMLTOPDF or in_ci():
            assert (invoice.status_code, invoice.mimetype) == (200, "application/pdf")
        else:  # no renderer here: the link still reaches the route, which says so
            assert invoice.status_code == 503

        done = client.post(f"/desk/tickets/{ticket_id}/events",
                           data={"csrf_token": _csrf(page), "event": "refund_full"})
        assert done.headers["Location"] == f"/desk/tickets/{ticket_id}"
        after = client.get(done.headers["Location"])
        text = _text(after)
        assert text.count("Done: The payment was refunded in full.") == 1
        assert "Ticket: Closed" in text and DEMO_AGENT_EMAIL in text
        assert _buttons(after.get_data(as_text=True)) == []
    finally:
        with app.app_context():
            app.extensions["sqlalchemy"].session.remove()
            app.extensions["sqlalchemy"].engine.dispose()


def test_too_long_amount_or_message_says_which_field(desk, shop):
    shop.one_time()
    ticket_id = _ticket_id(shop.customer_asks_refund("PAY-21"))
    html = desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True)
    response = desk.post(f"{DESK}/tickets/{ticket_id}/events", data={
        "csrf_token": _csrf(html), "event": "refund_partial", "amount": "1" * 40})
    assert response.status_code == 400 and "Amount to refund" in _text(response)
    response = desk.post(f"{DESK}/tickets/{ticket_id}/events", data={
        "csrf_token": _csrf(html), "event": "decline", "message": "m" * 10_001})
    assert response.status_code == 400 and "Message to the customer" in _text(response)
    assert "Ticket: Open" in _text(desk.get(f"{DESK}/tickets/{ticket_id}"))


# -- what the ticket page leads with, in words ---------------------------------------------


def _confirms(html: str) -> dict[str, str]:
    """Each event form's confirm question (data-confirm), by event."""
    found = re.findall(r'data-confirm="([^"]+)">\s*<input type="hidden" name="csrf_token" value="[^"]+">\s*'
                       r'<input type="hidden" name="event" value="([^"]+)">', html)
    return {event: unescape(question) for question, event in found}


def test_ticket_page_leads_with_who_what_how_much_the_window_and_the_reason(desk, shop):
    shop.one_time()
    reason = "Bought it twice.\nPlease refund <b>this</b> one.\n\nAnn"
    ticket_id = _ticket_id(shop.customer_asks_refund("PAY-21", reason=reason))
    html = desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True)

    summary, actions = html.index('id="sb-summary-title"'), html.index('id="sb-actions-title"')
    for fact in ("Ann Lee", "ann@example.com", "ORD-2001", "Refund of payment", "PAY-21", "Cookbook",
                 "$100.00 remaining", "of $100.00 paid", "$0.00 refunded", "USD", "Refund window", "days left",
                 "Customer’s reason", "Visa ending in 4242"):
        assert summary < html.index(fact, summary) < actions, fact
    # the reason as the customer wrote it: line breaks kept (pre-line), markup escaped
    assert '<blockquote class="sb-reason">Bought it twice.\nPlease refund &lt;b&gt;this&lt;/b&gt; one.\n\nAnn</blockquote>' in html
    assert re.search(r"\.sb-reason \{[^}]*white-space: pre-line", html)

    # one main action first, then the others; declining does not look like refunding
    main = html.index('class="sb-main-action"')
    assert actions < main < html.index("Other actions") < html.index('value="decline"')
    assert _buttons(html)[0] == "refund_full"
    assert re.search(r'class="sb-button sb-button-primary" type="submit" name="submit" value="refund_full"', html)
    assert re.search(r'class="sb-button sb-button-danger"\s+type="submit" name="submit" value="decline"', html)
    assert re.search(r'class="sb-button sb-button-secondary"\s+type="submit" name="submit" value="refund_partial"', html)
    assert html.count("sb-button-primary\"") == 1


def test_a_delayed_subscription_leads_with_cancel_at_the_end_of_the_paid_period(desk, shop):
    shop.subscription(cancellation="delayed")
    ticket_id = _ticket_id(shop.customer_cancels())
    html = desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True)
    assert _buttons(html)[0] == "cancel_at_period_end"
    text = _text(desk.get(f"{DESK}/tickets/{ticket_id}"))
    assert "Cancellation of Pro Plan (subscription, active)" in text and "$49.00 every month" in text
    assert "Paid until" in text and "Too expensive" in text


def test_states_events_and_outcomes_are_in_words(desk, shop):
    shop.one_time()
    ticket_id = _ticket_id(shop.customer_asks_refund("PAY-21"))
    page = desk.get(f"{DESK}/tickets/{ticket_id}")
    html, text = page.get_data(as_text=True), _text(page)
    assert "Waiting for an agent" in text and "Ticket opened" in text and "Request received" in text
    assert "Ticket: Open" in text and "Customer" in text and "Automatic" in text
    for code in ("ticketed", "open_ticket", "submit", "auto_processed", "refund_full", "refund_partial", "system"):
        assert not re.search(rf"\b{code}\b", text), code
    heading = re.search(r'<h3 id="sb-request-[^"]+">(.*?)</h3>', html, re.S).group(1)
    assert "req_" not in heading and "Refund request · Waiting for an agent" in " ".join(heading.split())
    assert "Reference req_" in text  # still there to quote, as a reference

    queue = _text(desk.get(DESK + "/"))
    assert "Open" in queue and not re.search(r"\bopen\b", queue.replace("Refund request", ""))
    assert "Paid" in _text(desk.get(DESK + "/leads?q=ann"))


def test_every_code_the_machines_and_the_processor_use_has_words():
    from plugin.tickets import wording
    from plugin.workflows import machines

    events = {row["trigger"] for rows in machines.DEFINITIONS.values() for row in rows}
    outcomes = {o for table in machines.OUTCOMES.values() for o in table.values()}
    assert set(machines.STATES) <= set(wording.REQUEST_STATES)
    assert events <= set(wording.EVENTS), events - set(wording.EVENTS)
    assert outcomes <= set(wording.OUTCOMES)
    assert {e for es in machines.AGENT_EVENTS.values() for e in es} <= set(wording.ACTIONS) & set(wording.DONE)
    assert {"refund", "cancel_subscription", "attach_card", "detach_card", "set_default_card"} <= set(wording.OPERATIONS)
    assert wording.say("someday_new", "state") == "Someday new"  # an unknown code still reads
    assert wording.say("agent@example.com", "actor") == "agent@example.com"
    assert wording.money("49.00", "USD") == "$49.00"


def test_confirm_questions_name_the_amount(desk, shop):
    shop.one_time()
    ticket_id = _ticket_id(shop.customer_asks_refund("PAY-21"))
    confirms = _confirms(desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True))
    assert confirms["refund_full"].startswith("Refund $100.00 in full (payment PAY-21 of ")
    assert confirms["refund_partial"].startswith("Refund ${amount} of the $100.00 remaining (payment PAY-21")
    assert confirms["decline"] == "Decline this refund of $100.00? Nothing is refunded; the customer is emailed."
    assert 'if (!window.confirm(question))' in desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True)

    shop.subscription()
    cancel_id = _ticket_id(shop.customer_cancels())
    confirms = _confirms(desk.get(f"{DESK}/tickets/{cancel_id}").get_data(as_text=True))
    assert confirms["cancel_now"] == ("Cancel Pro Plan (order ORD-1001) now? Its charges stop today; "
                                      "the customer is emailed.")
    assert confirms["cancel_at_period_end"].startswith("Cancel Pro Plan (order ORD-1001) at the end of its paid "
                                                       "period, on 20")
    order = desk.get(DESK + "/orders/ORD-1001").get_data(as_text=True)
    assert "Refund ${amount} of payment PAY-1 of " in unescape(order)
    assert "onsubmit=" not in order


def test_an_error_is_an_alert_at_its_field_and_a_success_a_status(desk, shop):
    shop.one_time()
    ticket_id = _ticket_id(shop.customer_asks_refund("PAY-21"))
    html = desk.get(f"{DESK}/tickets/{ticket_id}").get_data(as_text=True)
    bad = desk.post(f"{DESK}/tickets/{ticket_id}/events",
                    data={"csrf_token": _csrf(html), "event": "refund_partial", "amount": "150", "message": "Sorry"})
    page = bad.get_data(as_text=True)
    assert '<p class="sb-flash sb-flash-error" role="alert"><strong>Not done.</strong>' in page
    assert 'aria-invalid="true" aria-describedby="sb-amount-error"' in page and 'id="sb-amount-error"' in page
    assert 'value="150"' in page and ">Sorry</textarea>" in page  # what the agent typed is kept
    assert re.search(r"\.sb-flash-error \{[^}]*background", page) and re.search(r"\.sb-flash-success \{[^}]*background", page)
    good = desk.post(f"{DESK}/tickets/{ticket_id}/events",
                     data={"csrf_token": _csrf(html), "event": "refund_partial", "amount": "10"})
    after = desk.get(good.headers["Location"]).get_data(as_text=True)
    assert '<p class="sb-flash sb-flash-success" role="status">Done: The payment was refunded in part.' in after
    assert "sb-flash-error" not in after.rsplit("</style>", 1)[1]


def test_the_ticket_shows_the_processor_calls_of_its_request(desk, shop, agent_app, admin_headers):
    shop.subscription()
    shop.ledger.settings(refunds={"mode": "automatic"})
    agent_app.test_client().put("/billing/api/admin/sandbox/faults", json={"refund": 1}, headers=admin_headers)
    ticket_id = _ticket_id(shop.customer_asks_refund("PAY-1"))
    page = desk.get(f"{DESK}/tickets/{ticket_id}")
    text = _text(page)
    calls = text[text.index("Payment processor calls"):]
    assert "Refund $49.00" in calls and "Failed: Processor not answering" in calls and "fault injection" in calls
    assert "Processor error Processor not answering:" in text  # the request's error, its code in words
    assert "processor_unavailable" not in text

    done = desk.post(f"{DESK}/tickets/{ticket_id}/events",
                     data={"csrf_token": _csrf(page.get_data(as_text=True)), "event": "refund_full"})
    calls = _text(desk.get(done.headers["Location"]))
    calls = calls[calls.index("Payment processor calls"):]
    assert calls.count("Refund $49.00") == 2 and "Succeeded" in calls
    assert re.search(r"Succeeded re_\w+ sandbox", calls)


def test_the_desk_brings_its_own_styles_into_a_host_layout(make_app, tmp_path, shop):
    app = make_app(agent_loader=bearer_agent, base_template="bare_host.html")
    app.jinja_loader.searchpath.append(str(tmp_path))
    (tmp_path / "bare_host.html").write_text(  # a host with no head block and its own button rule
        "<html><head><style>button{background:green}</style></head>"
        "<body>{% block content %}{% endblock %}</body></html>")
    from plugin import SelfBilling

    SelfBilling().register_agent_desk(app, "/host-desk")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ALICE["Authorization"]
    html = client.get("/host-desk/").get_data(as_text=True)
    body = html[html.index("<body>"):]
    assert '<div class="sb-desk">' in body and ".sb-desk .sb-flash-error {" in body
    assert ".sb-desk .sb-button-danger {" in body and "@media (max-width: 44rem)" in body

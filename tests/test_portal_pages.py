"""The customer portal's pages through a browser-like Flask client: login, My Orders, the helpdesk tab,
confirmations and messages, forms with CSRF tokens, the icons' accessible names, and bad input."""
from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from jinja2 import ChoiceLoader, DictLoader
from sqlalchemy import select

from plugin import SelfBilling
from plugin.db import db
from plugin.ledger.models import Lead, Purchase
from tests.conftest import Customer, Ledger
from tests.test_portal_api import admin_order, card_token, days_ago, stock

PORTAL = "/billing/portal"
TAB = "/help/my-orders"
HOST_LAYOUT = """<!doctype html><html><head><title>{% block title %}{% endblock %} · Host Help</title></head>
<body><nav id="host-nav">Host Help Center</nav><main>{% block content %}{% endblock %}</main></body></html>"""


def text(answer) -> str:
    return answer.get_data(as_text=True)


def csrf(html: str, name: str = "csrf_token") -> str:
    match = re.search(rf'name="{re.escape(name)}" type="hidden" value="([^"]+)"', html) or re.search(
        rf'value="([^"]+)"[^>]*name="{re.escape(name)}"', html)
    assert match, f"the page has a {name} field"
    return match.group(1)


def visible(html: str) -> str:
    """The page's text, without styles, scripts and tags."""
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def login(client, order_id: str = "SUB-1", email: str = "ann@example.com", base: str = PORTAL, **extra: str):
    page = client.get(base + "/")
    return client.post(base + "/login", data={"csrf_token": csrf(text(page)), "order_id": order_id,
                                              "email": email, **extra})


def controls(html: str, name: str) -> list[str]:
    """Every control (link or button) whose accessible name is ``name``, checking it has a title too."""
    found = re.findall(rf'<(a|button)\b[^>]*aria-label="{re.escape(name)}"[^>]*>', html)
    for tag in re.findall(rf'<(?:a|button)\b[^>]*aria-label="{re.escape(name)}"[^>]*>', html):
        assert f'title="{name}"' in tag
    return found


def section(html: str, order_id: str) -> str:
    match = re.search(rf'<section[^>]*data-order-id="{re.escape(order_id)}".*?</section>', html, flags=re.S)
    assert match, f"My Orders has a module for {order_id}"
    return match.group(0)


@pytest.fixture
def shop(ledger):
    stock(ledger)
    return ledger


@pytest.fixture
def ann(client, shop):
    answer = login(client)
    assert answer.status_code == 302
    return client


def host_app(make_app, portal: str = "both", **config: Any):
    app = make_app(base_template="host/layout.html", **config)
    app.jinja_env.loader = ChoiceLoader([DictLoader({"host/layout.html": HOST_LAYOUT}), app.jinja_env.loader])
    SelfBilling().register_my_orders_tab(app, TAB)
    stock(Ledger(app))
    Ledger(app).settings(portal=portal)
    return app


# -- login ------------------------------------------------------------------------------------


def test_login_page_then_my_orders(client, shop):
    page = client.get(PORTAL + "/")
    html = text(page)
    assert page.status_code == 200
    assert 'name="order_id"' in html and 'name="email"' in html and 'name="csrf_token"' in html
    assert "top-right corner" in html
    answer = login(client, email="  Ann@EXAMPLE.com ")
    assert answer.status_code == 302 and answer.location.endswith(PORTAL + "/")
    orders = visible(text(client.get(PORTAL + "/")))
    assert "My Orders" in orders and "Logged in as ann@example.com" in orders
    assert "Bob" not in orders and "BOB-1" not in orders


def test_a_wrong_pair_shows_one_message(client, shop):
    messages = set()
    for order_id, email in [("NOPE", "ann@example.com"), ("SUB-1", "x@example.com"), ("BOB-1", "ann@example.com")]:
        answer = login(client, order_id, email)
        assert answer.status_code == 401
        messages.add(re.search(r'role="alert">([^<]+)<', text(answer)).group(1))
    assert len(messages) == 1
    assert 'name="order_id"' in text(client.get(PORTAL + "/"))  # still not logged in


@pytest.mark.parametrize("order_id, email", [
    ("", "ann@example.com"), ("SUB-1", ""), ("S" * 2000, "ann@example.com"), ("SUB-1", "a" * 2000),
])
def test_login_form_refuses_empty_or_oversized_fields(client, shop, order_id, email):
    answer = login(client, order_id, email)
    assert answer.status_code == 400
    assert "sb-field-error" in text(answer)
    assert 'name="order_id"' in text(client.get(PORTAL + "/"))


def test_html_in_the_login_fields_is_escaped(client, shop):
    answer = login(client, "<script>alert(1)</script>", "<b>x</b>@example.com")
    assert answer.status_code == 401
    assert "<script>alert(1)</script>" not in text(answer)
    assert "&lt;script&gt;" in text(answer)


def test_a_replayed_login_form_without_csrf_is_refused(client, shop):
    answer = client.post(PORTAL + "/login", data={"order_id": "SUB-1", "email": "ann@example.com"})
    assert answer.status_code == 400
    assert "nothing was changed" in visible(text(answer))
    assert 'name="order_id"' in text(client.get(PORTAL + "/"))


def test_login_rate_limit_shows_a_message_with_retry_after(make_app):
    app = make_app(SELF_BILLING_LOGIN_LIMIT_PER_EMAIL="2 per 15 minutes")
    stock(Ledger(app))
    client = app.test_client()
    for _ in range(2):
        assert login(client, "WRONG").status_code == 401
    answer = login(client, "SUB-1")
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0
    assert "Too many failed login attempts" in visible(text(answer))
    # the JSON login shares the counter
    api = client.post("/billing/api/portal/login", json={"order_id": "SUB-1", "email": "ann@example.com"})
    assert api.status_code == 429


def test_pages_need_a_login_and_come_back_after_it(client, shop):
    answer = client.get(PORTAL + "/purchases/SUB-1/address")
    assert answer.status_code == 302 and "next=" in answer.location
    page = client.get(answer.location)
    assert 'name="next" value="/billing/portal/purchases/SUB-1/address"' in text(page)
    back = login(client, next="/billing/portal/purchases/SUB-1/address")
    assert back.location.endswith("/billing/portal/purchases/SUB-1/address")


def test_a_form_posted_after_the_session_ended_comes_back_to_my_orders(client, shop):
    answer = client.post(PORTAL + "/purchases/SUB-1/cards/1/default")
    assert answer.status_code == 302 and "next=" not in answer.location
    assert answer.location.endswith("/billing/portal/")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_login_never_sends_to_another_site(client, shop, target):
    answer = login(client, next=target)
    assert answer.status_code == 302 and "evil" not in answer.location


def test_logout_button_ends_the_session(ann):
    html = text(ann.get(PORTAL + "/"))
    assert ann.post(PORTAL + "/logout", data={}).status_code == 302  # no token: refused
    assert "Logged in as" in text(ann.get(PORTAL + "/"))
    answer = ann.post(PORTAL + "/logout", data={"logout-csrf_token": csrf(html, "logout-csrf_token")})
    assert answer.status_code == 302
    page = visible(text(ann.get(PORTAL + "/")))
    assert "You are logged out." in page and "Logged in as" not in page


# -- settings: disabled, which door ----------------------------------------------------------------


def test_disabled_portal_says_so_and_shows_nothing_else(ann, shop):
    shop.settings(enabled=False)
    for path in ("/", "/purchases/SUB-1/cards", "/purchases/SUB-1/address"):
        answer = ann.get(PORTAL + path)
        assert answer.status_code == 403
        page = visible(text(answer))
        assert "Self-service billing is not enabled" in page
        assert "SUB-1" not in page and "Pro Plan" not in page and "Log in" not in page


def test_the_helpdesk_tab_renders_inside_the_host_layout(make_app):
    app = host_app(make_app)
    client = app.test_client()
    page = text(client.get(TAB + "/"))
    assert '<nav id="host-nav">' in page and "· Host Help</title>" in page
    assert 'name="order_id"' in page
    answer = login(client, base=TAB)
    assert answer.location.endswith(TAB + "/")
    orders = text(client.get(TAB + "/"))
    assert '<nav id="host-nav">' in orders and "Pro Plan" in orders
    assert 'href="/help/my-orders/purchases/SUB-1/address"' in orders


@pytest.mark.parametrize("portal, open_door, closed_door", [
    ("helpdesk", TAB, PORTAL), ("standalone", PORTAL, TAB),
])
def test_the_portal_setting_decides_which_door_answers(make_app, portal, open_door, closed_door):
    client = host_app(make_app, portal=portal).test_client()
    assert client.get(open_door + "/").status_code == 200
    closed = client.get(closed_door + "/")
    assert closed.status_code == 404
    assert "not offered" in visible(text(closed))


def test_the_tab_needs_a_host_layout(make_app):
    app = make_app()
    with pytest.raises(RuntimeError, match="base_template"):
        SelfBilling().register_my_orders_tab(app, TAB)


# -- My Orders ------------------------------------------------------------------------------------


def test_one_module_per_purchase_newest_first(ann):
    html = text(ann.get(PORTAL + "/"))
    assert re.findall(r'data-order-id="([^"]+)"', html) == ["BOOK-1", "SUB-1"]


def test_one_time_purchase_is_a_single_line_without_upcoming_payments(ann):
    book = section(text(ann.get(PORTAL + "/")), "BOOK-1")
    assert "One-time purchase" in book and "No upcoming payments." in book
    assert "$19.00" in book
    assert not controls(book, "Cancel subscription")
    assert not controls(book, "Update billing address") and not controls(book, "Update credit card")
    assert len(controls(book, "Download invoice")) == 1  # the line; "Show details" does not repeat it


def test_subscription_shows_payments_next_payment_and_what_is_still_charged(ann):
    sub = visible(section(text(ann.get(PORTAL + "/")), "SUB-1"))
    assert "$49.00 per month" in sub
    assert re.search(r"Next payment: \$49\.00 on \w{3} \d{1,2}, \d{4}", sub)
    assert "You will be charged $49.00 per month until you cancel." in sub


def test_show_details_pages_the_history_and_the_link_works_without_javascript(shop, ann):
    for n in range(3, 13):  # 12 payments in all: PAY-1 (40 days ago), PAY-2 (10 days ago), PAY-X3..X12
        shop.payment("SUB-1", f"PAY-X{n}", days_ago(10 - n * 0.5))
    sub = section(text(ann.get(PORTAL + "/")), "SUB-1")
    summary_part, details_part = sub.split("<details>", 1)
    assert "<summary>" in details_part and "Show details" in details_part.split("</summary>")[0]
    shown = re.findall(r"<td data-label=\"Payment ID\">([^<]+)<", summary_part)
    earlier = re.findall(r"<td data-label=\"Payment ID\">([^<]+)<", details_part)
    # the latest page, newest first: three on the card, the rest of the page in the details, none twice
    assert shown == ["PAY-X12", "PAY-X11", "PAY-X10"] and earlier == ["PAY-X9", "PAY-X8"]
    history = shown + earlier
    assert "Latest payments (12 in all)" in summary_part and "Earlier payments" in details_part
    assert "Refundable until" in details_part and "Bill to" in details_part
    assert "Hide details" in details_part.split("</summary>")[0]  # the open state's words
    assert "Showing the latest 5 of 12 payments." in visible(details_part)

    # Without JavaScript, "Show more payments" is a plain link to the paged history: follow it to the end.
    seen, link, pages = list(history), re.search(r'<a [^>]*href="([^"]+)"[^>]*data-sb-more', details_part), 0
    assert link and "Show more payments" in details_part
    url = unescape(link.group(1))
    while url:
        page = ann.get(url)
        assert page.status_code == 200
        html = text(page)
        rows = re.findall(r"<td data-label=\"Payment ID\">([^<]+)<", html)
        assert 0 < len(rows) <= 5
        seen += rows
        pages += 1
        assert "Payment history" in html and "Order ID SUB-1" in visible(html)
        assert len(controls(html, "Download invoice")) == len(rows)  # each row: its invoice, as on My Orders
        assert 'href="' + PORTAL + '/payments/' + rows[0] + '/invoice.pdf"' in html
        assert "Newest payments" in html and "Back to My Orders" in html
        older = re.search(r'<a href="([^"]+)" data-sb-next>Older payments</a>', html)
        url = unescape(older.group(1)) if older else None
    assert pages == 2
    assert seen == [f"PAY-X{n}" for n in range(12, 2, -1)] + ["PAY-2", "PAY-1"]  # each once, newest first
    nav = re.search(r'<nav class="sb-pager".*?</nav>', html, flags=re.S).group(0)
    assert "<form" not in nav and "csrf" not in nav  # plain GET links: nothing to post, no token to leak


def test_the_paged_history_shows_credit_notes_and_refunds_as_my_orders_does(shop, ann):
    for n in range(3, 9):
        shop.payment("SUB-1", f"PAY-X{n}", days_ago(9 - n))
    page = text(ann.get(PORTAL + "/purchases/SUB-1/payments"))  # the first page: the latest 5
    rows = re.findall(r"<td data-label=\"Payment ID\">([^<]+)<", page)
    assert rows == ["PAY-X8", "PAY-X7", "PAY-X6", "PAY-X5", "PAY-X4"] and "Newest payments" not in page
    older = unescape(re.search(r'<a href="([^"]+)" data-sb-next>Older payments</a>', page).group(1))
    html = text(ann.get(older))
    assert re.findall(r"<td data-label=\"Payment ID\">([^<]+)<", html) == ["PAY-X3", "PAY-2", "PAY-1"]
    refunds = re.findall(r'href="([^"]+)"[^>]*aria-label="Request refund"', html)
    assert refunds == [PORTAL + "/payments/PAY-X3/refund", PORTAL + "/payments/PAY-2/refund"]  # PAY-1: too old
    confirm = text(ann.get(refunds[1]))
    ann.post(refunds[1], data={"csrf_token": csrf(confirm)})
    html = text(ann.get(older))
    assert len(controls(html, "Request refund")) == 1
    assert re.search(r'aria-label="Download credit note CN-[^"]+"', html)  # the refund's credit note, on its row
    assert "data-sb-next" not in html


def test_the_paged_history_refuses_other_leads_orders_and_bad_cursors(ann):
    theirs = ann.get(PORTAL + "/purchases/BOB-1/payments")
    unknown = ann.get(PORTAL + "/purchases/NOPE-1/payments")
    assert theirs.status_code == unknown.status_code == 404
    assert visible(text(theirs)) == visible(text(unknown)) and "PAY-BOB" not in text(theirs)
    for cursor in ("nope", "%00", "x" * 500, "MjAyNi0xMS0wMVQxMDowMDowMCswMDowMH4tMQ", "é"):
        answer = ann.get(PORTAL + "/purchases/SUB-1/payments?after=" + cursor)
        assert answer.status_code == 400, cursor
        assert "not a cursor this API gave out" in visible(text(answer)) or "NUL" in visible(text(answer))


def test_the_paged_history_stays_inside_the_helpdesk_tab(make_app):
    app = host_app(make_app)
    for n in range(3, 10):
        Ledger(app).payment("SUB-1", f"PAY-X{n}", days_ago(9 - n))
    client = app.test_client()
    login(client, base=TAB)
    link = re.search(r'<a [^>]*href="([^"]+)"[^>]*data-sb-more', text(client.get(TAB + "/")))
    assert unescape(link.group(1)).startswith(TAB + "/purchases/SUB-1/payments?after=")
    page = text(client.get(unescape(link.group(1))))
    assert '<nav id="host-nav">' in page and "PAY-1" in page


# -- My Orders a page at a time ---------------------------------------------------------------------------


#: Ann's purchases of paged_shop, newest first: ORD-k bought 2k days ago, BOOK-1 5 and SUB-1 40 days ago.
ANN_NEWEST_FIRST = ["ORD-01", "ORD-02", "BOOK-1", "ORD-03", "ORD-04", "ORD-05", "ORD-06", "ORD-07", "ORD-08",
                    "ORD-09", "ORD-10", "SUB-1"]
BOB_ORDERS = {"BOB-1"} | {f"BOB-{k}" for k in range(2, 8)}


def paged_shop(make_app, size: int = 5, **config: Any):
    """Ann with 12 purchases (recorded out of date order) and Bob with 7, interleaved in time; ``size`` a page."""
    app = make_app(SELF_BILLING_PURCHASES_PAGE_SIZE=size, **config)
    ledger = Ledger(app)
    stock(ledger)
    for k in (3, 7, 1, 9, 5, 10, 2, 8, 4, 6):
        ledger.order(f"ORD-{k:02}", purchased_at=days_ago(2 * k))
    for k in range(2, 8):
        ledger.order(f"BOB-{k}", email="bob@example.com", first_name="Bob", purchased_at=days_ago(2 * k + 1))
    return app


def order_ids(html: str) -> list[str]:
    return re.findall(r'<section class="sb-card sb-purchase"[^>]*data-order-id="([^"]+)"', html)


def earlier_link(html: str) -> str | None:
    """The "Show earlier purchases" link's target, or None when the page has none."""
    found = re.findall(r'<a [^>]*href="([^"]+)"[^>]*data-sb-more-purchases[^>]*>Show earlier purchases</a>', html)
    assert len(found) <= 1 and (("Show earlier purchases" in visible(html)) == bool(found))
    return unescape(found[0]) if found else None


def test_my_orders_shows_the_latest_purchases_a_page_at_a_time(make_app):
    client = paged_shop(make_app).test_client()
    login(client)
    first = text(client.get(PORTAL + "/"))
    assert order_ids(first) == ANN_NEWEST_FIRST[:5]
    assert "Showing the latest 5 of 12 purchases." in visible(first)
    assert re.search(r'<span class="sb-muted" data-sb-more-purchases-status role="status" tabindex="-1">'
                     r'Showing the latest 5 of 12 purchases\.</span>', first)
    assert "Purchases 1 to 5" not in visible(first) and "Show the latest purchases" not in first
    assert earlier_link(first) == PORTAL + "/?page=2"
    assert "<script>" in first  # the in-place loader, though no purchase has more payments than a page

    # Without JavaScript, the link is a plain GET of the next page: follow it to the end.
    pages, url = [first], earlier_link(first)
    while url:
        answer = client.get(url)
        assert answer.status_code == 200
        pages.append(text(answer))
        url = earlier_link(pages[-1])
    assert [order_ids(page) for page in pages] == [ANN_NEWEST_FIRST[:5], ANN_NEWEST_FIRST[5:10], ANN_NEWEST_FIRST[10:]]
    second, third = visible(pages[1]), visible(pages[2])
    assert "Purchases 6 to 10 of 12." in second and "Showing purchases 6 to 10 of 12." in second
    assert earlier_link(pages[1]) == PORTAL + "/?page=3"
    assert "Purchases 11 to 12 of 12." in third and "Showing" not in third  # the last page: nothing older
    for page in pages[1:]:
        assert re.search(rf'<a href="{re.escape(PORTAL)}/">Show the latest purchases</a>', page)
    # Every heading id is unique across the pages (they are joined in place), each module named by its own.
    headings = [h for page in pages for h in re.findall(r'<h2 id="([^"]+)"', page)]
    assert headings == [f"sb-purchase-{n}" for n in range(1, 13)]
    for page in pages:
        assert re.findall(r'<section [^>]*aria-labelledby="([^"]+)"', page) == re.findall(r'<h2 id="([^"]+)"', page)


@pytest.mark.parametrize("size", [10, 2])
def test_a_lead_with_no_more_purchases_than_a_page_sees_no_paging(make_app, size):
    client = make_app(SELF_BILLING_PURCHASES_PAGE_SIZE=size).test_client()
    stock(Ledger(client.application))
    login(client)
    html = text(client.get(PORTAL + "/"))
    assert order_ids(html) == ["BOOK-1", "SUB-1"]
    assert earlier_link(html) is None and not re.search(r"<a [^>]*data-sb-more-purchases", html)
    assert "Showing" not in visible(html) and "Purchases 1" not in visible(html)
    assert "Show the latest purchases" not in html and "<script>" not in html


def test_a_lead_without_purchases_still_sees_the_empty_state(make_app):
    app = make_app()
    stock(Ledger(app))
    client = app.test_client()
    login(client)
    with app.app_context():  # Ann's purchases moved to Bob: her session stays, her orders are gone
        ann_id, bob_id = (db.session.execute(select(Lead.id).where(Lead.email_normalized == email)).scalar_one()
                          for email in ("ann@example.com", "bob@example.com"))
        for purchase in db.session.execute(select(Purchase).where(Purchase.lead_id == ann_id)).scalars():
            purchase.lead_id = bob_id
        db.session.commit()
    for path in ("/", "/?page=2"):
        answer = client.get(PORTAL + path)
        assert answer.status_code == 200
        html = visible(text(answer))
        assert "There are no purchases under this email address yet." in html, path
        assert "older purchases" not in html and "Show earlier purchases" not in html and "Show the latest" not in html


@pytest.mark.parametrize("value", ["abc", "0", "-1", "99999999999999999999", "1" * 5000, "1.5", " 2", "2 ", "+2",
                                   "0x2", "\u0663", "2\x00", "1e3"])
def test_a_page_that_is_not_a_page_number_is_a_readable_400(make_app, value):
    client = paged_shop(make_app).test_client()
    login(client)
    answer = client.get(PORTAL + "/", query_string={"page": value})
    assert answer.status_code == 400, value
    html = text(answer)
    assert "'page' must be a whole number from 1 up" in visible(html) or "NUL characters" in visible(html)
    assert re.search(rf'<a href="{re.escape(PORTAL)}/">Back to My Orders</a>', html)
    assert not order_ids(html)
    if len(value) > 3:
        assert value not in html  # never repeated back


def test_a_page_past_the_end_says_there_are_no_older_purchases(make_app):
    client = paged_shop(make_app).test_client()
    login(client)
    for page in ("4", "999999999"):
        answer = client.get(PORTAL + "/?page=" + page)
        assert answer.status_code == 200
        html = text(answer)
        assert not order_ids(html)
        assert "There are no older purchases." in visible(html)
        assert re.search(rf'<a href="{re.escape(PORTAL)}/">Show the latest purchases</a>', html)
        assert earlier_link(html) is None and "There are no purchases under" not in html
    assert order_ids(text(client.get(PORTAL + "/?page="))) == ANN_NEWEST_FIRST[:5]  # empty: the first page
    assert order_ids(text(client.get(PORTAL + "/?page=01"))) == ANN_NEWEST_FIRST[:5]


def test_each_customer_sees_only_their_own_purchases_on_every_page(make_app):
    app = paged_shop(make_app)
    seen: dict[str, list[str]] = {}
    for order_id, email in (("SUB-1", "ann@example.com"), ("BOB-1", "bob@example.com")):
        client = app.test_client()
        login(client, order_id, email)
        seen[email] = [o for page in range(1, 5) for o in order_ids(text(client.get(PORTAL + f"/?page={page}")))]
    assert seen["ann@example.com"] == ANN_NEWEST_FIRST
    assert set(seen["bob@example.com"]) == BOB_ORDERS and len(seen["bob@example.com"]) == len(BOB_ORDERS)


def test_the_portal_api_still_gives_every_purchase(make_app):
    app = paged_shop(make_app)
    customer = Customer(app.test_client())
    assert customer.login("SUB-1").status_code == 200
    for path in ("/purchases", "/purchases?page=2"):
        body = customer.get(path).get_json()
        assert [p["order_id"] for p in body["purchases"]] == ANN_NEWEST_FIRST


def test_the_page_size_is_kept_between_1_and_100(make_app):
    client = paged_shop(make_app, size=0).test_client()
    login(client)
    html = text(client.get(PORTAL + "/"))
    assert order_ids(html) == ANN_NEWEST_FIRST[:1] and "Showing the latest 1 of 12 purchases." in visible(html)
    client.application.config["SELF_BILLING_PURCHASES_PAGE_SIZE"] = 1000
    assert order_ids(text(client.get(PORTAL + "/"))) == ANN_NEWEST_FIRST


def test_earlier_purchases_stay_inside_the_helpdesk_tab(make_app):
    app = host_app(make_app, SELF_BILLING_PURCHASES_PAGE_SIZE=1)
    client = app.test_client()
    login(client, base=TAB)
    first = text(client.get(TAB + "/"))
    assert order_ids(first) == ["BOOK-1"] and earlier_link(first) == TAB + "/?page=2"
    second = text(client.get(TAB + "/?page=2"))
    assert '<nav id="host-nav">' in second and order_ids(second) == ["SUB-1"]
    assert re.search(rf'<a href="{re.escape(TAB)}/">Show the latest purchases</a>', second)


def test_icons_follow_the_actions(ann, shop):
    html = text(ann.get(PORTAL + "/"))
    sub, book = section(html, "SUB-1"), section(html, "BOOK-1")
    assert len(controls(sub, "Cancel subscription")) == 1
    assert len(controls(sub, "Update billing address")) == 1 and len(controls(sub, "Update credit card")) == 1
    # PAY-2 (10 days ago) is within the 30-day window, PAY-1 (40 days ago) is not; each row shows once
    refund_links = re.findall(r'href="([^"]+)"[^>]*aria-label="Request refund"', sub)
    assert set(refund_links) == {PORTAL + "/payments/PAY-2/refund"}
    assert len(controls(book, "Request refund")) == 1
    invoice_links = re.findall(r'href="([^"]+)"[^>]*aria-label="Download invoice"', sub)
    assert "/billing/portal/payments/PAY-1/invoice.pdf" in invoice_links

    shop.settings(cancellation={"mode": "disabled"}, refunds={"mode": "disabled"})
    html = text(ann.get(PORTAL + "/"))
    assert not controls(html, "Cancel subscription") and not controls(html, "Request refund")
    assert controls(html, "Download invoice")


def test_icons_are_svg_hidden_from_screen_readers(ann):
    """Each icon control shows a drawn SVG and is named by its label alone (the SVG is hidden)."""
    html = text(ann.get(PORTAL + "/"))
    drawn = set(re.findall(r'<symbol id="([\w-]+)"', html))
    icons = re.findall(r'<(?:a|button)\b[^>]*aria-label="([^"]+)"[^>]*>\s*(<svg\b[^>]*>)\s*<use href="#([\w-]+)"', html)
    labels = {label for label, _, _ in icons}
    assert {"Cancel subscription", "Update billing address", "Update credit card", "Request refund",
            "Download invoice"} <= labels, labels
    for label, svg, symbol in icons:
        assert 'aria-hidden="true"' in svg and 'focusable="false"' in svg, label
        assert symbol in drawn, f"{label}: its icon #{symbol} is not drawn on the page"
    svgs = re.findall(r"<svg\b[^>]*>", html)
    assert len(svgs) > len(icons)  # the sprite too
    for tag in svgs:
        assert 'aria-hidden="true"' in tag and 'focusable="false"' in tag


def test_cancel_scheduled_shows_the_cancellation_date(client, shop):
    shop.order("TEAM-1", price_point="pro-delayed", purchased_at=days_ago(3))
    shop.payment("TEAM-1", "PAY-T1", days_ago(3))
    login(client, "TEAM-1")
    page = text(client.get(PORTAL + "/purchases/TEAM-1/cancel"))
    assert "stay active until" in visible(page)
    answer = client.post(PORTAL + "/purchases/TEAM-1/cancel", data={"csrf_token": csrf(page)})
    assert answer.status_code == 302
    orders = visible(text(client.get(PORTAL + "/")))
    assert re.search(r"Your subscription to Team Plan will end on \w{3} \d{1,2}, \d{4}\. You will not be charged again", orders)
    team = visible(section(text(client.get(PORTAL + "/")), "TEAM-1"))
    assert "Cancels on" in team and "Next payment" not in team and "You will not be charged again." in team


# -- cancel and refund -------------------------------------------------------------------------------


def test_cancel_asks_for_confirmation_then_says_what_happened(client, ann):
    page = ann.get(PORTAL + "/purchases/SUB-1/cancel")
    html = text(page)
    assert page.status_code == 200
    assert "Cancel your subscription?" in html and 'name="reason"' in html
    assert admin_order(client, "SUB-1")["status"] == "active"  # asking changes nothing
    answer = ann.post(PORTAL + "/purchases/SUB-1/cancel", data={"csrf_token": csrf(html), "reason": "Too pricey"})
    assert answer.status_code == 302
    orders = visible(text(ann.get(PORTAL + "/")))
    assert "Your subscription to Pro Plan is cancelled. You will not be charged again." in orders
    assert admin_order(client, "SUB-1")["status"] == "cancelled"
    assert "Your subscription to Pro Plan is cancelled." not in visible(text(ann.get(PORTAL + "/")))  # shown once


def test_an_automatic_delayed_cancellation_is_not_shown_as_waiting_for_a_person(client, ledger):
    stock(ledger)
    ledger.order("TEAM-1", price_point="pro-delayed", purchased_at=days_ago(5))
    ledger.payment("TEAM-1", "PAY-T1", days_ago(5))
    login(client)
    html = text(client.get(PORTAL + "/purchases/TEAM-1/cancel"))
    client.post(PORTAL + "/purchases/TEAM-1/cancel", data={"csrf_token": csrf(html)})
    team = visible(section(text(client.get(PORTAL + "/")), "TEAM-1"))
    assert "Cancels on" in team
    assert "billing team" not in team and "being processed" not in team  # done by itself, no ticket
    assert "Cancellation scheduled." in team  # in the details' request list


def test_an_open_refund_request_shows_on_its_payment_row_and_words_match_the_documents(client, ledger):
    stock(ledger, refunds="request")
    login(client)
    html = text(client.get(PORTAL + "/payments/PAY-2/refund"))
    client.post(PORTAL + "/payments/PAY-2/refund", data={"csrf_token": csrf(html)})
    sub = section(text(client.get(PORTAL + "/")), "SUB-1")
    row = re.search(r"<tr>(?:(?!</tr>).)*PAY-2(?:(?!</tr>).)*</tr>", sub, flags=re.S).group(0)
    assert "Refund requested" in visible(row) and "Paid" in visible(row)
    other = re.search(r"<tr>(?:(?!</tr>).)*PAY-1(?:(?!</tr>).)*</tr>", sub, flags=re.S).group(0)
    assert "Refund requested" not in visible(other)
    assert "Ended" in visible(other)  # PAY-1's refund window is over: no past date offered as a deadline
    assert "is with our billing team" in visible(sub)


def test_a_partial_refund_reads_partially_refunded(client, ledger, app):
    from plugin.ledger.models import Payment
    from plugin.workflows.service import agent_refund

    stock(ledger)
    with app.app_context():
        payment = db.session.execute(select(Payment).where(Payment.payment_id == "PAY-2")).scalar_one()
        agent_refund(payment, "agent@example.com", "10.00")
    login(client)
    row = re.search(r"<tr>(?:(?!</tr>).)*PAY-2(?:(?!</tr>).)*</tr>", section(text(client.get(PORTAL + "/")), "SUB-1"),
                    flags=re.S).group(0)
    assert "Partially refunded ($10.00 refunded)" in visible(row)


def test_cancel_by_request_says_a_ticket_was_opened(client, ledger):
    stock(ledger, cancellation="request")
    login(client)
    html = text(client.get(PORTAL + "/purchases/SUB-1/cancel"))
    assert "sent to our billing team" in visible(html)
    client.post(PORTAL + "/purchases/SUB-1/cancel", data={"csrf_token": csrf(html)})
    orders = visible(text(client.get(PORTAL + "/")))
    assert re.search(r"sent to our billing team as ticket \S+", orders)
    assert "is with our billing team" in orders
    assert client.get(PORTAL + "/purchases/SUB-1/cancel").status_code == 409  # already open


def test_refund_asks_for_confirmation_then_says_it_was_refunded(client, ann):
    html = text(ann.get(PORTAL + "/payments/PAY-2/refund"))
    assert "Request a refund?" in html and "$49.00" in html
    ann.post(PORTAL + "/payments/PAY-2/refund", data={"csrf_token": csrf(html), "reason": ""})
    orders = visible(text(ann.get(PORTAL + "/")))
    assert "Your payment was refunded: $49.00 is on its way back to you." in orders
    payments = {p["payment_id"]: p for p in admin_order(client, "SUB-1")["payments"]}
    assert payments["PAY-2"]["status"] == "refunded" and payments["PAY-1"]["status"] == "paid"


def test_refund_by_request_says_a_ticket_was_opened(client, ledger):
    stock(ledger, refunds="request")
    login(client)
    html = text(client.get(PORTAL + "/payments/PAY-B1/refund"))
    client.post(PORTAL + "/payments/PAY-B1/refund", data={"csrf_token": csrf(html)})
    assert re.search(r"Your refund request was sent to our billing team as ticket \S+",
                     visible(text(client.get(PORTAL + "/"))))


def test_refund_and_cancel_pages_follow_the_rules(client, ann, shop):
    assert ann.get(PORTAL + "/payments/PAY-1/refund").status_code == 409  # outside the window
    assert ann.get(PORTAL + "/purchases/BOOK-1/cancel").status_code == 409  # one-time
    shop.settings(cancellation={"mode": "disabled"})
    answer = ann.get(PORTAL + "/purchases/SUB-1/cancel")
    assert answer.status_code == 403 and "turned off" in visible(text(answer))


@pytest.mark.parametrize("path", ["/purchases/SUB-1/cancel", "/payments/PAY-2/refund"])
def test_replayed_confirmations_without_csrf_change_nothing(client, ann, path):
    answer = ann.post(PORTAL + path, data={"reason": "replay"})
    assert answer.status_code == 400
    assert "nothing was changed" in visible(text(answer))
    order = admin_order(client, "SUB-1")
    assert order["status"] == "active" and all(p["status"] == "paid" for p in order["payments"])


def test_a_too_long_reason_is_refused(client, ann):
    html = text(ann.get(PORTAL + "/purchases/SUB-1/cancel"))
    answer = ann.post(PORTAL + "/purchases/SUB-1/cancel", data={"csrf_token": csrf(html), "reason": "x" * 2001})
    assert answer.status_code == 400
    assert admin_order(client, "SUB-1")["status"] == "active"


# -- billing address ----------------------------------------------------------------------------------

ADDRESS = {"name": "Ann Lee GmbH", "line1": "Hauptstr. 5", "line2": "", "city": "Berlin", "region": "",
           "postal_code": "10115", "country": "DE"}


def test_address_form_notes_future_invoices_and_confirms(client, ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/address"))
    assert "applies to future invoices only" in visible(page)
    assert 'value="Springfield"' in page  # prefilled
    answer = ann.post(PORTAL + "/purchases/SUB-1/address", data={"csrf_token": csrf(page), **ADDRESS})
    assert answer.status_code == 302
    orders = visible(text(ann.get(PORTAL + "/")))
    assert "Your billing address for Pro Plan is updated." in orders and "future invoices" in orders
    assert admin_order(client, "SUB-1")["billing_address"]["city"] == "Berlin"
    shown = visible(section(text(ann.get(PORTAL + "/")), "SUB-1"))
    assert "Hauptstr. 5 10115 Berlin Germany" in shown  # as a German address is written


def test_the_country_list_holds_real_countries_sorted_by_name(ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/address"))
    options = re.findall(r'<option[^>]*value="([A-Z]{2})"[^>]*>([^<]+)</option>', page)
    names = [unescape(name) for _code, name in options]
    for grouping in ("European Union", "United Nations", "Pseudo-Accents", "Pseudo-Bidi", "Unknown Region",
                     "Eurozone", "Outlying Oceania"):
        assert grouping not in names
    assert len(options) == 250
    assert names.index("Åland Islands") == names.index("Afghanistan") + 1  # among the A's, not after Zimbabwe
    assert names.index("Côte d’Ivoire") < names.index("Croatia")


def test_a_business_adds_its_vat_id_with_the_address_form(client, ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/address"))
    assert "VAT ID (optional, for businesses)" in visible(page)
    bad = ann.post(PORTAL + "/purchases/SUB-1/address",
                   data={"csrf_token": csrf(page), **ADDRESS, "vat_id": "DE136695977"})
    assert bad.status_code == 400
    assert "is not a valid VAT ID of DE" in visible(text(bad)) and "nothing was changed" in visible(text(bad))
    assert "vat_id" not in admin_order(client, "SUB-1")["billing_address"]
    good = ann.post(PORTAL + "/purchases/SUB-1/address",
                    data={"csrf_token": csrf(page), **ADDRESS, "vat_id": "DE 136.695.976"})
    assert good.status_code == 302
    assert admin_order(client, "SUB-1")["billing_address"]["vat_id"] == "DE136695976"
    assert 'value="DE136695976"' in text(ann.get(PORTAL + "/purchases/SUB-1/address"))  # prefilled


@pytest.mark.parametrize("change", [{"city": ""}, {"name": " "}, {"country": "XX"}, {"country": ""},
                                    {"postal_code": "9" * 30}, {"line1": "L" * 2000}, {"vat_id": "DE123"}])
def test_address_form_refuses_bad_input_and_writes_nothing(client, ann, change):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/address"))
    answer = ann.post(PORTAL + "/purchases/SUB-1/address", data={"csrf_token": csrf(page), **ADDRESS, **change})
    assert answer.status_code == 400
    assert "sb-field-error" in text(answer) and "nothing was changed" in visible(text(answer))
    assert admin_order(client, "SUB-1")["billing_address"]["city"] == "Springfield"


def test_address_form_without_csrf_writes_nothing(client, ann):
    answer = ann.post(PORTAL + "/purchases/SUB-1/address", data=ADDRESS)
    assert answer.status_code == 400
    assert admin_order(client, "SUB-1")["billing_address"]["city"] == "Springfield"


def test_html_and_sql_in_the_address_are_shown_as_text(ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/address"))
    evil = {**ADDRESS, "name": "<script>alert('x')</script>", "line1": "1'; DROP TABLE sb_purchases; --"}
    assert ann.post(PORTAL + "/purchases/SUB-1/address", data={"csrf_token": csrf(page), **evil}).status_code == 302
    orders = text(ann.get(PORTAL + "/"))
    assert "<script>alert('x')</script>" not in orders
    assert "&lt;script&gt;" in orders and "DROP TABLE sb_purchases" in unescape(orders)


# -- cards ----------------------------------------------------------------------------------------------


def test_card_page_lists_brand_and_last_four_with_icons(ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/cards"))
    assert "Visa ending in 4242" in visible(page)
    # the only card is the default: neither removable nor "set as default", and the page says why
    assert not controls(page, "Remove card: Visa ending in 4242")
    assert not controls(page, "Set as default card: Visa ending in 4242")
    assert "The only card on file stays until you add another." in visible(page)
    assert len(controls(page, "Add card")) == 1


def test_add_card_form_sends_the_number_only_to_the_processor(ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/cards/new"))
    assert 'data-token-url="/billing/sandbox/tokens"' in page
    number_input = re.search(r'<input id="sb-card-number"[^>]*>', page).group(0)
    assert "name=" not in number_input
    for field_id in ("sb-card-exp-month", "sb-card-exp-year", "sb-card-cvc"):
        assert "name=" not in re.search(rf'<input id="{field_id}"[^>]*>', page).group(0)
    assert 'name="token"' in page
    assert "needs JavaScript" in page and "sb-card-nojs" in page
    # The spec: a card's address is the processor's; it never changes the invoices' bill-to.
    assert "does not change the bill-to address" in page
    assert PORTAL + "/purchases/SUB-1/address" in page


def test_the_card_form_can_point_to_a_real_processor(make_app):
    app = make_app(SELF_BILLING_CARD_TOKEN_URL="https://tokens.processor.example/v1/tokens")
    stock(Ledger(app))
    client = app.test_client()
    login(client)
    page = text(client.get(PORTAL + "/purchases/SUB-1/cards/new"))
    assert 'data-token-url="https://tokens.processor.example/v1/tokens"' in page


def _add_card(client, ann, number: str, make_default: bool):
    new_page = text(ann.get(PORTAL + "/purchases/SUB-1/cards/new"))
    box = re.search(r'<input [^>]*id="sb-card-default"[^>]*>', new_page).group(0)
    assert 'type="checkbox"' in box and "checked" in box  # offered, ticked
    assert "Use this card for future payments" in visible(new_page)
    data = {"csrf_token": csrf(new_page), "token": card_token(client, number)}
    if make_default:
        data["make_default"] = "y"
    return ann.post(PORTAL + "/purchases/SUB-1/cards", data=data)


def test_add_default_remove_through_the_pages(client, ann):
    answer = _add_card(client, ann, "5555555555554444", make_default=False)  # the box unticked
    assert answer.status_code == 302
    page = text(ann.get(PORTAL + "/purchases/SUB-1/cards"))
    assert "Your Mastercard card ending in 4444 was added." in visible(page)
    assert len(controls(page, "Set as default card: Mastercard ending in 4444")) == 1
    assert len(controls(page, "Remove card: Mastercard ending in 4444")) == 1
    assert not controls(page, "Remove card: Visa ending in 4242")  # the default is not removable
    assert "To remove this card, make another one the default first." in visible(page)
    default_action = re.search(r'action="([^"]+/default)"', page).group(1)
    ann.post(default_action, data={"csrf_token": csrf(page)})
    page = text(ann.get(PORTAL + "/purchases/SUB-1/cards"))
    assert "Future payments will be charged to your Mastercard card ending in 4444." in visible(page)
    [remove] = re.findall(r'href="([^"]+/remove)"[^>]*aria-label="Remove card: Visa ending in 4242"', page)
    confirm = ann.get(remove)  # removing asks first
    assert confirm.status_code == 200 and "Remove Visa ending in 4242?" in visible(text(confirm))
    assert "Visa ending in 4242" in visible(text(ann.get(PORTAL + "/purchases/SUB-1/cards")))  # nothing yet
    ann.post(remove, data={"csrf_token": csrf(text(confirm))})
    page = text(ann.get(PORTAL + "/purchases/SUB-1/cards"))
    assert "Your Visa card ending in 4242 was removed." in visible(page)
    assert "Visa ending in 4242" not in visible(page).replace("Your Visa card ending in 4242 was removed.", "")


def test_a_new_card_becomes_the_default_when_the_box_stays_ticked(client, ann):
    assert _add_card(client, ann, "5555555555554444", make_default=True).status_code == 302
    page = visible(text(ann.get(PORTAL + "/purchases/SUB-1/cards")))
    assert "Your Mastercard card ending in 4444 was added. Future payments will be charged to it." in page
    assert admin_order(client, "SUB-1")["payment_method"]["last4"] == "4444"


def test_the_same_card_is_not_saved_twice(client, ann):
    for _ in range(2):
        answer = _add_card(client, ann, "5555555555554444", make_default=False)
    assert answer.status_code == 409
    assert "This card is already saved (Mastercard ending in 4444)" in visible(text(answer))
    page = visible(text(ann.get(PORTAL + "/purchases/SUB-1/cards")))
    assert page.count("Mastercard ending in 4444") == 1


def test_removing_the_last_card_says_one_must_stay(ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/cards"))
    card_id = re.search(r'data-card-id="(\d+)"', page).group(1)
    action = f"{PORTAL}/purchases/SUB-1/cards/{card_id}/remove"  # no control offers it; posted anyway
    answer = ann.post(action, data={"csrf_token": csrf(text(ann.get(PORTAL + "/purchases/SUB-1/cards/new")))})
    assert answer.status_code == 409
    assert "at least one card must stay on file" in visible(text(answer))
    assert "Visa ending in 4242" in visible(text(ann.get(PORTAL + "/purchases/SUB-1/cards")))


def test_card_forms_without_csrf_or_token_change_nothing(client, ann):
    assert ann.post(PORTAL + "/purchases/SUB-1/cards", data={"token": card_token(client)}).status_code == 400
    page = text(ann.get(PORTAL + "/purchases/SUB-1/cards/new"))
    answer = ann.post(PORTAL + "/purchases/SUB-1/cards", data={"csrf_token": csrf(page)})
    assert answer.status_code == 400 and "needs JavaScript" in visible(text(answer))
    answer = ann.post(PORTAL + "/purchases/SUB-1/cards", data={"csrf_token": csrf(page), "token": "tok_nowhere"})
    assert answer.status_code == 400 and "Enter the card details again" in visible(text(answer))
    declined = ann.post(PORTAL + "/purchases/SUB-1/cards",
                        data={"csrf_token": csrf(page), "token": card_token(client, "4000000000000002")})
    assert declined.status_code == 402 and "declined" in visible(text(declined))
    cards = text(ann.get(PORTAL + "/purchases/SUB-1/cards"))
    assert cards.count("data-card-id=") == 1  # nothing was added
    card_id = re.search(r'data-card-id="(\d+)"', cards).group(1)
    assert ann.post(f"{PORTAL}/purchases/SUB-1/cards/{card_id}/remove", data={}).status_code == 400


def test_paypal_purchases_point_to_paypal(client, shop):
    shop.order("PP-1", purchased_at=days_ago(2), payment_method={"type": "paypal", "payer_email": "ann@pp.example"})
    login(client, "PP-1")
    module = section(text(client.get(PORTAL + "/")), "PP-1")
    assert not controls(module, "Update credit card")
    assert "Manage automatic payments" in visible(module) and 'href="https://' in module
    page = text(client.get(PORTAL + "/purchases/PP-1/cards"))
    assert "Manage automatic payments" in visible(page)
    assert not controls(page, "Add card") and not controls(page, "Remove card")


# -- ownership --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/purchases/BOB-1/cancel", "/payments/PAY-BOB/refund", "/purchases/BOB-1/address",
    "/purchases/BOB-1/cards", "/purchases/BOB-1/cards/new",
])
def test_another_leads_pages_are_not_found_like_unknown_ones(ann, path):
    theirs = ann.get(PORTAL + path)
    unknown = ann.get(PORTAL + path.replace("BOB", "NOPE"))
    assert theirs.status_code == unknown.status_code == 404
    assert visible(text(theirs)) == visible(text(unknown))
    assert "Bob" not in visible(text(theirs))


def test_another_leads_forms_are_not_found(client, ann):
    page = text(ann.get(PORTAL + "/purchases/SUB-1/address"))
    answer = ann.post(PORTAL + "/purchases/BOB-1/address", data={"csrf_token": csrf(page), **ADDRESS})
    assert answer.status_code == 404
    assert admin_order(client, "BOB-1")["billing_address"]["city"] == "Springfield"
    assert ann.post(PORTAL + "/purchases/BOB-1/cancel", data={"csrf_token": csrf(page)}).status_code == 404
    assert admin_order(client, "BOB-1")["status"] == "active"


# -- layout basics ----------------------------------------------------------------------------------------


def test_pages_fit_a_phone_and_show_focus(ann):
    page = text(ann.get(PORTAL + "/"))
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page
    assert "@media (max-width: 40rem)" in page and ":focus-visible" in page

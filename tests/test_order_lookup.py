""""Forgot your Order ID?" (issue 17): the page in both doors, the JSON door, the email through a real
SMTP server, and the limits; the answer never tells whether the email is known."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from plugin.db import db
from plugin.notifications.models import OutboxEmail
from tests.conftest import Ledger
from tests.mail_support import parts, smtp  # noqa: F401 - smtp is a fixture
from tests.test_email_content import World, world  # noqa: F401 - world is a fixture
from tests.test_portal_api import API, error, stock
from tests.test_portal_pages import PORTAL, TAB, csrf, host_app, text, visible

SENT = "If we have purchases under that email, we have sent their Order IDs to it."
PAGE = "/login/order-ids"


@pytest.fixture
def shop(ledger):
    stock(ledger)
    return ledger


def lookups(app) -> list[tuple[str, list[str]]]:
    """(recipient, listed Order IDs) of every order_lookup email queued."""
    with app.app_context():
        rows = db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "order_lookup")
                                  .order_by(OutboxEmail.id)).scalars()
        return [(row.to_address, [p["order_id"] for p in row.context["extra"]["purchases"]]) for row in rows]


def ask_on_the_page(client, email: str, base: str = PORTAL):
    """Follow "Forgot your Order ID?" from the login page and submit ``email``; the answer."""
    login_page = text(client.get(base + "/"))
    link = re.search(r'<a href="([^"]+)">Forgot your Order ID\?</a>', login_page)
    assert link and link.group(1) == base + PAGE
    form = text(client.get(link.group(1)))
    assert 'name="email"' in form and 'name="order_id"' not in form
    return client.post(link.group(1), data={"csrf_token": csrf(form), "email": email})


# -- the page -------------------------------------------------------------------------------------


def test_the_page_answers_the_same_for_a_known_and_an_unknown_email(client, shop, app):
    known = ask_on_the_page(client, " Ann@Example.com ")
    unknown = ask_on_the_page(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert SENT in visible(text(known))

    def shown(answer) -> str:  # the page without its per-request CSRF tokens
        return re.sub(r'value="[^"]*"', "", text(answer))

    assert shown(known) == shown(unknown)
    for secret in ("SUB-1", "BOOK-1", "Ann", "Pro Plan"):
        assert secret not in visible(text(known))
    assert lookups(app) == [("ann@example.com", ["BOOK-1", "SUB-1"])]  # newest first, Ann's only


def test_the_page_refuses_a_post_without_its_csrf_token_and_a_bad_email(client, shop, app):
    stale = client.post(PORTAL + PAGE, data={"email": "ann@example.com"})
    assert stale.status_code == 400 and "This form has expired" in visible(text(stale))
    form = text(client.get(PORTAL + PAGE))
    bad = client.post(PORTAL + PAGE, data={"csrf_token": csrf(form), "email": "not an email"})
    html = text(bad)
    assert bad.status_code == 400 and 'aria-invalid="true"' in html
    assert "Enter the email address you used when you bought" in visible(html)
    assert lookups(app) == []


def test_the_helpdesk_tab_has_the_link_and_the_page_inside_its_layout(make_app):
    app = host_app(make_app)
    client = app.test_client()
    answer = ask_on_the_page(client, "ann@example.com", base=TAB)
    assert answer.status_code == 200 and SENT in visible(text(answer))
    assert '<nav id="host-nav">' in text(answer)
    assert lookups(app) == [("ann@example.com", ["BOOK-1", "SUB-1"])]
    with app.app_context():
        row = db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "order_lookup")).scalar_one()
        assert row.context["extra"]["link"] == "http://localhost" + TAB + "/"  # the door it was asked through


# -- JSON ---------------------------------------------------------------------------------------------


def test_json_answers_202_with_the_same_body_known_or_not(client, shop, app):
    known = client.post(f"{API}/order-lookup", json={"email": "ann@example.com"})
    unknown = client.post(f"{API}/order-lookup", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json() == {"message": SENT}
    assert known.get_data() == unknown.get_data()
    assert lookups(app) == [("ann@example.com", ["BOOK-1", "SUB-1"])]


@pytest.mark.parametrize("body, field", [
    ({}, "email"), ({"email": ""}, "email"), ({"email": "ann"}, "email"), ({"email": "ann@"}, "email"),
    ({"email": 42}, "email"), ({"email": "a" * 330 + "@example.com"}, "email"),
    ({"email": "ann@example.com", "order_id": "SUB-1"}, "order_id"), (["ann@example.com"], "email"),
])
def test_json_refuses_a_malformed_email_and_unknown_fields(client, shop, app, body, field):
    answer = client.post(f"{API}/order-lookup", json=body)
    assert answer.status_code == 400
    assert field in error(answer)["fields"]
    assert lookups(app) == []


def test_json_needs_json_and_no_csrf_header(client, shop):
    assert client.post(f"{API}/order-lookup", data={"email": "ann@example.com"}).status_code == 415
    assert client.post(f"{API}/order-lookup", json={"email": "ann@example.com"}).status_code == 202


# -- the email, through a real SMTP server ----------------------------------------------------------


def test_the_email_lists_the_leads_order_ids_and_no_other_leads(world: World):
    world.modes()
    world.subscription("SUB-1")
    world.ledger.order("BOB-1", email="bob@example.com", first_name="Bob")
    world.ledger.order("BOB-2", email="bob@example.com", first_name="Bob", price_point="ebook")
    answer = world.client.post(f"{API}/order-lookup", json={"email": "bob@example.com"})
    assert answer.status_code == 202
    sent = world.send()
    assert [kind for kind, _ in sent] == ["order_lookup"]
    message = sent[0][1]
    assert message["To"] == "bob@example.com" and "SUB-1" not in str(message["Subject"])
    body = parts(message)
    for part in (body["text/plain"], body["text/html"]):
        assert "BOB-1" in part and "BOB-2" in part
        assert "SUB-1" not in part and "ann@example.com" not in part
        assert "/billing/portal/" in part  # the login link
    assert world.client.post(f"{API}/order-lookup", json={"email": "nobody@example.com"}).status_code == 202
    assert world.send() == []


# -- limits ---------------------------------------------------------------------------------------------


def test_lookups_are_limited_per_email_known_or_not_and_count_no_failed_login(make_app):
    app = make_app(SELF_BILLING_ORDER_LOOKUP_LIMIT_PER_EMAIL="2 per hour")
    stock(Ledger(app))
    client = app.test_client()
    answers = {}
    for email in ("ann@example.com", "nobody@example.com"):
        for _ in range(2):
            assert client.post(f"{API}/order-lookup", json={"email": email}).status_code == 202
        answers[email] = client.post(f"{API}/order-lookup", json={"email": email})
    known, unknown = answers["ann@example.com"], answers["nobody@example.com"]
    assert known.status_code == unknown.status_code == 429
    assert "Retry-After" in known.headers and "Retry-After" in unknown.headers
    assert error(known)["message"] == error(unknown)["message"]
    # The page shares the counters, and says the same for both.
    pages = []
    for email in ("ann@example.com", "nobody@example.com"):
        form = text(client.get(PORTAL + PAGE))
        pages.append(client.post(PORTAL + PAGE, data={"csrf_token": csrf(form), "email": email}))
    assert [p.status_code for p in pages] == [429, 429]
    assert visible(text(pages[0])) == visible(text(pages[1]))
    assert "Please wait a little" in visible(text(pages[0]))
    assert len(lookups(app)) == 2  # only the two allowed lookups of Ann's
    # Lookups are no failed logins.
    login = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"})
    assert login.status_code == 200


def test_lookups_are_limited_per_address(make_app):
    app = make_app(SELF_BILLING_ORDER_LOOKUP_LIMIT_PER_ADDRESS="3 per hour")
    stock(Ledger(app))
    client = app.test_client()
    for n in range(3):
        assert client.post(f"{API}/order-lookup", json={"email": f"guess{n}@example.com"}).status_code == 202
    assert client.post(f"{API}/order-lookup", json={"email": "ann@example.com"}).status_code == 429
    elsewhere = app.test_client()
    answer = elsewhere.post(f"{API}/order-lookup", json={"email": "ann@example.com"},
                            environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert answer.status_code == 202

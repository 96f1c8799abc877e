""""Forgot your Order ID?" in headless Chromium (the fixtures of tests/test_browser.py): a customer who lost
their Order ID follows the login page's link, gives their email, and reads the answer; at 1280 and 375 px,
with and without JavaScript, with no serious or critical axe violation on the page."""
from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy import select

from plugin.db import db
from plugin.notifications.models import OutboxEmail
from tests.conftest import Ledger
from tests.test_accessibility import serious
from tests.test_browser import browser, live_demo, serving  # noqa: F401  (browser and live_demo are fixtures)
from tests.test_portal_api import stock

SENT = "If we have purchases under that email, we have sent their Order IDs to it."


@pytest.fixture
def live_shop(make_app) -> Iterator[tuple[object, str]]:
    """The plugin with Ann's and Bob's purchases, served on a free port: (app, base URL)."""
    app = make_app()
    stock(Ledger(app))
    with serving(app) as url:
        yield app, url


def queued(app) -> list[tuple[str, list[str]]]:
    with app.app_context():
        rows = db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "order_lookup")
                                  .order_by(OutboxEmail.id)).scalars()
        return [(row.to_address, [p["order_id"] for p in row.context["extra"]["purchases"]]) for row in rows]


def ask(page, base: str, email: str) -> None:
    page.goto(base + "/billing/portal/")
    page.get_by_role("link", name="Forgot your Order ID?").click()
    page.get_by_role("heading", name="Forgot your Order ID?").wait_for()
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me my Order IDs").click()
    page.get_by_role("heading", name="Check your email").wait_for()


@pytest.mark.parametrize("width", (1280, 375))
def test_a_customer_who_lost_the_order_id_gets_them_by_email(browser, live_shop, width):  # noqa: F811
    app, base = live_shop
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(base + "/billing/portal/")
    assert serious(page) == []
    page.get_by_role("link", name="Forgot your Order ID?").click()
    page.get_by_role("heading", name="Forgot your Order ID?").wait_for()
    assert serious(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # fits the screen

    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Email me my Order IDs").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    known = page.get_by_role("status").inner_text()
    assert known == SENT
    assert "SUB-1" not in page.content() and "Ann" not in page.inner_text("body")
    assert serious(page) == []

    ask(page, base, "nobody@example.com")
    assert page.get_by_role("status").inner_text() == known  # the same answer for an unknown email
    context.close()
    assert queued(app) == [("ann@example.com", ["BOOK-1", "SUB-1"])]


def test_without_javascript_and_with_a_bad_email(browser, live_shop):  # noqa: F811
    app, base = live_shop
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(base + "/billing/portal/")
    page.get_by_role("link", name="Forgot your Order ID?").click()
    field = page.get_by_label("Email address")
    field.fill("bob@localhost")  # an address the browser lets through, but no email address one can buy with
    page.get_by_role("button", name="Email me my Order IDs").click()
    page.get_by_text("Enter the email address you used when you bought (for example ann@example.com).").wait_for()
    assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
    page.get_by_label("Email address").fill("Bob@Example.com")
    page.get_by_role("button", name="Email me my Order IDs").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    assert page.get_by_role("status").inner_text() == SENT
    context.close()
    assert queued(app) == [("bob@example.com", ["BOB-1"])]


def test_the_link_inside_the_demo_helpdesks_my_orders_tab(browser, live_demo):  # noqa: F811
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(live_demo + "/help/my-orders")
    page.get_by_role("link", name="Forgot your Order ID?").click()
    page.get_by_role("heading", name="Forgot your Order ID?").wait_for()
    assert "/help/my-orders/" in page.url  # still inside the helpdesk's tab
    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Email me my Order IDs").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    assert page.get_by_role("status").inner_text() == SENT
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    context.close()

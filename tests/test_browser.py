"""A real customer in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``) driven by
Playwright against a live server on a free localhost port.

The walk: log in, show details, request a refund, cancel a subscription, change the billing
address, add a card (its number goes to the processor's token endpoint only), make it the
default, remove the old one, log out. Along the way it checks that every control can be reached
with the keyboard and shows a visible focus, and that My Orders fits a 375 px phone screen.

Screenshots of My Orders (desktop and phone) are saved under ``$SELF_BILLING_SCREENSHOTS``
(default ``test-artifacts/screenshots``; ``SELF_BILLING_SCREENSHOTS=docs/screenshots`` refreshes
the ones the README shows). Without Chromium or Playwright the test is skipped, except with
``CI=true``, where it fails.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from werkzeug.serving import make_server

from tests.conftest import Ledger
from tests.parts import missing_part
from tests.test_portal_api import days_ago, stock
from tests.test_portal_pages import ANN_NEWEST_FIRST, paged_shop

CHROMIUM = os.environ.get("SELF_BILLING_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
CARD_NUMBER = "5555555555554444"


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served on a free loopback port in a thread, for the browser; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_part("Playwright is not installed: pip install playwright (no 'playwright install' needed)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing_part(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def live_portal(make_app) -> Iterator[str]:
    """The plugin on a host app, served by werkzeug on a free port; yields the base URL."""
    app = make_app()
    ledger = Ledger(app)
    stock(ledger)
    ledger.order("TEAM-1", price_point="pro-delayed", purchased_at=days_ago(8))
    ledger.payment("TEAM-1", "PAY-T1", days_ago(8))
    ledger.order("PP-1", price_point="pro-monthly", purchased_at=days_ago(60),
                 payment_method={"type": "paypal", "payer_email": "ann@paypal.example"})
    ledger.payment("PP-1", "PAY-PP1", days_ago(60))
    ledger.payment("PP-1", "PAY-PP2", days_ago(30))
    with serving(app) as url:
        yield url


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("SELF_BILLING_SCREENSHOTS", "test-artifacts/screenshots"))
    if not folder.is_absolute():
        folder = ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def unfocusable_controls(page) -> list[str]:
    """Tab through the page; name every control whose focus is not visibly outlined."""
    count = page.evaluate("document.querySelectorAll('.sb-portal a, .sb-portal button, .sb-portal summary').length")
    problems, seen = [], set()
    for _ in range(count + 3):
        page.keyboard.press("Tab")
        info = page.evaluate(
            """() => { const el = document.activeElement; if (!el || !el.closest('.sb-portal')) return null;
                 const style = getComputedStyle(el);
                 return {key: el.outerHTML.slice(0, 120), name: el.getAttribute('aria-label') || el.textContent.trim(),
                         outline: style.outlineStyle, width: parseFloat(style.outlineWidth)}; }""")
        if info is None or info["key"] in seen:
            continue
        seen.add(info["key"])
        if info["outline"] == "none" or info["width"] < 2:
            problems.append(info["name"])
    assert seen, "Tab reaches the portal's controls"
    return problems


def show_details(page, base_url: str, order_id: str = "SUB-1"):
    """Log in as Ann with ``order_id`` and open its "Show details"; the purchase's module and the table of its
    earlier payments (those the card does not show already)."""
    page.goto(base_url + "/billing/portal/")
    page.get_by_label("Order ID").fill(order_id)
    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Log in").click()
    module = page.locator(f'section[data-order-id="{order_id}"]')
    module.get_by_text("Show details").click()
    module.get_by_text("Hide details").wait_for(state="visible")  # the summary says what it does now
    assert not module.get_by_text("Show details").is_visible()
    return module, module.get_by_role("table", name="Earlier payments")


def test_a_customer_manages_orders_in_a_real_browser(browser, live_portal):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    posted_to_us: list[str] = []
    token_calls: list[str] = []

    def watch(request) -> None:
        if request.method != "POST":
            return
        if request.url.endswith("/sandbox/tokens"):
            token_calls.append(request.url)
        elif "/billing/portal/" in request.url:
            posted_to_us.append(request.post_data or "")

    page.on("request", watch)
    base = live_portal + "/billing/portal/"

    # -- log in
    page.goto(base)
    page.get_by_label("Order ID").fill("SUB-1")
    page.get_by_label("Email address").fill("Ann@Example.com ")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My Orders").wait_for()
    assert page.locator("section.sb-purchase").count() == 4
    orders = [page.locator("section.sb-purchase").nth(i).get_attribute("data-order-id") for i in range(4)]
    assert orders == ["BOOK-1", "TEAM-1", "SUB-1", "PP-1"]  # newest first

    # -- screenshots: desktop and a 375 px phone; nothing wider than the phone's screen
    shots = screenshot_dir()
    page.screenshot(path=str(shots / "my-orders-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 812})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(shots / "my-orders-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert (shots / "my-orders-desktop.png").stat().st_size > 10_000
    assert (shots / "my-orders-phone.png").stat().st_size > 10_000

    # -- every control is reachable with Tab and shows a visible focus
    assert unfocusable_controls(page) == []

    # -- show details
    sub = page.locator('section[data-order-id="SUB-1"]')
    assert sub.get_by_role("table", name="Past payments").get_by_role("row").count() == 3  # header + 2 payments
    assert not sub.get_by_text("Bill to").is_visible()
    sub.get_by_text("Show details").click()
    sub.get_by_text("Bill to").wait_for(state="visible")
    assert sub.get_by_role("table", name="Earlier payments").count() == 0  # the two are not shown again
    sub.get_by_text("Hide details").click()
    sub.get_by_text("Show details").wait_for(state="visible")

    # -- request a refund (with confirmation)
    sub.get_by_role("link", name="Request refund").first.click()
    page.get_by_role("heading", name="Request a refund?").wait_for()
    page.get_by_label("Reason (optional)").fill("I did not use it this month")
    page.get_by_role("button", name="Yes, request a refund").click()
    page.get_by_text("Your payment was refunded: $49.00 is on its way back to you.").wait_for()

    # -- cancel a subscription (delayed: it ends at the end of the paid period)
    page.locator('section[data-order-id="TEAM-1"]').get_by_role("link", name="Cancel subscription").click()
    page.get_by_role("heading", name="Cancel your subscription?").wait_for()
    page.get_by_role("button", name="Yes, cancel my subscription").click()
    page.get_by_text("Your subscription to Team Plan will end on").wait_for()
    assert page.locator('section[data-order-id="TEAM-1"]').get_by_text("Cancels on").is_visible()

    # -- change the billing address
    page.locator('section[data-order-id="SUB-1"]').get_by_role("link", name="Update billing address").click()
    page.get_by_text("applies to future invoices only").wait_for()
    page.get_by_label("Name or company", exact=True).fill("Ann Lee GmbH")
    page.get_by_label("Address line 1", exact=True).fill("Hauptstraße 5")
    page.get_by_label("City", exact=True).fill("Berlin")
    page.get_by_label("State, province or region (optional)", exact=True).fill("")
    page.get_by_label("Postal code (optional)", exact=True).fill("10115")
    page.get_by_label("Country", exact=True).select_option("DE")
    page.get_by_role("button", name="Submit").click()
    page.get_by_text("Your billing address for Pro Plan is updated.").wait_for()

    # -- add a card through the processor's token flow
    page.locator('section[data-order-id="SUB-1"]').get_by_role("link", name="Update credit card").click()
    page.get_by_role("heading", name="Update credit card").wait_for()
    page.get_by_role("link", name="Add card").click()
    page.get_by_label("Card number").fill("4242 4242 4242 4241")  # a typo: the processor refuses it
    page.get_by_label("Expiry month (MM)").fill("12")
    page.get_by_label("Expiry year (YYYY)").fill("2031")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("alert").filter(has_text="Please correct the card details marked below.").wait_for()
    number = page.get_by_label("Card number")
    assert number.get_attribute("aria-invalid") == "true"
    hint = page.locator("#sb-card-number-error")
    assert hint.inner_text() == "Card number is not a valid card number; check it for typos."
    assert number.evaluate("el => document.getElementById(el.getAttribute('aria-describedby')).id") == \
        "sb-card-number-error"
    assert hint.evaluate("el => getComputedStyle(el).color") != number.evaluate("el => getComputedStyle(el).color")
    assert page.get_by_label("Expiry month (MM)").get_attribute("aria-invalid") is None
    number.fill(CARD_NUMBER)
    page.get_by_label("Use this card for future payments").uncheck()  # offered ticked; keep the old default
    page.get_by_role("button", name="Submit").click()
    page.get_by_text("Your Mastercard card ending in 4444 was added.").wait_for()
    assert token_calls, "the card details went to the processor's token endpoint"
    assert not any(CARD_NUMBER in body or "4444" in body and "number" in body for body in posted_to_us)

    # -- make it the default, then remove the old card
    cards = page.get_by_role("list", name="Saved cards").get_by_role("listitem")
    assert cards.count() == 2
    page.get_by_role("button", name="Set as default card: Mastercard ending in 4444").click()
    page.get_by_text("Future payments will be charged to your Mastercard card ending in 4444.").wait_for()
    page.get_by_role("link", name="Remove card: Visa ending in 4242").click()
    page.get_by_role("heading", name="Remove Visa ending in 4242?").wait_for()
    page.get_by_role("button", name="Yes, remove this card").click()
    page.get_by_text("Your Visa card ending in 4242 was removed.").wait_for()
    assert cards.count() == 1
    assert unfocusable_controls(page) == []

    # -- log out
    page.get_by_role("button", name="Log out").click()
    page.get_by_text("You are logged out.").wait_for()
    page.get_by_role("button", name="Log in").wait_for()
    page.goto(base + "purchases/SUB-1/cards")
    page.get_by_role("button", name="Log in").wait_for()  # sent back to the login form
    context.close()


def test_without_javascript_the_card_form_explains_itself(browser, live_portal):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    show_details(page, live_portal)  # details/summary works without JavaScript
    page.goto(live_portal + "/billing/portal/purchases/SUB-1/cards/new")
    page.get_by_text("Adding a card needs JavaScript").wait_for()
    assert not page.get_by_label("Card number").is_visible()
    context.close()


def a_failed_load_of_older_payments_can_be_tried_again(page, sub, rows, more) -> None:
    """A failed "Show more payments" says so, keeps the two rows shown, and the button can be clicked again."""
    older = re.compile(r"/payments[?]after=")
    page.route(older, lambda route: route.abort())
    more.click()
    sub.get_by_text("The older payments could not be loaded. Please try again.").wait_for()
    assert rows.count() == 2 and more.is_enabled()
    page.unroute(older)


def test_show_more_payments_loads_older_payments_in_place(browser, make_app):
    app = make_app()
    ledger = Ledger(app)
    stock(ledger)
    for n in range(3, 13):  # SUB-1: 12 payments, PAY-1 the oldest
        ledger.payment("SUB-1", f"PAY-X{n}", days_ago(10 - n * 0.5))
    with serving(app) as url:
        context = browser.new_context(viewport={"width": 375, "height": 812})
        page = context.new_page()
        sub, history = show_details(page, url)
        rows = history.locator("tbody tr")
        assert rows.count() == 2  # the latest page is 5: three on the card, two here
        assert sub.get_by_role("link", name="Show more payments").count() == 0  # the script made it a button
        more = sub.get_by_role("button", name="Show more payments")
        a_failed_load_of_older_payments_can_be_tried_again(page, sub, rows, more)

        more.click()
        history.get_by_text("PAY-X3").wait_for()
        assert rows.count() == 7
        assert sub.get_by_text("Showing the latest 10 of 12 payments.").is_visible()
        more.click()
        history.get_by_text("PAY-1", exact=True).wait_for()
        assert rows.count() == 9 and more.count() == 0  # the last page: no button left
        assert sub.get_by_text("Showing the latest 12 of 12 payments.").is_visible()
        ids = [rows.nth(i).locator('td[data-label="Payment ID"]').inner_text() for i in range(9)]
        assert ids == [f"PAY-X{n}" for n in range(9, 2, -1)] + ["PAY-2", "PAY-1"]
        assert rows.nth(8).get_by_role("link", name="Download invoice").is_visible()
        assert rows.nth(7).get_by_role("link", name="Request refund").is_visible()  # PAY-2, inside the window
        assert rows.nth(8).locator('td[data-label="Refundable until"]').inner_text() == "Ended"  # PAY-1
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert unfocusable_controls(page) == []
        context.close()


def test_show_earlier_purchases_loads_older_purchases_in_place(browser, make_app):
    app = paged_shop(make_app, size=5)  # Ann: 12 purchases, 5 a page; SUB-1 the oldest, on the last page
    ledger = Ledger(app)
    for n in range(3, 13):  # SUB-1: 12 payments, more than a page of its history
        ledger.payment("SUB-1", f"PAY-X{n}", days_ago(10 - n * 0.5))
    with serving(app) as url:
        context = browser.new_context(viewport={"width": 375, "height": 812})
        page = context.new_page()
        page.goto(url + "/billing/portal/")
        page.get_by_label("Order ID").fill("SUB-1")
        page.get_by_label("Email address").fill("ann@example.com")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="My Orders").wait_for()
        modules = page.locator("section.sb-purchase")
        status = page.locator("[data-sb-more-purchases-status]")
        assert modules.count() == 5 and status.inner_text() == "Showing the latest 5 of 12 purchases."
        assert page.get_by_role("link", name="Show earlier purchases").count() == 0  # the script made it a button
        earlier = page.get_by_role("button", name="Show earlier purchases")

        # A failed load says so, keeps the page as it was, and can be tried again.
        page.route(re.compile(r"[?]page=2$"), lambda route: route.abort())
        earlier.click()
        page.get_by_text("The earlier purchases could not be loaded. Please try again.").wait_for()
        assert modules.count() == 5 and earlier.is_enabled()
        page.unroute(re.compile(r"[?]page=2$"))

        earlier.click()
        page.locator('section[data-order-id="ORD-09"]').wait_for()
        assert modules.count() == 10 and status.inner_text() == "Showing the latest 10 of 12 purchases."
        assert earlier.is_enabled()
        earlier.click()
        page.locator('section[data-order-id="SUB-1"]').wait_for()
        assert modules.count() == 12 and earlier.count() == 0  # the last page: no button left
        assert status.inner_text() == "Showing the latest 12 of 12 purchases."
        assert page.evaluate("document.activeElement.hasAttribute('data-sb-more-purchases-status')")
        assert [modules.nth(i).get_attribute("data-order-id") for i in range(12)] == ANN_NEWEST_FIRST
        ids = page.evaluate("[...document.querySelectorAll('.sb-orders [id]')].map(el => el.id)")
        assert len(ids) == len(set(ids))  # headings of the pages joined in place stay unique
        labels = page.evaluate("[...document.querySelectorAll('section.sb-purchase')]"
                               ".map(s => document.getElementById(s.getAttribute('aria-labelledby')).textContent)")
        assert len(labels) == 12 and all(labels)

        # In a module loaded in place, "Show details" and "Show more payments" work as on the first page.
        sub = page.locator('section[data-order-id="SUB-1"]')
        sub.get_by_text("Show details").click()
        sub.get_by_text("Hide details").wait_for(state="visible")
        history = sub.get_by_role("table", name="Earlier payments")
        rows = history.locator("tbody tr")
        assert rows.count() == 2 and sub.get_by_role("link", name="Show more payments").count() == 0
        more = sub.get_by_role("button", name="Show more payments")
        a_failed_load_of_older_payments_can_be_tried_again(page, sub, rows, more)

        more.click()
        history.get_by_text("PAY-X3").wait_for()
        assert rows.count() == 7 and sub.get_by_text("Showing the latest 10 of 12 payments.").is_visible()
        more.click()
        history.get_by_text("PAY-1", exact=True).wait_for()
        assert rows.count() == 9 and more.count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert unfocusable_controls(page) == []

        # Opened at page 2 (a link without JavaScript, shared), the button goes on from there.
        page.goto(url + "/billing/portal/?page=2")
        page.get_by_text("Purchases 6 to 10 of 12.", exact=True).wait_for()
        assert status.inner_text() == "Showing purchases 6 to 10 of 12."
        earlier.click()
        page.locator('section[data-order-id="SUB-1"]').wait_for()
        assert [modules.nth(i).get_attribute("data-order-id") for i in range(7)] == ANN_NEWEST_FIRST[5:]
        assert status.inner_text() == "Showing purchases 6 to 12 of 12." and earlier.count() == 0
        context.close()


@pytest.fixture
def live_demo(database_url, tmp_path) -> Iterator[str]:
    """The demo host helpdesk with its seed data, served on a free port; yields the base URL."""
    from plugin.demo import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "browser-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "MAIL_SUPPRESS_SEND": True}, instance_path=str(tmp_path / "demo-instance"))
    with app.app_context():
        from plugin.demo.seed import seed_demo
        from plugin.schema import init_db

        init_db()
        seed_demo()
    try:
        with serving(app) as url:
            yield url
    finally:
        with app.app_context():
            app.extensions["sqlalchemy"].session.remove()
            app.extensions["sqlalchemy"].engine.dispose()


def test_the_my_orders_tab_inside_the_demo_helpdesk(browser, live_demo):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(live_demo + "/help/my-orders")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="My Orders").get_attribute("aria-current") == "page"
    page.get_by_label("Order ID").fill("DEMO-1001")
    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My Orders", exact=True).wait_for()
    assert page.url.startswith(live_demo + "/help/my-orders/")
    assert nav.is_visible()  # still inside the help center's own layout
    module = page.locator('section[data-order-id="DEMO-1001"]')
    assert module.get_by_role("link", name="Cancel subscription").is_visible()
    page.screenshot(path=str(screenshot_dir() / "my-orders-helpdesk-tab.png"), full_page=True)
    page.get_by_role("button", name="Log out").click()
    page.get_by_text("You are logged out.").wait_for()
    context.close()

"""Issue 17's items, walked by a customer (and an agent) in headless Chromium at 1280 and 375 px.

Each test asserts what a person sees: visible text, roles and accessible names, not the markup.
The items walked here are those no other browser test walks:

- an automatic *delayed* cancellation reads "Cancels on <date>" and not "with our billing team" (item 1),
  then "Keep my subscription" brings the subscription back;
- an open refund request shows on its payment row, and a partial refund reads "Partially refunded" (item 4);
- the country list holds real countries only, sorted by name, and a German address is shown as Germans
  write it, the postal code before the city (item 5);
- the Order ID logs in whatever its case (item 8);
- the cancel confirmation offers the merchant's reasons and a free text, and the agent's ticket shows both.

The same fixtures and skip rules as :mod:`tests.test_browser`. Screenshots of a purchase whose cancellation
is scheduled, of the cancel confirmation with its reasons and of the cancellation ticket go to
``$SELF_BILLING_SCREENSHOTS`` (``SELF_BILLING_SCREENSHOTS=docs/screenshots`` refreshes those in the docs).
"""
from __future__ import annotations

import re
from typing import Iterator

import pytest
from sqlalchemy import select

from plugin.db import db
from tests.conftest import Ledger
from tests.test_browser import browser, screenshot_dir, serving  # noqa: F401  (browser is a fixture)
from tests.test_portal_api import days_ago, stock

WIDTHS = (1280, 375)
PORTAL = "/billing/portal/"


def device(width: int) -> str:
    return "desktop" if width > 400 else "phone"


@pytest.fixture
def shop(make_app) -> Iterator[tuple[object, str]]:
    """Ann's purchases of tests.test_portal_api.stock (automatic cancellations and refunds) and a Team Plan
    that cancels at the end of its paid period; served on a free port: (app, base URL)."""
    app = make_app()
    ledger = Ledger(app)
    stock(ledger)
    ledger.order("TEAM-1", price_point="pro-delayed", purchased_at=days_ago(8))
    ledger.payment("TEAM-1", "PAY-T1", days_ago(8))
    with serving(app) as url:
        yield app, url


def open_page(browser, width: int):  # noqa: F811  (the browser fixture)
    context = browser.new_context(viewport={"width": width, "height": 900})
    return context, context.new_page()


def log_in(page, base: str, order_id: str, email: str = "ann@example.com") -> None:
    page.goto(base + PORTAL)
    page.get_by_label("Order ID").fill(order_id)
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My Orders").wait_for()


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def words(locator) -> str:
    """What a person reads in ``locator``: its rendered text, white space collapsed."""
    return " ".join(locator.inner_text().split())


def payment_row(purchase, payment_id: str):
    return purchase.get_by_role("row").filter(has_text=payment_id)


# -- item 1 and Keep my subscription --------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_a_delayed_cancellation_says_when_it_ends_and_can_be_undone(browser, shop, width):  # noqa: F811
    _app, base = shop
    context, page = open_page(browser, width)
    log_in(page, base, "TEAM-1")
    team = page.get_by_role("region", name="Team Plan")
    next_payment = re.search(r"Next payment: \$99\.00 on (.+?)\.", words(team))
    assert next_payment, words(team)
    ends_on = next_payment.group(1)

    team.get_by_role("link", name="Cancel subscription").click()
    page.get_by_role("heading", name="Cancel your subscription?").wait_for()
    page.get_by_role("button", name="Yes, cancel my subscription").click()
    page.get_by_text("Your subscription to Team Plan will end on").wait_for()

    team = page.get_by_role("region", name="Team Plan")
    seen = words(team)
    assert f"Cancels on {ends_on}." in seen  # the end of the paid period, as the next payment was
    assert team.locator(".sb-badge").inner_text() == "Cancellation scheduled"
    # done by itself at once: nothing waits for a person, no ticket
    assert "billing team" not in seen and "being processed" not in seen and "ticket" not in seen.lower()
    assert "billing team" not in words(page.locator("main"))
    assert team.get_by_role("link", name="Cancel subscription").count() == 0
    assert fits(page, width)
    team.screenshot(path=str(screenshot_dir() / f"my-orders-cancel-scheduled-{device(width)}.png"))

    # -- Keep my subscription: readable (not the colour of its button), asked first, then active again
    keep = team.get_by_role("link", name="Keep my subscription")
    assert keep.evaluate("el => getComputedStyle(el).color") != keep.evaluate(
        "el => getComputedStyle(el).backgroundColor")
    keep.click()
    page.get_by_role("heading", name="Keep your subscription?").wait_for()
    assert f"set to end on {ends_on}" in words(page.locator("main"))
    assert fits(page, width)
    page.get_by_role("button", name="Yes, keep my subscription").click()
    page.get_by_text("Your subscription to Team Plan continues").wait_for()
    team = page.get_by_role("region", name="Team Plan")
    seen = words(team)
    assert "Cancels on" not in seen and "You will not be charged again" not in seen
    assert f"Next payment: $99.00 on {ends_on}." in seen
    assert team.get_by_role("link", name="Keep my subscription").count() == 0
    assert team.get_by_role("link", name="Cancel subscription").is_visible()  # it can be cancelled again
    assert team.locator(".sb-badge").inner_text() == "Active"
    context.close()


# -- item 4 -------------------------------------------------------------------------------------------


@pytest.fixture
def refund_shop(make_app) -> Iterator[str]:
    """Refunds by request (a ticket); the e-book's payment partly refunded by an agent, $5.00 of $19.00."""
    from plugin.ledger.models import Payment
    from plugin.workflows.service import agent_refund

    app = make_app()
    stock(Ledger(app), refunds="request")
    with app.app_context():
        payment = db.session.execute(select(Payment).where(Payment.payment_id == "PAY-B1")).scalar_one()
        agent_refund(payment, "agent@example.com", "5.00")
    with serving(app) as url:
        yield url


@pytest.mark.parametrize("width", WIDTHS)
def test_an_open_refund_request_shows_on_its_row_and_a_partial_refund_reads_partially_refunded(
        browser, refund_shop, width):  # noqa: F811
    context, page = open_page(browser, width)
    log_in(page, refund_shop, "SUB-1")
    book = page.get_by_role("region", name="E-book")
    row = payment_row(book, "PAY-B1")
    assert "Partially refunded ($5.00 refunded)" in words(row)
    assert "Partly" not in words(page.locator("main"))

    pro = page.get_by_role("region", name="Pro Plan")
    payment_row(pro, "PAY-2").get_by_role("link", name="Request refund").click()
    page.get_by_role("heading", name="Request a refund?").wait_for()
    page.get_by_role("button", name="Yes, request a refund").click()
    page.get_by_text("Your refund request was sent to our billing team as ticket").wait_for()

    pro = page.get_by_role("region", name="Pro Plan")
    row = payment_row(pro, "PAY-2")
    assert row.get_by_text("Refund requested").is_visible()  # on its row, not just "Paid"
    assert "Refund requested" in words(row)
    assert row.get_by_role("link", name="Request refund").count() == 0  # asked once
    assert "Refund requested" not in words(payment_row(pro, "PAY-1"))
    assert "is with our billing team" in words(pro)
    assert fits(page, width)
    context.close()


# -- item 5 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_real_countries_only_and_a_german_address_as_germans_write_it(browser, shop, width):  # noqa: F811
    _app, base = shop
    context, page = open_page(browser, width)
    log_in(page, base, "SUB-1")
    pro = page.get_by_role("region", name="Pro Plan")
    pro.get_by_role("link", name="Update billing address").click()
    page.get_by_role("heading", name="Update billing address").wait_for()
    assert fits(page, width)

    country = page.get_by_label("Country", exact=True)
    names = [name.strip() for name in country.get_by_role("option").all_inner_texts()]
    for grouping in ("European Union", "United Nations", "Pseudo-Accents", "Pseudo-Bidi", "Unknown Region",
                     "Eurozone", "Outlying Oceania", "World"):
        assert grouping not in names, grouping
    assert {"Germany", "United States", "France", "Japan"} <= set(names)
    assert names.index("Åland Islands") == names.index("Afghanistan") + 1  # among the A's, not after Zimbabwe
    assert names.index("Croatia") - 1 == names.index("Côte d’Ivoire")  # ô sorts as o
    assert "Curaçao" in names and names.index("Curaçao") < names.index("Cyprus")

    page.get_by_label("Name or company", exact=True).fill("Ann Lee GmbH")
    page.get_by_label("Address line 1", exact=True).fill("Hauptstraße 5")
    page.get_by_label("City", exact=True).fill("Berlin")
    page.get_by_label("State, province or region (optional)", exact=True).fill("")
    page.get_by_label("Postal code (optional)", exact=True).fill("10115")
    country.select_option(label="Germany")
    page.get_by_role("button", name="Submit").click()
    page.get_by_text("Your billing address for Pro Plan is updated.").wait_for()

    pro = page.get_by_role("region", name="Pro Plan")
    pro.get_by_text("Show details").click()
    bill_to = pro.locator("address")
    bill_to.wait_for(state="visible")
    lines = [line.strip() for line in bill_to.inner_text().splitlines() if line.strip()]
    assert lines == ["Ann Lee GmbH", "Hauptstraße 5", "10115 Berlin", "Germany"]
    assert "Berlin 10115" not in words(pro)
    assert fits(page, width)
    context.close()


# -- item 8 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_the_order_id_logs_in_whatever_its_case(browser, shop, width):  # noqa: F811
    _app, base = shop
    context, page = open_page(browser, width)
    # more tries than the failed-login limit (5 per email): none counts as a failure, none is refused
    for typed in ("team-1", "Team-1", " tEaM-1 ", "sub-1", "Book-1", "TEAM-1"):
        log_in(page, base, typed, "Ann@Example.com")
        assert page.get_by_role("region", name="Team Plan").is_visible(), typed
        assert page.get_by_text("Logged in as ann@example.com").is_visible()
        page.get_by_role("button", name="Log out").click()
        page.get_by_text("You are logged out.").wait_for()
    # a wrong Order ID is still refused, with the one message
    page.get_by_label("Order ID").fill("TEAM-2")
    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log in").wait_for()
    assert page.get_by_role("heading", name="My Orders").is_visible()  # still the login page's heading
    assert page.get_by_role("region", name="Team Plan").count() == 0
    context.close()


# -- cancellation reasons -----------------------------------------------------------------------------


@pytest.fixture
def request_shop(make_app) -> Iterator[str]:
    """Cancellations by request (a ticket for an agent), with an agent desk whose every visitor is an agent."""
    app = make_app(agent_loader=lambda: "agent@example.com")
    stock(Ledger(app), cancellation="request")
    with serving(app) as url:
        yield url


DEFAULT_REASONS = ["It costs too much", "I no longer need it"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_reason_picked_at_the_cancel_confirmation_reaches_the_agents_ticket(
        browser, request_shop, width):  # noqa: F811
    base = request_shop
    shots = screenshot_dir()
    context, page = open_page(browser, width)
    log_in(page, base, "SUB-1")
    page.get_by_role("region", name="Pro Plan").get_by_role("link", name="Cancel subscription").click()
    page.get_by_role("heading", name="Cancel your subscription?").wait_for()

    reasons = page.get_by_role("group", name="Why are you cancelling? (optional)")
    radios = reasons.get_by_role("radio")
    offered = [radios.nth(i).evaluate("el => el.labels[0].innerText.trim()") for i in range(radios.count())]
    assert offered[:2] == DEFAULT_REASONS and len(offered) >= 4
    assert not any(radios.nth(i).is_checked() for i in range(radios.count()))  # nothing picked for them
    comment = page.get_by_label("Reason (optional)")
    assert comment.is_visible()
    reasons.get_by_role("radio", name="I no longer need it").check()
    comment.fill("The project ended.\nThanks for everything.")
    assert fits(page, width)
    page.screenshot(path=str(shots / f"portal-cancel-reasons-{device(width)}.png"), full_page=True)
    page.get_by_role("button", name="Yes, cancel my subscription").click()
    notice = page.get_by_text(re.compile(r"sent to our billing team as ticket"))
    notice.wait_for()
    ticket = re.search(r"ticket #?(\d+)", notice.inner_text()).group(1)
    context.close()

    # the agent: the queue lists the ticket; its page leads with the customer's pick and words
    context, page = open_page(browser, width)
    page.goto(base + "/billing/desk/")
    page.get_by_role("heading", name="Ticket queue").wait_for()
    page.get_by_role("row").filter(has_text="SUB-1").get_by_role("link").first.click()
    page.get_by_role("region", name="Summary").wait_for()
    assert page.url.rstrip("/").endswith(f"/tickets/{ticket}")
    summary = page.get_by_role("region", name="Summary")
    reason = summary.get_by_text("I no longer need it", exact=True)
    assert reason.is_visible()
    assert summary.locator("blockquote").inner_text() == "The project ended.\nThanks for everything."
    assert "It costs too much" not in words(summary)  # the pick, not the list
    assert fits(page, width)
    page.screenshot(path=str(shots / f"desk-ticket-cancellation-{device(width)}.png"), full_page=True)
    context.close()


# -- the host's templates win -------------------------------------------------------------------------


def test_a_hosts_own_page_frame_and_page_template_win(browser, make_app, tmp_path):  # noqa: F811
    """One file (``self_billing/portal/_page.html``) frames every portal page, so a host re-frames them all
    with its own copy; a host's copy of one page replaces that page only."""
    folder = tmp_path / "host-templates" / "self_billing" / "portal"
    folder.mkdir(parents=True)
    (folder / "_page.html").write_text(
        '{% extends sb_layout %}{% block title %}{{ title }}{% endblock %}{% block content %}'
        '<div class="sb-portal"><p role="note">Acme Support: billing help</p>'
        '{% include "self_billing/portal/_toolbar.html" %}{% block page %}{% endblock %}</div>{% endblock %}')
    (folder / "resume.html").write_text(
        '{% extends "self_billing/portal/_page.html" %}{% block page %}<h1>Stay with Acme?</h1>{% endblock %}')
    app = make_app()
    app.template_folder = str(tmp_path / "host-templates")
    ledger = Ledger(app)
    stock(ledger)
    ledger.order("TEAM-1", price_point="pro-delayed", purchased_at=days_ago(8))
    ledger.payment("TEAM-1", "PAY-T1", days_ago(8))
    with serving(app) as base:
        context, page = open_page(browser, 1280)
        page.goto(base + PORTAL)
        banner = page.get_by_role("note")
        assert banner.inner_text() == "Acme Support: billing help"
        page.get_by_role("link", name="Forgot your Order ID?").click()
        page.get_by_role("heading", name="Forgot your Order ID?").wait_for()
        assert banner.is_visible()
        log_in(page, base, "TEAM-1")  # My Orders is not framed by _page.html (yet): the plugin's own
        page.get_by_role("region", name="Team Plan").get_by_role("link", name="Cancel subscription").click()
        page.get_by_role("heading", name="Cancel your subscription?").wait_for()
        assert banner.is_visible() and page.get_by_text("Logged in as ann@example.com").is_visible()
        page.get_by_role("button", name="Yes, cancel my subscription").click()
        page.get_by_role("link", name="Keep my subscription").click()
        page.get_by_role("heading", name="Stay with Acme?").wait_for()  # the host's page
        assert banner.is_visible()
        context.close()

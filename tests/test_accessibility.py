"""Accessibility measured: axe-core (axe-playwright-python) in headless Chromium on every portal page and
every desk page, at 1280 and 375 px; any serious or critical violation fails, named with its nodes.

Pages in the states a person meets them too: a field error, a notice, a scheduled cancellation with its
"Keep my subscription", two cards (one removable), a refused and a resolved ticket, a not-found page."""
from __future__ import annotations

import pytest

from tests.parts import in_ci, missing_part
from tests.test_browser import browser, live_demo, live_portal  # noqa: F401  (fixtures)
from tests.test_browser import serving
from tests.test_desk_browser import live_desk, signed_in  # noqa: F401  (fixtures)
from tests.test_portal_pages import paged_shop

WIDTHS = (1280, 375)
#: The portal's pages, as Ann (SUB-1 and BOOK-1 of tests.test_portal_api.stock, TEAM-1 of the live_portal fixture).
PORTAL_PAGES = ("/", "/purchases/SUB-1/cancel", "/purchases/TEAM-1/cancel", "/payments/PAY-2/refund",
                "/purchases/SUB-1/address", "/purchases/SUB-1/cards", "/purchases/SUB-1/cards/new",
                "/purchases/SUB-1/payments", "/purchases/PP-1/cards", "/purchases/NOPE-1/cancel",
                "/?page=2")  # My Orders past its last page (4 purchases, 10 a page): "There are no older purchases."
#: The desk's pages as the demo's agent (tests.test_desk_browser.live_desk: the demo data and three tickets).
DESK_PAGES = ["/desk/", "/desk/?status=all", "/desk/leads", "/desk/leads?q=ann", "/desk/leads?q=nobody-at-all",
              "/desk/orders/DEMO-1001", "/desk/orders/DEMO-1002", "/desk/orders/DEMO-1008", "/desk/orders/NOPE-1",
              "/desk/tickets/999999", "/desk/mail"]
#: The pages before a login: the login-link pages and "Forgot your Order ID?".
LOGGED_OUT_PAGES = ("/login/link", "/login/order-ids", "/login/link/not-a-link-we-sent")


def _axe():
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:  # pragma: no cover - the test extras install it
        if in_ci():
            raise
        missing_part("axe-playwright-python is not installed (pip install -e '.[test]')")
    return Axe()


def _target(node: dict) -> str:
    return " ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])


def _unreadable(node: dict) -> bool:
    """A node axe leaves for review on colour contrast whose text is the colour of its background: axe cannot
    tell whether that text is meant to be hidden, a person simply cannot read it (a blue label on a blue button)."""
    for check in node.get("any", []):
        data = check.get("data") or {}
        if data.get("messageKey") == "equalRatio" or (
                data.get("fgColor") and data.get("fgColor") == data.get("bgColor")):
            return True
    return False


def serious(page) -> list[str]:
    """The serious and critical violations on the page as it is now, one line each; text the colour of its
    background counts as one (axe only marks it for review)."""
    results = _axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in ("serious", "critical"):
            targets = [_target(node) for node in violation["nodes"]][:5]
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    for review in results.response.get("incomplete", []):
        if review["id"] == "color-contrast":
            targets = [_target(node) for node in review["nodes"] if _unreadable(node)][:5]
            if targets:
                found.append(f"color-contrast (serious): text the colour of its background at {targets}")
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_the_portal_pages_have_no_serious_violations(browser, live_portal, width):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    base = live_portal + "/billing/portal"
    page.goto(base + "/")
    problems = {"login": serious(page)}
    for path in LOGGED_OUT_PAGES:
        page.goto(base + path)
        page.wait_for_load_state("load")
        problems[path] = serious(page)
    page.goto(base + "/login/order-ids")
    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Email me my Order IDs").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    problems["/login/order-ids (sent)"] = serious(page)
    page.goto(base + "/login/link/not-a-link-we-sent")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="This link cannot be used").wait_for()
    problems["/login/link/<token> (used)"] = serious(page)
    for _ in range(6):  # Bob's logins paused (5 failures per email): the login link becomes the way in
        page.goto(base + "/")
        page.get_by_label("Order ID").fill("NOT-BOBS")
        page.get_by_label("Email address").fill("bob@example.com")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state("load")
    page.get_by_role("alert").wait_for()
    assert page.get_by_role("link", name="Can't log in? Email me a login link").is_visible()
    problems["login (paused)"] = serious(page)

    page.goto(base + "/")
    page.get_by_label("Order ID").fill("SUB-1")
    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My Orders").wait_for()
    for path in PORTAL_PAGES:
        page.goto(base + path)
        page.wait_for_load_state("load")
        problems[path] = serious(page)
    page.goto(base + "/")
    page.locator('section[data-order-id="SUB-1"]').get_by_text("Show details").click()
    problems["/ (details open)"] = serious(page)

    # a delayed cancellation: My Orders with "Keep my subscription", and its confirmation
    page.goto(base + "/purchases/TEAM-1/cancel")
    page.get_by_role("button", name="Yes, cancel my subscription").click()
    page.get_by_role("link", name="Keep my subscription").click()
    page.get_by_role("heading", name="Keep your subscription?").wait_for()
    problems["/purchases/TEAM-1/resume"] = serious(page)
    page.goto(base + "/")
    problems["/ (cancellation scheduled, a notice)"] = serious(page)

    # a second card, so that one can be removed: the card list with both, the removal's confirmation
    page.goto(base + "/purchases/SUB-1/cards/new")
    page.get_by_label("Card number").fill("4242 4242 4242 4241")  # refused at its field first
    page.get_by_label("Expiry month (MM)").fill("12")
    page.get_by_label("Expiry year (YYYY)").fill("2031")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("alert").wait_for()
    problems["/purchases/SUB-1/cards/new (a card error)"] = serious(page)
    page.get_by_label("Card number").fill("5555555555554444")
    page.get_by_label("Use this card for future payments").uncheck()
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("link", name="Remove card: Mastercard ending in 4444").wait_for()
    problems["/purchases/SUB-1/cards (two cards)"] = serious(page)
    page.get_by_role("link", name="Remove card: Mastercard ending in 4444").click()
    page.get_by_role("heading", name="Remove Mastercard ending in 4444?").wait_for()
    problems["/purchases/SUB-1/cards/<id>/remove"] = serious(page)
    context.close()
    assert len(problems) == 1 + len(LOGGED_OUT_PAGES) + 3 + len(PORTAL_PAGES) + 6
    assert {where: found for where, found in problems.items() if found} == {}


@pytest.mark.parametrize("width", WIDTHS)
def test_my_orders_pages_of_purchases_have_no_serious_violations(browser, make_app, width):  # noqa: F811
    """My Orders a page at a time (12 purchases, 5 a page): each page without JavaScript's help, and the first
    page with the earlier ones loaded in place."""
    app = paged_shop(make_app, size=5)
    with serving(app) as url:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        base = url + "/billing/portal"
        page.goto(base + "/")
        page.get_by_label("Order ID").fill("SUB-1")
        page.get_by_label("Email address").fill("ann@example.com")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="My Orders").wait_for()
        problems = {"/": serious(page)}
        for path in ("/?page=2", "/?page=3", "/?page=4", "/?page=abc"):
            page.goto(base + path)
            page.wait_for_load_state("load")
            problems[path] = serious(page)
        page.goto(base + "/")
        page.get_by_role("button", name="Show earlier purchases").click()
        page.locator("section.sb-purchase").nth(9).wait_for()
        problems["/ (earlier purchases loaded in place)"] = serious(page)
        context.close()
    assert {where: found for where, found in problems.items() if found} == {}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_desk_pages_have_no_serious_violations(browser, live_desk, width):  # noqa: F811
    url, tickets = live_desk
    context, page = signed_in(browser, url, width)
    problems = {}
    for path in DESK_PAGES + [f"/desk/tickets/{tickets[kind]}" for kind in ("refund", "cancellation", "failed")]:
        page.goto(url + path)
        page.wait_for_load_state("load")
        problems[path] = serious(page)

    # a ticket whose partial refund was refused (an alert at the field), then done (a notice, the ticket closed)
    page.goto(url + f"/desk/tickets/{tickets['refund']}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Amount to refund").fill("250")
    page.get_by_role("button", name="Refund part").click()
    page.get_by_role("alert").wait_for()
    problems["ticket (an amount refused)"] = serious(page)
    page.get_by_label("Amount to refund").fill("20.00")
    page.get_by_role("button", name="Refund part").click()
    page.locator(".sb-desk [role=status]").wait_for()
    problems["ticket (resolved, a notice)"] = serious(page)
    page.goto(url + "/desk/?status=closed")
    problems["/desk/?status=closed (one closed)"] = serious(page)
    context.close()
    assert {where: found for where, found in problems.items() if found} == {}


def test_the_desk_sign_in_page_has_no_serious_violations(browser, live_desk):  # noqa: F811
    url, _tickets = live_desk
    problems = {}
    for width in WIDTHS:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(url + "/desk/login")
        problems[f"/desk/login at {width}"] = serious(page)
        page.get_by_label("Email").fill("agent@example.com")
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("load")
        problems[f"/desk/login (refused) at {width}"] = serious(page)
        page.close()
    assert {where: found for where, found in problems.items() if found} == {}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_my_orders_tab_inside_the_demo_helpdesk_has_no_serious_violations(browser, live_demo, width):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(live_demo + "/help/my-orders")
    problems = {"login": serious(page)}
    page.get_by_label("Order ID").fill("DEMO-1001")
    page.get_by_label("Email address").fill("ann@example.com")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My Orders", exact=True).wait_for()
    problems["my orders"] = serious(page)
    context.close()
    assert {where: found for where, found in problems.items() if found} == {}


def test_the_check_finds_what_it_is_for(browser):  # noqa: F811
    """A control: a nameless button, an image without alt text and a link the colour of its background
    are serious or critical."""
    page = browser.new_page()
    page.set_content('<html lang="en"><head><title>t</title></head><body><main><button></button>'
                     '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
                     '<p><a href="#" style="color:#1d4ed8;background:#1d4ed8;padding:8px">Keep it</a></p>'
                     '</main></body></html>')
    found = serious(page)
    page.close()
    assert any(line.startswith("button-name") for line in found) and any(line.startswith("image-alt") for line in found)
    assert any(line.startswith("color-contrast") for line in found), found

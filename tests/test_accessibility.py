"""Accessibility measured: axe-core (axe-playwright-python) in headless Chromium on every portal page and
every desk page, at 1280 and 375 px; any serious or critical violation fails, named with its nodes."""
from __future__ import annotations

import pytest

from tests.parts import in_ci, missing_part
from tests.test_browser import browser, live_demo, live_portal  # noqa: F401  (fixtures)
from tests.test_desk_browser import live_desk, signed_in  # noqa: F401  (fixtures)

WIDTHS = (1280, 375)
#: The portal's pages, as Ann (SUB-1 and BOOK-1 of tests.test_portal_api.stock).
PORTAL_PAGES = ("/", "/purchases/SUB-1/cancel", "/payments/PAY-2/refund", "/purchases/SUB-1/address",
                "/purchases/SUB-1/cards", "/purchases/SUB-1/cards/new", "/purchases/SUB-1/payments")


def _axe():
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:  # pragma: no cover - the test extras install it
        if in_ci():
            raise
        missing_part("axe-playwright-python is not installed (pip install -e '.[test]')")
    return Axe()


def serious(page) -> list[str]:
    """The serious and critical violations on the page as it is now, one line each."""
    results = _axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in ("serious", "critical"):
            targets = [" ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])
                       for node in violation["nodes"]][:5]
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_the_portal_pages_have_no_serious_violations(browser, live_portal, width):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    base = live_portal + "/billing/portal"
    page.goto(base + "/")
    problems = {"login": serious(page)}
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
    context.close()
    assert {where: found for where, found in problems.items() if found} == {}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_desk_pages_have_no_serious_violations(browser, live_desk, width):  # noqa: F811
    url, tickets = live_desk
    context, page = signed_in(browser, url, width)
    problems = {}
    for path in ["/desk/", f"/desk/tickets/{tickets['refund']}", f"/desk/tickets/{tickets['cancellation']}",
                 f"/desk/tickets/{tickets['failed']}", "/desk/leads?q=ann", "/desk/orders/DEMO-1002"]:
        page.goto(url + path)
        page.wait_for_load_state("load")
        problems[path] = serious(page)
    context.close()
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
    """A control: a nameless button and an image without alt text are serious or critical to axe."""
    page = browser.new_page()
    page.set_content('<html lang="en"><head><title>t</title></head><body><main><button></button>'
                     '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></main></body></html>')
    found = serious(page)
    page.close()
    assert any(line.startswith("button-name") for line in found) and any(line.startswith("image-alt") for line in found)

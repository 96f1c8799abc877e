"""An agent at the desk in a real browser: headless Chromium driven by Playwright (the same fixtures
and skip rules as :mod:`tests.test_browser`), on the demo helpdesk, whose layout the desk is a guest in.

At 1280 and 375 px: each desk page fits the screen (no sideways scrolling), a ticket's summary (who,
what, how much, the refund window, the reason) comes before its actions, an error reads as an error
and a success as a success, and the confirm dialog names the amount. Screenshots of the desk go to
``$SELF_BILLING_SCREENSHOTS`` (``SELF_BILLING_SCREENSHOTS=docs/screenshots`` refreshes
``docs/screenshots/desk-*.png``).
"""
from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy import select

from plugin.db import db
from plugin.ledger.models import Payment, Purchase
from tests.test_browser import browser, screenshot_dir, serving  # noqa: F401  (fixtures)

#: The customer's reason on the refund ticket: its line breaks are kept on the page.
REASON = "I bought the course twice by mistake.\nPlease refund this one.\n\nThanks, Ann"
WIDTHS = (1280, 375)


def make_tickets() -> dict[str, int]:
    """Inside an app context of the seeded demo: a refund and a cancellation waiting for an agent,
    and a refund whose automatic processing failed at the processor (its ticket shows the call)."""
    from plugin.ledger import service
    from plugin.ledger.schemas import SettingsIn
    from plugin.payments.sandbox_faults import set_sandbox_faults
    from plugin.workflows.service import submit_cancellation, submit_refund

    def payment(order_id: str) -> Payment:
        return db.session.execute(
            select(Payment).join(Purchase, Purchase.id == Payment.purchase_id)
            .where(Purchase.order_id == order_id).order_by(Payment.paid_at.desc()).limit(1)).scalar_one()

    def purchase(order_id: str) -> Purchase:
        return db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one()

    service.update_settings(SettingsIn.model_validate({"cancellation": {"mode": "request"},
                                                      "refunds": {"mode": "request"}}))
    refund = submit_refund(payment("DEMO-1002"), reason=REASON)
    cancellation = submit_cancellation(purchase("DEMO-1003"), reason="Our team moved to another tool.")
    service.update_settings(SettingsIn.model_validate({"refunds": {"mode": "automatic"}}))
    set_sandbox_faults({"refund": 1})
    failed = submit_refund(payment("DEMO-1001"), reason="Charged after I cancelled")
    return {"refund": refund.ticket_id, "cancellation": cancellation.ticket_id, "failed": failed.ticket_id}


@pytest.fixture
def live_desk(database_url, tmp_path) -> Iterator[tuple[str, dict[str, int]]]:
    """The demo helpdesk with its seed data and three tickets, served on a free port: (base URL, tickets)."""
    from plugin.demo import create_app
    from plugin.demo.seed import seed_demo
    from plugin.schema import init_db

    app = create_app({"TESTING": True, "SECRET_KEY": "desk-browser-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "MAIL_SUPPRESS_SEND": True}, instance_path=str(tmp_path / "demo-instance"))
    with app.app_context():
        init_db()
        seed_demo()
        tickets = make_tickets()
    try:
        with serving(app) as url:
            yield url, tickets
    finally:
        with app.app_context():
            app.extensions["sqlalchemy"].session.remove()
            app.extensions["sqlalchemy"].engine.dispose()


def signed_in(browser, base_url: str, width: int):  # noqa: F811  (the browser fixture)
    """A page of a new browser context ``width`` px wide, with the demo agent signed in at the desk."""
    from plugin.demo.settings import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD

    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(base_url + "/desk/login")
    page.get_by_label("Email").fill(DEMO_AGENT_EMAIL)
    page.get_by_label("Password").fill(DEMO_AGENT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Ticket queue").wait_for()
    return context, page


def _top(locator) -> float:
    box = locator.bounding_box()
    assert box is not None, "the element is on the page and visible"
    return box["y"]


def _rgb(page, locator, prop: str = "backgroundColor") -> tuple[int, ...]:
    value = locator.evaluate(f"el => getComputedStyle(el).{prop}")
    return tuple(int(part) for part in value[value.index("(") + 1:value.index(")")].split(",")[:3])


@pytest.mark.parametrize("width", WIDTHS)
def test_every_desk_page_fits_the_screen(browser, live_desk, width):  # noqa: F811
    url, tickets = live_desk
    context, page = signed_in(browser, url, width)
    shots, device = screenshot_dir(), "desktop" if width > 400 else "phone"
    pages = {"queue": "/desk/", "ticket": f"/desk/tickets/{tickets['refund']}",
             "cancellation": f"/desk/tickets/{tickets['cancellation']}", "failed": f"/desk/tickets/{tickets['failed']}",
             "leads": "/desk/leads?q=ann", "order": "/desk/orders/DEMO-1001"}
    for name, path in pages.items():
        page.goto(url + path)
        assert page.locator(".sb-desk").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        if name in ("queue", "ticket", "leads", "order"):
            shot = shots / f"desk-{name}-{device}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_ticket_leads_with_its_summary_then_one_main_action(browser, live_desk, width):  # noqa: F811
    url, tickets = live_desk
    context, page = signed_in(browser, url, width)
    page.goto(url + f"/desk/tickets/{tickets['refund']}")
    summary = page.get_by_role("region", name="Summary")
    for fact in ("Ann Lee", "ann@example.com", "DEMO-1002", "Email Marketing Course", "$199.00 remaining",
                 "days left", "Visa ending in 4242"):
        assert summary.get_by_text(fact).first.is_visible(), fact
    reason = summary.locator("blockquote")
    assert reason.inner_text().startswith("I bought the course twice by mistake.\nPlease refund this one.\n")
    assert "Waiting for an agent" in page.locator("main").inner_text()
    assert "ticketed" not in page.locator("main").inner_text()

    actions = page.get_by_role("region", name="What to do")
    refund = actions.get_by_role("button", name="Refund in full")
    part = actions.get_by_role("button", name="Refund part")
    decline = actions.get_by_role("button", name="Decline the request")
    assert _top(summary.get_by_text("Customer’s reason")) < _top(actions) < _top(refund) < _top(part)
    assert _top(refund) < _top(decline)
    assert _rgb(page, refund) != _rgb(page, decline)  # Decline does not look like Refund
    assert _rgb(page, decline, "color")[0] > 120 and _rgb(page, decline)[:3] == (255, 255, 255)
    assert _rgb(page, part) == (255, 255, 255)  # the others are outlined, the main action filled
    assert refund.bounding_box()["height"] >= part.bounding_box()["height"]
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_bad_partial_amount_is_visibly_an_error_and_the_confirm_names_the_amount(
        browser, live_desk, width):  # noqa: F811
    url, tickets = live_desk
    context, page = signed_in(browser, url, width)
    asked: list[str] = []

    def answer(dialog, accept: bool = True) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    # Refund in full, dismissed: the question names the amount, and nothing happens
    page.goto(url + f"/desk/tickets/{tickets['failed']}")
    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.get_by_role("button", name="Refund in full").click()
    assert asked and asked[-1].startswith("Refund $49.00 in full (payment DEMO-1001-")
    assert page.get_by_role("button", name="Refund in full").is_visible()
    calls = page.get_by_role("region", name="Payment processor calls")
    assert "Failed: Processor not answering" in calls.inner_text()

    # a partial refund of more than remains: asked with the amount typed, then refused, as an error
    page.goto(url + f"/desk/tickets/{tickets['refund']}")
    page.get_by_label("Amount to refund").fill("250")
    page.once("dialog", answer)
    page.get_by_role("button", name="Refund part").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert asked[-1].startswith("Refund $250 of the $199.00 remaining (payment DEMO-1002-")
    assert "Not done." in alert.inner_text() and "more than remains" in alert.inner_text()
    assert page.get_by_label("Amount to refund").get_attribute("aria-invalid") == "true"
    error_bg, error_border = _rgb(page, alert), _rgb(page, alert, "borderLeftColor")
    assert error_bg[0] > error_bg[1] and error_border[0] > 2 * error_border[1]  # red, not grey
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    # a good one: a success, which looks otherwise
    page.get_by_label("Amount to refund").fill("20.00")
    page.once("dialog", answer)
    page.get_by_role("button", name="Refund part").click()
    notice = page.locator(".sb-desk [role=status]")
    notice.wait_for()
    assert "Done: The payment was refunded in part." in notice.inner_text()
    assert asked[-1].startswith("Refund $20.00 of the $199.00 remaining")
    success_bg, success_border = _rgb(page, notice), _rgb(page, notice, "borderLeftColor")
    assert success_bg != error_bg and success_border != error_border
    assert success_bg[1] > success_bg[0] and success_border[1] > success_border[0]  # green
    assert page.get_by_role("alert").count() == 0
    assert "Partially refunded" in page.locator("main").inner_text()
    context.close()

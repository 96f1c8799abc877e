"""My Orders costs the same number of SQL statements however many purchases and payments a lead has,
and reads the same rows however long each purchase's payment history is (it shows a page of it)."""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select
from sqlalchemy.engine.cursor import CursorFetchStrategy

from plugin.db import db, utcnow
from plugin.ledger.models import Lead
from plugin.presenters import purchases_for_lead
from plugin.workflows import service
from tests.agent_support import ALICE, agent_app, agent_client, days_ago, shop  # noqa: F401  (fixtures)
from tests.conftest import Customer


@contextmanager
def counting_statements():
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def counting_rows(monkeypatch):
    """Rows the app fetches from the database (every SELECT's result, whatever reads it), in ``found[0]``."""
    found = [0]
    for name in ("fetchone", "fetchmany", "fetchall"):
        original = getattr(CursorFetchStrategy, name)

        def counted(self, *args, _original=original, **kwargs):
            rows = _original(self, *args, **kwargs)
            found[0] += (rows is not None) if not isinstance(rows, list) else len(rows)
            return rows

        monkeypatch.setattr(CursorFetchStrategy, name, counted)
    try:
        yield found
    finally:
        monkeypatch.undo()


def _lead_with(ledger, email: str, purchases: int, payments_each: int) -> None:
    start = utcnow() - timedelta(days=400)
    for i in range(purchases):
        order_id = f"{email.split('@')[0]}-{i}"
        ledger.order(order_id, email=email, purchased_at=(start + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        for j in range(payments_each):
            paid = start + timedelta(days=i, hours=j)
            ledger.payment(order_id, f"{order_id}-p{j}", paid.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_statements_do_not_grow_with_purchases_or_payments(app, ledger):
    ledger.settings(enabled=True, cancellation={"mode": "request"}, refunds={"mode": "request"})
    ledger.price()
    _lead_with(ledger, "one@example.com", purchases=1, payments_each=1)
    _lead_with(ledger, "many@example.com", purchases=30, payments_each=5)
    with app.app_context():
        # Requests with history on the big lead, so every query has rows to return.
        big = db.session.execute(select(Lead).where(Lead.email_normalized == "many@example.com")).scalar_one()
        small = db.session.execute(select(Lead).where(Lead.email_normalized == "one@example.com")).scalar_one()
        from plugin.ledger.service import get_purchase

        service.submit_cancellation(get_purchase("many-3"))
        service.submit_cancellation(get_purchase("one-0"))
        small_id, big_id = small.id, big.id
        db.session.expire_all()

        with counting_statements() as few:
            small_view = purchases_for_lead(small_id)
        db.session.expire_all()
        with counting_statements() as many:
            big_view = purchases_for_lead(big_id)
    assert len(small_view) == 1 and len(big_view) == 30
    assert sum(len(p["payments"]) for p in big_view) == 150
    assert len(few) == len(many), (few, many)


#: Rows My Orders may read per purchase shown, beyond a one-purchase lead's: the purchase and its price
#: point, its card, its count of payments, its page of payments (5) and their invoices (5).
ROWS_PER_PURCHASE = 13


def test_my_orders_pages_cost_the_same_statements_and_rows_whatever_the_history_length(app, ledger, monkeypatch):
    """1 purchase x 1 payment, 30 x 6 (one past the page) and 30 x 50: the same statements for each page,
    and 30 x 50 reads exactly the rows 30 x 6 reads: rows grow with the purchases shown, never with the
    payments of a purchase beyond its page."""
    ledger.settings(enabled=True, portal="both")
    ledger.price()
    page = app.config["SELF_BILLING_PAYMENTS_PAGE_SIZE"]
    leads = {"one": (1, 1), "mid": (30, page + 1), "many": (30, 50)}
    for name, (purchases, payments_each) in leads.items():
        _lead_with(ledger, f"{name}@example.com", purchases, payments_each)
    cost: dict[str, dict[str, tuple[int, int]]] = {}
    for name in leads:
        customer = Customer(app.test_client())
        assert customer.login(f"{name}-0", f"{name}@example.com").status_code == 200
        cost[name] = {}
        for what, path in (("json", "/billing/api/portal/purchases"), ("html", "/billing/portal/")):
            customer.client.get(path)  # warm: the first request of a session may refresh it
            with app.app_context(), counting_statements() as statements, counting_rows(monkeypatch) as rows:
                answer = customer.client.get(path)
            assert answer.status_code == 200
            cost[name][what] = (len(statements), rows[0])
        body = customer.client.get("/billing/api/portal/purchases").get_json()
        assert all(len(p["payments"]) == min(page, leads[name][1]) for p in body["purchases"])
        assert {p["payments_total"] for p in body["purchases"]} == {leads[name][1]}
    for what in ("json", "html"):
        (one_statements, one_rows), (mid_statements, mid_rows), (many_statements, many_rows) = (
            cost[name][what] for name in ("one", "mid", "many"))
        assert one_statements == mid_statements == many_statements, cost
        assert many_rows == mid_rows, cost  # not one row more for 44 more payments per purchase
        # 29 more purchases, and the one lead's purchase has 1 payment and invoice, not a page of them
        assert many_rows - one_rows <= 29 * ROWS_PER_PURCHASE + 2 * (page - 1), cost
    # The page shows the latest purchases only: rows for SELF_BILLING_PURCHASES_PAGE_SIZE of the 30, plus
    # the one purchase that says an older page exists.
    shown = app.config["SELF_BILLING_PURCHASES_PAGE_SIZE"]
    assert shown < 30
    assert cost["many"]["html"][1] - cost["one"]["html"][1] <= (shown - 1) * ROWS_PER_PURCHASE + 2 * (page - 1) + 1, cost


#: What a customer's refund request that becomes a ticket may cost, the whole HTTP request included
#: (session, rate-limit counters, ownership, rules, the request, its history, the ticket and the email).
REFUND_BY_REQUEST_STATEMENTS = 20


def test_a_refund_request_that_becomes_a_ticket_runs_at_most_20_statements(app, ledger, customer):
    ledger.settings(enabled=True, refunds={"mode": "request"})
    ledger.price()
    ledger.order("ORD-1", email="ann@example.com", purchased_at=utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    ledger.payment("ORD-1", "PAY-0", utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    ledger.payment("ORD-1", "PAY-1", utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert customer.login("ORD-1").status_code == 200
    # The shop's first ticket creates its department: counted is a refund request on a shop that runs.
    assert customer.post("/payments/PAY-0/refund", json={"reason": "First"}).status_code == 202
    with app.app_context(), counting_statements() as statements:
        answer = customer.post("/payments/PAY-1/refund", json={"reason": "Bought twice"})
    assert answer.status_code in (200, 201, 202), answer.get_json()
    assert answer.get_json()["request"]["state"] == "ticketed"
    assert len(statements) <= REFUND_BY_REQUEST_STATEMENTS, "\n".join(statements)


def test_agent_pages_cost_the_same_statements_however_many_tickets_and_payments(agent_app, agent_client, shop):
    """The queue's first page, a ticket, and an exact lead lookup: the same statements with 3 tickets as with
    23, and with a purchase of 1 payment as of 41 (the agent's views read each in a fixed number of queries)."""
    shop.subscription()
    api = "/billing/api/agent"

    def refund_tickets(start: int, n: int) -> list[int]:
        made = []
        for k in range(start, start + n):
            shop.ledger.order(f"ORD-Q{k}", email=f"q{k}@example.com")
            shop.ledger.payment(f"ORD-Q{k}", f"PAY-Q{k}", days_ago(2))
            made.append(shop.customer_asks_refund(f"PAY-Q{k}")["ticket_id"])
        return made

    def cost(ticket_id: int) -> dict[str, int]:
        found = {}
        for what, path in (("queue", f"{api}/tickets?status=open&limit=2"), ("ticket", f"{api}/tickets/{ticket_id}"),
                           ("lookup", f"{api}/leads?q=ann@example.com")):
            assert agent_client.get(path, headers=ALICE).status_code == 200  # warm
            with agent_app.app_context(), counting_statements() as statements:
                assert agent_client.get(path, headers=ALICE).status_code == 200
            found[what] = len(statements)
        return found

    first = refund_tickets(0, 3)[0]
    few = cost(first)
    refund_tickets(3, 20)
    for n in range(40):  # a long history on the first ticket's purchase
        shop.ledger.payment("ORD-Q0", f"PAY-Q0-{n}", days_ago(3 + n))
    many = cost(first)
    assert few == many, (few, many)


def test_a_portal_request_does_not_read_the_sellers_logo(app, ledger, monkeypatch):
    """Every request reads the settings (the door check); the logo, up to tens of kilobytes, is read only by
    documents and the settings API."""
    import base64

    from tests.conftest import ADMIN_TOKEN
    from tests.test_invoices import tiny_png

    ledger.settings(enabled=True, portal="both")
    ledger.price()
    _lead_with(ledger, "one@example.com", purchases=1, payments_each=1)
    logo = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    admin = app.test_client()
    answer = admin.put("/billing/api/admin/settings", json={"seller": {"logo": logo}},
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 200 and answer.get_json()["seller"]["logo"] == logo
    customer = Customer(app.test_client())
    assert customer.login("one-0", "one@example.com").status_code == 200
    for path in ("/billing/api/portal/purchases", "/billing/portal/"):
        customer.client.get(path)
        with app.app_context(), counting_statements() as statements:
            assert customer.client.get(path).status_code == 200
        settings_reads = [s for s in statements if "FROM sb_settings" in s]
        assert settings_reads and not any(re.search(r"sb_settings\.logo\b(?!_)", s) for s in settings_reads), settings_reads

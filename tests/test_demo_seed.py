"""``flask --app plugin.demo self-billing seed-demo``: a consistent demo data set, loaded twice without change, with
logins that work; the demo app's command only, and never into a database that holds a real shop's orders."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from plugin.db import Base, utcnow
from plugin.demo import create_app
from plugin.demo.seed import ORDERS
from plugin.demo.settings import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
from plugin.ledger.models import Payment, Purchase, Refund
from plugin.ledger.periods import add_interval
from plugin.ledger.service import get_settings
from tests.conftest import Ledger


@pytest.fixture
def demo(database_url, tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "seed-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "MAIL_SUPPRESS_SEND": True}, instance_path=str(tmp_path / "instance"))
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


def seed(app) -> str:
    result = app.test_cli_runner().invoke(args=["self-billing", "seed-demo"])
    assert result.exit_code == 0, result.output
    return result.output


def row_counts(app) -> dict[str, int]:
    session = app.extensions["sqlalchemy"].session
    with app.app_context():
        return {table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
                for table in Base.metadata.sorted_tables}


def test_seed_prints_logins_urls_and_modes(demo):
    output = seed(demo)
    for order in ORDERS:
        assert order.order_id in output and order.email in output
    assert "refunds: automatic" in output and "cancellations: automatic" in output
    assert "http://127.0.0.1:5000/help/my-orders" in output
    assert "http://127.0.0.1:5000/billing/portal/" in output
    assert f"{DEMO_AGENT_EMAIL} / {DEMO_AGENT_PASSWORD}" in output
    assert "4242 4242 4242 4242" in output


def test_seeding_twice_changes_nothing(demo):
    seed(demo)
    first = row_counts(demo)
    with demo.app_context():
        snapshot = demo.extensions["sqlalchemy"].session.execute(
            select(Purchase.order_id, Purchase.status, Purchase.next_payment_at, Purchase.cancels_at)
            .order_by(Purchase.order_id)
        ).all()

    seed(demo)

    assert row_counts(demo) == first
    with demo.app_context():
        again = demo.extensions["sqlalchemy"].session.execute(
            select(Purchase.order_id, Purchase.status, Purchase.next_payment_at, Purchase.cancels_at)
            .order_by(Purchase.order_id)
        ).all()
    assert again == snapshot
    assert first["sb_leads"] >= 5 and first["sb_purchases"] == len(ORDERS)


def test_demo_data_is_consistent(demo):
    seed(demo)
    now = utcnow()
    with demo.app_context():
        session = demo.extensions["sqlalchemy"].session
        purchases = session.execute(select(Purchase)).scalars().all()
        kinds = {(p.kind, p.status, p.payment_type) for p in purchases}
        assert ("subscription", "cancelled", "card") in kinds
        assert ("subscription", "cancel_scheduled", "card") in kinds
        assert ("subscription", "active", "paypal") in kinds
        assert ("one_time", "refunded", "card") in kinds
        assert {p.price_point.interval for p in purchases} >= {"month", "year", None}
        for purchase in purchases:
            payments = session.execute(
                select(Payment).where(Payment.purchase_id == purchase.id).order_by(Payment.paid_at)
            ).scalars().all()
            assert payments, purchase.order_id
            assert all(p.paid_at <= now for p in payments)
            if purchase.kind == "one_time":
                assert len(payments) == 1 and purchase.next_payment_at is None
                continue
            price = purchase.price_point
            assert payments[0].paid_at == purchase.purchased_at
            for earlier, later in zip(payments, payments[1:]):
                assert later.paid_at == add_interval(earlier.paid_at, price.interval, price.interval_count)
            follows = add_interval(payments[-1].paid_at, price.interval, price.interval_count)
            if purchase.status == "active":
                assert purchase.next_payment_at == follows, purchase.order_id
                assert purchase.next_payment_at > now, purchase.order_id
            elif purchase.status == "cancel_scheduled":
                assert purchase.cancels_at == follows
                assert all(p.paid_at < purchase.cancels_at for p in payments)
            else:
                assert purchase.status == "cancelled"
                assert purchase.next_payment_at is None and purchase.cancelled_at is not None
                assert all(p.paid_at <= purchase.cancelled_at for p in payments)
        yearly = [p for p in purchases if p.price_point.interval == "year" and p.status == "active"]
        monthly = [p for p in purchases if p.price_point.interval == "month" and p.status == "active"]
        assert yearly and monthly
        assert max(len(session.execute(select(Payment.id).where(Payment.purchase_id == p.id)).all())
                   for p in monthly) >= 12
        for payment in session.execute(select(Payment).where(Payment.refunded_cents > 0)).scalars():
            refunded = session.execute(
                select(func.sum(Refund.amount_cents)).where(Refund.payment_id == payment.id)
            ).scalar_one()
            assert refunded == payment.refunded_cents
            assert payment.status == ("refunded" if payment.refunded_cents == payment.amount_cents
                                      else "partially_refunded")


def test_printed_logins_work_in_the_portal(demo):
    seed(demo)
    client = demo.test_client()
    for order in ORDERS[:3]:
        answer = client.post("/billing/api/portal/login", json={"order_id": order.order_id, "email": order.email})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        purchases = client.get("/billing/api/portal/purchases").get_json()["purchases"]
        assert order.order_id in {p["order_id"] for p in purchases}
        client.post("/billing/api/portal/logout", headers={"X-CSRFToken": answer.get_json()["csrf_token"]})



def test_on_a_hosts_shop_database_seed_demo_changes_nothing(make_app):
    """Every host has ``self-billing seed-demo`` (contract section 1), and on a shop's own database it
    refuses: it would switch the shop to automatic refunds."""
    host = make_app()
    assert {"init-db", "seed-demo", "worker", "tick"} <= set(host.cli.commands["self-billing"].commands)
    shop = Ledger(host)
    shop.settings(enabled=True, cancellation={"mode": "request"}, refunds={"mode": "request"})
    shop.price("pro-monthly")
    shop.order("ORD-7001", email="real@example.com")
    result = host.test_cli_runner().invoke(args=["self-billing", "seed-demo"])
    assert result.exit_code == 3 and "(ORD-7001)" in result.output, result.output
    with host.app_context():
        assert (get_settings().refund_mode, get_settings().cancellation_mode) == ("request", "request")


def test_seeding_refuses_a_database_with_a_real_shops_orders(demo):
    shop = Ledger(demo)
    shop.settings(enabled=True, cancellation={"mode": "request"}, refunds={"mode": "request"})
    shop.price("pro-monthly")
    shop.order("ORD-7001", email="real@example.com")
    before = row_counts(demo)

    result = demo.test_cli_runner().invoke(args=["self-billing", "seed-demo"])

    assert result.exit_code == 3, result.output
    output = " ".join(result.output.split())
    assert "Not seeding" in output and "holds 1 order that is not the demo's (ORD-7001)" in output, output
    assert "empty database" in output and "flask --app plugin.demo self-billing seed-demo" in output, output
    assert row_counts(demo) == before
    with demo.app_context():
        session = demo.extensions["sqlalchemy"].session
        assert session.execute(select(Purchase.order_id)).scalars().all() == ["ORD-7001"]
        settings = get_settings()
        assert (settings.refund_mode, settings.cancellation_mode) == ("request", "request")


def test_a_real_order_among_the_demos_still_stops_a_second_seeding(demo):
    seed(demo)
    Ledger(demo).order("ORD-7002", email="real@example.com", price_point="pro-monthly")
    result = demo.test_cli_runner().invoke(args=["self-billing", "seed-demo"])
    assert result.exit_code == 3 and "(ORD-7002)" in result.output, result.output

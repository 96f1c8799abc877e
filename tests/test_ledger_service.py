"""The merchant's Python API: orders, payments and next payment dates."""
from __future__ import annotations

from plugin.db import db
from plugin.ledger import service
from plugin.ledger.models import Lead, Payment, PaymentMethod

from .conftest import utc


def test_subscription_next_payment_follows_last_payment(app, ledger):
    ledger.price()
    ledger.order("ORD-1", purchased_at="2026-01-31T09:00:00Z")
    ledger.payment("ORD-1", "PAY-1", "2026-01-31T09:00:00Z")
    ledger.payment("ORD-1", "PAY-2", "2026-02-28T09:00:00Z")
    with app.app_context():
        purchase = service.get_purchase("ORD-1")
        assert purchase.kind == "subscription" and purchase.status == "active"
        assert purchase.next_payment_at == utc(2026, 3, 28, 9)


def test_same_payment_twice_is_one_payment_and_snapshots_address(app, ledger):
    ledger.price()
    ledger.order("ORD-1")
    ledger.payment("ORD-1", "PAY-1", "2026-10-01T10:00:00Z")
    ledger.payment("ORD-1", "PAY-1", "2026-10-01T10:00:00Z")
    with app.app_context():
        payments = db.session.query(Payment).all()
        assert len(payments) == 1
        assert payments[0].amount_cents == 4900
        assert payments[0].bill_to["line1"] == "1 Main St"


def test_lead_email_is_case_insensitive_and_card_kept_once(app, ledger):
    ledger.price()
    ledger.order("ORD-1", email="Ann@Example.com")
    ledger.order("ORD-2", email="  ann@example.COM ")
    ledger.order("ORD-2", email="ann@example.com")
    with app.app_context():
        assert db.session.query(Lead).count() == 1
        assert db.session.query(PaymentMethod).filter_by(is_default=True).count() == 2

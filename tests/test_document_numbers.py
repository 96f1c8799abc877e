"""Invoice numbers: one per completed payment, from an unbroken sequence, under concurrency on SQLite and
PostgreSQL; a payment that rolls back gives its number back; ``init-db`` numbers payments recorded before
invoices were numbered, oldest payment first."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy import delete, select

from plugin.db import db
from plugin.invoices.documents import DocumentCounter, Invoice
from plugin.ledger import service
from plugin.ledger.models import Payment

YEAR = datetime.now(timezone.utc).year


def _numbers(app) -> list[str]:
    with app.app_context():
        return list(db.session.execute(select(Invoice.number).order_by(Invoice.number)).scalars())


def _shop(ledger, orders: int) -> None:
    ledger.settings(enabled=True)
    ledger.price()
    for i in range(orders):
        ledger.order(f"ORD-{i}", email=f"c{i}@example.com", purchased_at="2026-01-05T10:00:00Z")


def test_twenty_concurrent_payments_take_twenty_consecutive_numbers(app, ledger, admin_headers):
    _shop(ledger, 20)
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def pay(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        answer = client.post(f"/billing/api/admin/orders/ORD-{i}/payments",
                             json={"payment_id": f"PAY-{i}", "paid_at": "2026-02-05T10:00:00Z"},
                             headers=admin_headers)
        if answer.status_code not in (200, 201):
            errors.append(AssertionError(answer.get_json()))

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _numbers(app) == [f"INV-{YEAR}-{n:06d}" for n in range(1, 21)]


def test_a_payment_that_rolls_back_gives_its_number_back(app, ledger, monkeypatch):
    _shop(ledger, 1)
    ledger.payment("ORD-0", "PAY-A", "2026-02-05T10:00:00Z")

    def broken(_purchase):
        raise RuntimeError("the database went away after the number was taken")

    monkeypatch.setattr(service, "_refresh_next_payment", broken)
    with app.app_context():
        try:
            service.record_payment("ORD-0", {"payment_id": "PAY-B", "paid_at": "2026-03-05T10:00:00Z"})
        except RuntimeError:
            db.session.rollback()
    monkeypatch.undo()
    ledger.payment("ORD-0", "PAY-C", "2026-03-05T10:00:00Z")
    assert _numbers(app) == [f"INV-{YEAR}-000001", f"INV-{YEAR}-000002"]


def test_init_db_numbers_earlier_payments_oldest_first(app, ledger):
    _shop(ledger, 1)
    for payment_id, paid_at in (("PAY-LATE", "2026-04-05T10:00:00Z"), ("PAY-EARLY", "2026-02-05T10:00:00Z")):
        ledger.payment("ORD-0", payment_id, paid_at)
    with app.app_context():  # as a database from before numbering: payments without invoices
        db.session.execute(delete(Invoice))
        db.session.execute(delete(DocumentCounter))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["self-billing", "init-db"])
    assert result.exit_code == 0 and "Numbered 2 invoice(s)" in result.output, result.output
    with app.app_context():
        by_payment = dict(db.session.execute(
            select(Payment.payment_id, Invoice.number).join(Invoice, Invoice.payment_id == Payment.id)).all())
    assert by_payment == {"PAY-EARLY": f"INV-{YEAR}-000001", "PAY-LATE": f"INV-{YEAR}-000002"}
    again = app.test_cli_runner().invoke(args=["self-billing", "init-db"])
    assert "Numbered" not in again.output and _numbers(app) == sorted(by_payment.values())


def test_the_refund_email_names_the_credit_note(app, ledger):
    from plugin.notifications.models import OutboxEmail
    from plugin.notifications.templates import render_email
    from plugin.workflows.service import agent_refund

    _shop(ledger, 1)
    ledger.payment("ORD-0", "PAY-A", "2026-02-05T10:00:00Z")
    with app.app_context():
        payment = db.session.execute(select(Payment).where(Payment.payment_id == "PAY-A")).scalar_one()
        agent_refund(payment, "agent@example.com", "5.00")
        row = db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "refund_done")).scalar_one()
        assert row.context["extra"]["credit_note"] == f"CN-{YEAR}-000001"
        rendered = render_email("refund_done", row.context)
    assert f"Credit note: CN-{YEAR}-000001" in str(rendered)

"""Invoice numbers: one per completed payment, from an unbroken sequence, under concurrency on SQLite and
PostgreSQL; a payment that rolls back gives its number back; ``init-db`` numbers payments recorded before
invoices were numbered, oldest payment first."""
from __future__ import annotations

import os
import select as select_fd
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, select

from plugin.db import db
from plugin.invoices.documents import DocumentCounter, Invoice
from plugin.ledger import service
from plugin.ledger.models import Payment
from tests.parts import need_wkhtmltopdf
from tests.test_invoices import pdf_text

YEAR = datetime.now(timezone.utc).year


def _numbers(app) -> list[str]:
    with app.app_context():
        return list(db.session.execute(select(Invoice.number).order_by(Invoice.number)).scalars())


def _shop(ledger, orders: int) -> None:
    ledger.settings(enabled=True)
    ledger.price()
    for i in range(orders):
        ledger.order(f"ORD-{i}", email=f"c{i}@example.com", purchased_at="2026-01-05T10:00:00Z")


def test_two_hundred_concurrent_payments_take_numbers_one_to_two_hundred(app, ledger, admin_headers):
    _shop(ledger, 200)
    errors: list[BaseException] = []
    barrier = threading.Barrier(200)

    def pay(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        answer = client.post(f"/billing/api/admin/orders/ORD-{i}/payments",
                             json={"payment_id": f"PAY-{i}", "paid_at": "2026-02-05T10:00:00Z"},
                             headers=admin_headers)
        if answer.status_code not in (200, 201):
            errors.append(AssertionError(answer.get_json()))

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _numbers(app) == [f"INV-{YEAR}-{n:06d}" for n in range(1, 201)]


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


#: A recorder process: records payments of its own order in a loop through the Python API, printing
#: "paid" after each commit. With "hang" it stops inside its first payment's transaction, after the
#: invoice number was taken and before the commit, and says "numbered" (then it is killed there).
RECORDER = """
import os, sys, time
from flask import Flask
from plugin import SelfBilling
from plugin.ledger import service

app = Flask("recorder", instance_path=os.environ["INSTANCE"])
app.config.update(SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"], SECRET_KEY="x", MAIL_SUPPRESS_SEND=True,
                  SELF_BILLING_ADMIN_TOKEN="x")
SelfBilling(app)
worker, mode = sys.argv[1], sys.argv[2]
if mode == "hang":
    def hang(_purchase):
        print("numbered", flush=True)
        time.sleep(120)
    service._refresh_next_payment = hang
with app.app_context():
    for i in range(100000):
        service.record_payment(f"ORD-{worker}", {"payment_id": f"PAY-{worker}-{i}",
                                                "paid_at": f"2026-02-05T10:{i // 60 % 60:02d}:{i % 60:02d}Z"})
        print("paid", flush=True)
"""


def _start_recorder(database_url: str, tmp_path, worker: int, mode: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "INSTANCE": str(tmp_path / "instance"),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen([sys.executable, "-c", RECORDER, str(worker), mode], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _wait_for(process: subprocess.Popen, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select_fd.select([process.stdout], [], [], 0.5)
        if ready and process.stdout.readline().strip() == word:
            return
    raise AssertionError(f"the recorder never said {word!r}")


def test_killed_recorders_leave_no_gap_no_repeat_and_a_renderable_invoice(app, ledger, database_url, tmp_path):
    """Four processes record payments while one is killed holding a number it never committed; then all
    are killed at once, mid-flight. The numbers are still 1..N for the N payments, one each, the next
    payment takes N+1, and the last committed payment's invoice renders afterwards."""
    _shop(ledger, 5)
    recorders = [_start_recorder(database_url, tmp_path, worker, "loop") for worker in range(4)]
    try:
        for recorder in recorders:
            _wait_for(recorder, "paid")
        hanging = _start_recorder(database_url, tmp_path, 4, "hang")
        recorders.append(hanging)
        _wait_for(hanging, "numbered")
        hanging.kill()  # inside the transaction, with its number taken: the database gives it back
        hanging.wait()
        time.sleep(0.5)
        for recorder in recorders:
            recorder.kill()
    finally:
        for recorder in recorders:
            recorder.kill()
            recorder.wait()
            recorder.stdout.close()
    with app.app_context():
        rows = db.session.execute(
            select(Payment.payment_id, Invoice.number).outerjoin(Invoice, Invoice.payment_id == Payment.id)).all()
    assert rows and all(number is not None for _payment, number in rows)
    assert not any(payment.startswith("PAY-4-") for payment, _number in rows)  # the killed one left nothing
    numbers = sorted(number for _payment, number in rows)
    assert numbers == [f"INV-{YEAR}-{n:06d}" for n in range(1, len(rows) + 1)]
    ledger.payment("ORD-4", "PAY-AFTER", "2026-03-05T10:00:00Z")
    assert _numbers(app)[-1] == f"INV-{YEAR}-{len(rows) + 1:06d}"

    need_wkhtmltopdf()
    last = max(rows, key=lambda row: row[1])
    app.extensions["self_billing"].agent_loader = lambda: "agent@example.com"
    answer = app.test_client().get(f"/billing/api/agent/payments/{last[0]}/invoice.pdf")
    assert answer.status_code == 200
    assert f"Invoice number: {last[1]}" in pdf_text(answer.data)

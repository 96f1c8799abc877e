"""What the request state machine costs per request, against the rest of the request.

Compares three ways of attaching a `transitions` machine to 10,000 loaded
requests (a new Machine per request; one shared machine with add_model /
remove_model; the shared model-less machine this project uses, firing
``machine.events[name].trigger(context)``), then puts the per-request machine
cost beside one whole automatic refund through the workflow service on SQLite.

    python bench/bench_workflows.py
"""
from __future__ import annotations

import gc
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask  # noqa: E402
from transitions import EventData, Machine  # noqa: E402

from plugin import SelfBilling  # noqa: E402
from plugin.db import db, utcnow  # noqa: E402
from plugin.ledger import service as ledger  # noqa: E402
from plugin.ledger.models import Payment, Purchase, Settings  # noqa: E402
from plugin.ledger.schemas import OrderIn, PaymentIn, PricePointIn, SettingsIn  # noqa: E402
from plugin.workflows import service  # noqa: E402
from plugin.workflows.context import RequestContext  # noqa: E402
from plugin.workflows.machines import DEFINITIONS, MACHINES, STATES  # noqa: E402
from plugin.workflows.models import BillingRequest  # noqa: E402

N = 10_000


class _Row:
    """Stands for a loaded request row: what the machine touches."""

    def __init__(self) -> None:
        self.state = "requested"
        self.type = "refund"
        self.created_by = "customer"
        self.outcome = None
        self.error = None
        self.pending_event = None


def _timed(fn) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed / N * 1e6, peak / N


def per_object_machine() -> None:
    rows = [_Row() for _ in range(N)]
    for row in rows:
        Machine(model=row, states=STATES, transitions=[{"trigger": "open_ticket", "source": "requested",
                "dest": "ticketed"}], initial=row.state, auto_transitions=False)
        row.open_ticket()


def shared_add_remove() -> None:
    machine = Machine(model=None, states=STATES, transitions=[{"trigger": "open_ticket", "source": "requested",
                      "dest": "ticketed"}], initial=None, auto_transitions=False)
    rows = [_Row() for _ in range(N)]
    for row in rows:
        machine.add_model(row, initial=row.state)
        row.open_ticket()
        machine.remove_model(row)


def model_less(settings: Settings, purchase: Purchase, payment: Payment) -> None:
    machine = MACHINES["refund"]
    # Only the transition and its conditions: no callbacks with side effects for this count.
    for _ in range(N):
        row = BillingRequest(type="refund", state="requested", created_by="customer")
        ctx = RequestContext(row, purchase, payment, settings, utcnow())
        event = machine.events["open_ticket"]
        transition = event.transitions["requested"][0]
        data = EventData(machine.get_state("requested"), event, machine, ctx, args=(), kwargs={})
        assert all(c.check(data) for c in transition.conditions)
        ctx.state = transition.dest


def main() -> None:
    assert "refund" in DEFINITIONS
    tmp = tempfile.mkdtemp()
    app = Flask("bench")
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.db", SECRET_KEY="x")
    SelfBilling(app)
    with app.app_context():
        from plugin.schema import init_db

        init_db()
        ledger.update_settings(SettingsIn.model_validate({"enabled": True, "refunds": {"mode": "request"}}))
        ledger.upsert_price_point("p", PricePointIn.model_validate(
            {"product": "Bench", "amount": "10.00", "currency": "USD", "interval": None}))
        paid = (utcnow() - timedelta(days=1)).isoformat()
        address = {"name": "A", "line1": "1 St", "city": "C", "country": "US"}
        rows = []
        for i in range(200):
            ledger.upsert_order(f"B-{i}", OrderIn.model_validate({
                "email": f"b{i}@example.com", "price_point": "p", "purchased_at": paid,
                "billing_address": address, "payment_method": {"type": "paypal", "payer_email": "p@example.com"}}))
            payment, _ = ledger.record_payment(f"B-{i}", PaymentIn.model_validate({"payment_id": f"BP-{i}",
                                                                                   "paid_at": paid}))
            rows.append(payment.id)
        settings = ledger.get_settings()
        purchase = ledger.get_purchase("B-0")
        payment = db.session.get(Payment, rows[0])

        results = [
            ("new Machine per request", *_timed(per_object_machine)),
            ("shared machine, add_model/remove_model", *_timed(shared_add_remove)),
            ("shared model-less machine (this project)", *_timed(lambda: model_less(settings, purchase, payment))),
        ]
        start = time.perf_counter()
        for payment_pk in rows:
            service.submit_refund(db.session.get(Payment, payment_pk))
        whole = (time.perf_counter() - start) / len(rows) * 1e6

    print(f"{'pattern':45} {'µs / request':>13} {'bytes / request':>16}")
    for name, micros, size in results:
        print(f"{name:45} {micros:13.1f} {size:16.0f}")
    print(f"{'whole refund request to a ticket (SQLite)':45} {whole:13.1f}")
    ours = results[2][1]
    print(f"\nmachine share of a ticketed refund request: {ours / whole:.1%}")


if __name__ == "__main__":
    main()

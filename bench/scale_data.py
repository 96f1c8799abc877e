"""Builds a large Self-Billing data set fast, with bulk inserts, for the scale benchmark.

Default size: 100,000 leads, about 300,000 purchases, 1,000,000 payments,
100,000 requests with 100,000 tickets; plus one heavy lead
(``heavy@example.com``) with 30 purchases and 1,500 payments, the one the
benchmark logs in as. Rows go in through SQLAlchemy Core ``insert`` in
batches, on whatever database the app is configured with.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from sqlalchemy import delete, insert, inspect, text
from sqlalchemy.engine import Engine

from plugin.db import db
from plugin.ledger.models import Lead, Payment, PaymentMethod, PricePoint, Purchase, Settings
from plugin.ledger.periods import add_interval
from plugin.tickets.models import Department, Ticket, TicketMessage
from plugin.workflows.models import BillingRequest, RequestEvent

BATCH = 10_000
HEAVY_EMAIL = "heavy@example.com"
HEAVY_ORDER = "HEAVY-0000"
FIRST = ["Ann", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jin", "Kai", "Lena", "Mo", "Nia"]
LAST = ["Lee", "Okafor", "Smith", "Garcia", "Novak", "Tanaka", "Rossi", "Khan", "Berg", "Silva"]
ADDRESS = {"name": "Bench Customer", "line1": "1 Main St", "line2": "", "city": "Springfield",
           "region": "IL", "postal_code": "62701", "country": "US"}


#: A table of the bench's own, written last by :func:`mark_built`: a data set without its row is half-built.
MARKER_TABLE = "bench_dataset"


def sizes_for(payments: int) -> tuple[int, int, int]:
    """(leads, payments, tickets) for a number of payments, in the proportions of the full size
    (1,000,000 payments with 100,000 leads and 100,000 tickets)."""
    return max(payments // 10, 10), payments, max(payments // 10, 10)


def mark_built(engine: Engine, counts: dict[str, int], seconds: float) -> None:
    """Record that the data set is complete (the last thing a build does)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (counts TEXT, seconds FLOAT, built_at TEXT)")
        conn.exec_driver_sql(f"DELETE FROM {MARKER_TABLE}")
        conn.execute(text(f"INSERT INTO {MARKER_TABLE} (counts, seconds, built_at) VALUES (:c, :s, :at)"),
                     {"c": json.dumps(counts), "s": seconds, "at": datetime.now(timezone.utc).isoformat()})


def built_marker(engine: Engine) -> dict[str, Any] | None:
    """What :func:`mark_built` recorded ({counts, seconds, built_at}), or None for an empty or half-built set."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(MARKER_TABLE):
            return None
        row = conn.execute(text(f"SELECT counts, seconds, built_at FROM {MARKER_TABLE}")).first()
    if row is None:
        return None
    return {"counts": json.loads(row.counts), "seconds": row.seconds, "built_at": row.built_at}


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(model: Any, rows: Iterator[dict[str, Any]]) -> int:
    n = 0
    for batch in _batches(rows):
        db.session.execute(insert(model), batch)
        n += len(batch)
    db.session.commit()
    return n


def build(leads: int = 100_000, payments: int = 1_000_000, tickets: int = 100_000, seed: int = 7) -> dict[str, int]:
    """Fill an empty schema. Returns row counts."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    db.session.execute(delete(Settings))  # init_db made the defaults' row; the bench's own replaces it
    db.session.execute(insert(Settings), [{"id": 1, "enabled": True, "portal": "both",
                                          "cancellation_mode": "request", "refund_mode": "request",
                                          "department": "Billing", "updated_at": now}])
    prices = [
        {"id": 1, "code": "monthly", "product": "Pro Plan", "amount_cents": 4900, "currency": "USD",
         "interval": "month", "interval_count": 1, "cancellation": "instant", "refund_window_days": 30},
        {"id": 2, "code": "yearly", "product": "Pro Plan (yearly)", "amount_cents": 49000, "currency": "USD",
         "interval": "year", "interval_count": 1, "cancellation": "delayed", "refund_window_days": 30},
        {"id": 3, "code": "course", "product": "Video Course", "amount_cents": 19900, "currency": "USD",
         "interval": None, "interval_count": 1, "cancellation": "instant", "refund_window_days": 14},
    ]
    db.session.execute(insert(PricePoint), [dict(p, updated_at=now) for p in prices])
    db.session.execute(insert(Department), [{"id": 1, "name": "Billing"}, {"id": 2, "name": "Sales"}])
    db.session.commit()

    def lead_rows() -> Iterator[dict[str, Any]]:
        yield {"id": 1, "email": HEAVY_EMAIL, "email_normalized": HEAVY_EMAIL, "first_name": "Heavy",
               "last_name": "Buyer", "created_at": now}
        for i in range(2, leads + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first.lower()}.{last.lower()}{i}@example.com"
            yield {"id": i, "email": email, "email_normalized": email, "first_name": first, "last_name": last,
                   "created_at": now}

    counts = {"leads": _insert(Lead, lead_rows())}

    # Purchases: the heavy lead's 30, then 1-5 per other lead.
    plan: list[tuple[int, int, int, datetime]] = []  # (purchase id, lead id, price id, purchased_at)
    pid = 0
    for k in range(30):
        pid += 1
        plan.append((pid, 1, 1 if k % 3 else 2, now - timedelta(days=4 * 365 - k)))
    for lead_id in range(2, leads + 1):
        for _ in range(rng.randint(1, 5)):
            pid += 1
            plan.append((pid, lead_id, rng.choice((1, 1, 2, 3)), now - timedelta(days=rng.randint(1, 3 * 365))))

    price_by_id = {p["id"]: p for p in prices}

    def purchase_rows() -> Iterator[dict[str, Any]]:
        for purchase_id, lead_id, price_id, bought in plan:
            price = price_by_id[price_id]
            kind = "one_time" if price["interval"] is None else "subscription"
            yield {"id": purchase_id, "order_id": HEAVY_ORDER if purchase_id == 1 else f"ORD-{purchase_id:07d}",
                   "lead_id": lead_id, "price_point_id": price_id, "kind": kind,
                   "status": "paid" if kind == "one_time" else "active", "product": price["product"],
                   "amount_cents": price["amount_cents"], "currency": "USD", "purchased_at": bought,
                   "next_payment_at": None, "billing_address": ADDRESS, "payment_type": "card",
                   "lock_version": 0, "created_at": now, "updated_at": now}

    counts["purchases"] = _insert(Purchase, purchase_rows())

    def card_rows() -> Iterator[dict[str, Any]]:
        for purchase_id, _lead, _price, _bought in plan:
            yield {"purchase_id": purchase_id, "type": "card", "processor_token": f"pm_bench_{purchase_id}",
                   "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030, "is_default": True,
                   "created_at": now}

    counts["payment_methods"] = _insert(PaymentMethod, card_rows())

    # Payments: 50 per heavy purchase, the rest spread over everyone else's purchases.
    per_purchase: dict[int, int] = {p[0]: 1 for p in plan}
    for purchase_id in range(1, 31):
        per_purchase[purchase_id] = 50
    remaining = payments - sum(per_purchase.values())
    others = [p[0] for p in plan[30:] if price_by_id[p[2]]["interval"] is not None]
    while remaining > 0 and others:
        per_purchase[rng.choice(others)] += 1
        remaining -= 1

    def payment_rows() -> Iterator[dict[str, Any]]:
        serial = 0
        for purchase_id, _lead, price_id, bought in plan:
            price = price_by_id[price_id]
            paid = bought
            for _ in range(per_purchase[purchase_id]):
                serial += 1
                end = add_interval(paid, price["interval"], 1) if price["interval"] else None
                yield {"payment_id": f"PAY-{serial:08d}", "purchase_id": purchase_id,
                       "amount_cents": price["amount_cents"], "currency": "USD", "paid_at": paid, "status": "paid",
                       "refunded_cents": 0, "bill_to": ADDRESS, "period_start": paid if end else None,
                       "period_end": end, "created_at": now}
                if end is None:
                    break
                paid = end if price["interval"] != "year" else paid + timedelta(days=7)

    counts["payments"] = _insert(Payment, payment_rows())

    # Tickets: a cancellation request ticketed for the first `tickets` subscriptions of other leads.
    ticketed = [p for p in plan[30:] if price_by_id[p[2]]["interval"] is not None][:tickets]

    def request_rows() -> Iterator[dict[str, Any]]:
        for n, (purchase_id, lead_id, _price, _bought) in enumerate(ticketed, start=1):
            yield {"id": n, "public_id": f"req_bench{n:08d}", "type": "cancellation", "lead_id": lead_id,
                   "purchase_id": purchase_id, "state": "ticketed", "open_slot": f"cancellation:{purchase_id}",
                   "created_by": "customer", "reason": "Benchmark", "currency": "USD", "ticket_id": None,
                   "created_at": now - timedelta(minutes=n), "updated_at": now}

    counts["requests"] = _insert(BillingRequest, request_rows())

    def event_rows() -> Iterator[dict[str, Any]]:
        for n in range(1, len(ticketed) + 1):
            yield {"request_id": n, "from_state": "new", "to_state": "requested", "event": "submit",
                   "at": now, "actor": "customer", "note": ""}
            yield {"request_id": n, "from_state": "requested", "to_state": "ticketed", "event": "open_ticket",
                   "at": now, "actor": "system", "note": ""}

    counts["request_events"] = _insert(RequestEvent, event_rows())

    def ticket_rows() -> Iterator[dict[str, Any]]:
        for n, (purchase_id, lead_id, _price, _bought) in enumerate(ticketed, start=1):
            yield {"id": n, "subject": f"Cancellation request for order ORD-{purchase_id:07d}",
                   "department_id": 1 if n % 10 else 2, "status": "open" if n % 4 else "closed",
                   "lead_id": lead_id, "purchase_id": purchase_id, "request_id": n,
                   "created_at": now - timedelta(minutes=n)}

    counts["tickets"] = _insert(Ticket, ticket_rows())
    _insert(TicketMessage, ({"ticket_id": n, "author": "system", "body": "Benchmark ticket", "internal": False,
                             "created_at": now} for n in range(1, len(ticketed) + 1)))
    db.session.execute(
        BillingRequest.__table__.update().values(ticket_id=BillingRequest.__table__.c.id)
    )
    db.session.commit()
    if db.engine.dialect.name == "postgresql":  # fresh statistics, or the planner guesses on a million rows
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    return counts

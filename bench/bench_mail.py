"""Customer email throughput: the outbox worker against a local SMTP server (aiosmtpd on loopback).

Each row sends ``--emails`` emails, rendered fresh, to one aiosmtpd server that counts them.
The SMTP server runs in its own process. Rows:

* bare Flask-Mail: the same number of ready-made messages over one SMTP connection, no
  database: the floor of any worker.
* enqueue: ``plugin.notifications.enqueue`` for every email in one transaction, then commit
  (what a request pays per email).
* worker --once, batch N: claim N rows in one statement, render them, send them over one
  connection, commit each outcome; repeated until the queue is empty.
* two workers: two threads with their own app and engine draining one queue (SQLite
  serialises their writes; PostgreSQL claims with SKIP LOCKED).

SQLite (a temporary file, WAL) always; PostgreSQL too with ``--database-url`` (an empty
database; the plugin's tables are created there and dropped afterwards).

    python bench/bench_mail.py [--emails 1000] [--database-url postgresql+psycopg://...]
"""
from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiosmtpd.controller import Controller  # noqa: E402
from flask import Flask  # noqa: E402
from flask_mail import Mail, Message  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from plugin import SelfBilling  # noqa: E402
from plugin.db import Base, db  # noqa: E402
from plugin.ledger import service as ledger  # noqa: E402
from plugin.ledger.schemas import OrderIn, PricePointIn  # noqa: E402
from plugin.notifications import enqueue  # noqa: E402
from plugin.notifications.models import OutboxEmail  # noqa: E402
from plugin.notifications.worker import run_worker  # noqa: E402

SENDER = "Billing <billing@shop.test>"


class Counter:
    """Counts accepted messages in a value shared with the benchmark's process."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.shared.get_lock():
            self.shared.value += 1
        return "250 OK"


class SMTPProcess:
    """aiosmtpd in its own process, as a real mail server would be (no GIL shared with the worker)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.shared = multiprocessing.Value("i", 0)
        self.ready = multiprocessing.Event()
        self.done = multiprocessing.Event()
        self.process = multiprocessing.Process(target=self._serve, daemon=True)

    def _serve(self) -> None:
        controller = Controller(Counter(self.shared), hostname="127.0.0.1", port=self.port)
        controller.start()
        self.ready.set()
        self.done.wait()
        controller.stop()

    @property
    def count(self) -> int:
        return self.shared.value

    def start(self) -> None:
        self.process.start()
        if not self.ready.wait(30):
            raise RuntimeError("the SMTP server did not start")

    def stop(self) -> None:
        self.done.set()
        self.process.join(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_app(url: str, port: int, instance: Path, **config: Any) -> Flask:
    app = Flask("bench_mail", instance_path=str(instance))
    app.config.update(SECRET_KEY="bench", SQLALCHEMY_DATABASE_URI=url, MAIL_SERVER="127.0.0.1",
                      MAIL_PORT=port, MAIL_DEFAULT_SENDER=SENDER, MAIL_SUPPRESS_SEND=False, **config)
    SelfBilling(app)
    return app


def prepare(app: Flask, orders: int) -> None:
    with app.app_context():
        from plugin.schema import init_db

        init_db()
        ledger.upsert_price_point("pro", PricePointIn.model_validate(
            {"product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month",
             "interval_count": 1, "cancellation": "instant", "refund_window_days": 30}))
        for n in range(orders):
            ledger.upsert_order(f"ORD-{n:05d}", OrderIn.model_validate(
                {"email": f"customer{n}@example.com", "first_name": "Ann", "last_name": "Lee",
                 "price_point": "pro", "purchased_at": "2026-10-01T10:00:00Z",
                 "billing_address": {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield",
                                     "region": "IL", "postal_code": "62701", "country": "US"},
                 "payment_method": {"type": "card", "brand": "visa", "last4": "4242",
                                    "exp_month": 12, "exp_year": 2030}}))


def fill(app: Flask, emails: int, orders: int) -> float:
    """Queue ``emails`` emails in one transaction; seconds it took."""
    with app.app_context():
        db.session.execute(delete(OutboxEmail))
        db.session.commit()
        purchases = [ledger.get_purchase(f"ORD-{n:05d}") for n in range(orders)]
        for purchase in purchases:
            purchase.lead  # noqa: B018 - loaded before timing
        started = time.perf_counter()
        for n in range(emails):
            enqueue("refund_done", purchases[n % orders])
        db.session.commit()
        return time.perf_counter() - started


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bare_flask_mail(port: int, instance: Path, emails: int) -> float:
    app = Flask("bench_bare", instance_path=str(instance))
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_DEFAULT_SENDER=SENDER, MAIL_SUPPRESS_SEND=False)
    mail = Mail(app)
    with app.app_context():
        messages = [Message(subject=f"Your refund for order ORD-{n:05d}", recipients=[f"c{n}@example.com"],
                            body="Hi Ann,\n\nWe refunded $49.00.\n", html="<p>Hi Ann,</p><p>We refunded $49.00.</p>")
                    for n in range(emails)]

        def send() -> None:
            with mail.connect() as connection:
                for message in messages:
                    connection.send(message)

        return timed(send)


def bench_backend(label: str, url: str, port: int, counter: SMTPProcess, folder: Path, emails: int) -> list[tuple]:
    rows: list[tuple] = []
    orders = 50
    app = make_app(url, port, folder / "i1")
    prepare(app, orders)
    seconds = fill(app, emails, orders)
    rows.append((label, "enqueue (one transaction)", emails, seconds))
    with app.app_context():
        db.session.execute(delete(OutboxEmail))
        db.session.commit()
    for batch in (1, 10, 50, 200):
        app = make_app(url, port, folder / "i1", SELF_BILLING_MAIL_BATCH_SIZE=batch)
        fill(app, emails, orders)
        before = counter.count
        with app.app_context():
            seconds = timed(lambda: run_worker(once=True))
        assert counter.count - before == emails, (counter.count - before, emails)
        rows.append((label, f"worker --once, batch {batch}", emails, seconds))
    apps = [make_app(url, port, folder / "i1", SELF_BILLING_MAIL_BATCH_SIZE=50) for _ in range(2)]
    fill(apps[0], emails, orders)
    before = counter.count

    def work(app: Flask) -> None:
        with app.app_context():
            run_worker(once=True)

    def both() -> None:
        threads = [threading.Thread(target=work, args=(a,)) for a in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    seconds = timed(both)
    assert counter.count - before == emails, (counter.count - before, emails)
    rows.append((label, "two workers, batch 50", emails, seconds))
    for each in [app, *apps]:
        with each.app_context():
            db.session.remove()
            db.engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="also run on this (empty) PostgreSQL database")
    args = parser.parse_args()

    port = free_port()
    counter = SMTPProcess(port)
    counter.start()
    rows: list[tuple] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rows.append(("-", "bare Flask-Mail, one connection", args.emails,
                         bare_flask_mail(port, folder / "bare", args.emails)))
            rows += bench_backend("sqlite", f"sqlite:///{folder / 'bench.db'}", port, counter, folder, args.emails)
            if args.database_url:
                try:
                    rows += bench_backend("postgresql", args.database_url, port, counter, folder, args.emails)
                finally:
                    from sqlalchemy import create_engine, text

                    engine = create_engine(args.database_url)
                    with engine.begin() as conn:
                        Base.metadata.drop_all(conn)
                        conn.execute(text("DROP TABLE IF EXISTS sb_alembic_version"))
                    engine.dispose()
    finally:
        counter.stop()

    print(f"\nCustomer email to aiosmtpd on 127.0.0.1 ({args.emails} emails per row)\n")
    print(f"{'database':<11} {'what':<34} {'emails':>7} {'seconds':>8} {'emails/s':>9}")
    print("-" * 73)
    for database, what, count, seconds in rows:
        print(f"{database:<11} {what:<34} {count:>7} {seconds:>8.2f} {count / seconds:>9.0f}")


if __name__ == "__main__":
    main()

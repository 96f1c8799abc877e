"""Self-Billing at scale: one command, one table.

Builds (once, then reuses) a large data set — 100,000 leads, 1,000,000 payments,
100,000 tickets by default — and times what people do against it, each beside a
bare Flask endpoint of the same app in the same run:

    python bench/bench_scale.py                    # full size, SQLite file under bench/.data/
    python bench/bench_scale.py --leads 5000 --payments 50000 --tickets 5000   # a quick look
    python bench/bench_scale.py --database-url postgresql+psycopg://...        # an empty PostgreSQL database, or one it built

Requests go through Flask's test client (the whole WSGI stack, no sockets), so the
ratio to the bare endpoint is the cost of the work itself. The heavy lead has 30
purchases and 1,500 payments; beside it, a light lead (one purchase, the fewest payments)
and healthz, and the last lines give My Orders heavy/light and against healthz.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flask import jsonify  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

import scale_data  # noqa: E402
from plugin.db import db  # noqa: E402
from plugin.demo import create_app  # noqa: E402

AGENT_TOKEN = "bench-agent-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _time(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _expect(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise SystemExit(f"{response.request.path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return response


def sqlite_url(sizes: tuple[int, int, int]) -> str:
    """The SQLite file of a data set under bench/.data/ (gitignored), as a database URL."""
    data_dir = ROOT / "bench" / ".data"
    data_dir.mkdir(parents=True, exist_ok=True)
    leads, payments, tickets = sizes
    return f"sqlite:///{data_dir / f'scale-{leads}-{payments}-{tickets}.db'}"


def make_app(url: str, instance: str | None = None) -> Any:
    """The demo app on ``url`` for in-process timing, with ``/bench/bare`` (the reference row)."""
    instance = instance or tempfile.mkdtemp(prefix="sb-bench-")
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TESTING": False,
        "SELF_BILLING_LOGIN_LIMIT_PER_EMAIL": "1000000 per minute",
        "SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS": "1000000 per minute",
        "HELPDESK_AGENT_TOKENS": {AGENT_TOKEN: "agent@example.com"},
        "SELF_BILLING_INVOICE_CACHE_DIR": str(Path(instance) / "invoices"),
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": _free_port(), "MAIL_SUPPRESS_SEND": False,
    }, instance_path=instance)

    @app.get("/bench/bare")
    def bare() -> Any:
        return jsonify({"ok": True})

    return app


def ensure_data(app: Any, sizes: tuple[int, int, int]) -> dict[str, Any]:
    """Build the data set on the app's database unless it is already built (marked by scale_data.mark_built).

    Returns {counts, seconds, built_at, reused}. A half-built SQLite file (no mark) is deleted and built
    again; a PostgreSQL database that is neither empty nor marked is refused (drop it, or give an empty one).
    A reused data set only gets the schema's newest migrations (``init_db`` would invoice every payment).
    """
    from plugin.schema import init_db, upgrade_engine

    with app.app_context():
        marker = scale_data.built_marker(db.engine)
        if marker is not None:
            upgrade_engine(db.engine)
            return dict(marker, reused=True)
        from sqlalchemy import inspect

        with db.engine.connect() as conn:
            tables = inspect(conn).get_table_names()
        if tables:
            if db.engine.dialect.name != "sqlite":
                raise SystemExit(f"{db.engine.url.render_as_string(hide_password=True)} holds tables but no "
                                 "finished bench data set: give an empty database (or drop this one)")
            path = Path(db.engine.url.database)
            db.session.remove()
            db.engine.dispose()
            path.unlink()
            print(f"{path.name}: half-built (no mark), building it again", flush=True)
        init_db()
        start = time.perf_counter()
        counts = scale_data.build(*sizes)
        seconds = time.perf_counter() - start
        scale_data.mark_built(db.engine, counts, seconds)
        db.session.remove()
        return {"counts": counts, "seconds": seconds, "built_at": None, "reused": False}


def heavy_payment_ids(limit: int = 200) -> list[str]:
    """The heavy lead's first payments (invoices to download), in an app context."""
    from plugin.ledger.models import Payment, Purchase

    return list(db.session.execute(
        select(Payment.payment_id).join(Purchase).where(Purchase.lead_id == 1).order_by(Payment.id).limit(limit)
    ).scalars())


def table_sizes() -> dict[str, int]:
    """Rows in leads, purchases, payments and tickets, in an app context."""
    from plugin.ledger.models import Lead, Payment, Purchase
    from plugin.tickets.models import Ticket

    return {name: db.session.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in (("leads", Lead), ("purchases", Purchase), ("payments", Payment),
                                ("tickets", Ticket))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL database: empty, or one this bench built (default: SQLite file)")
    args = parser.parse_args()

    sizes = (args.leads, args.payments, args.tickets)
    url = args.database_url or sqlite_url(sizes)
    app = make_app(url)
    info = ensure_data(app, sizes)
    if not info["reused"]:
        print(f"built in {info['seconds']:.0f}s: " + ", ".join(f"{v:,} {k}" for k, v in info["counts"].items()))
    with app.app_context():
        sizes_now = table_sizes()
        heavy_payments = heavy_payment_ids()
        light = light_lead()
        db.session.remove()
    sizes = sizes_now

    prefix = app.config["SELF_BILLING_URL_PREFIX"].rstrip("/")
    customer = app.test_client()
    login = {"order_id": scale_data.HEAVY_ORDER, "email": scale_data.HEAVY_EMAIL}
    csrf = _expect(customer.post(f"{prefix}/api/portal/login", json=login)).get_json()["csrf_token"]
    del csrf
    light_client = app.test_client()
    _expect(light_client.post(f"{prefix}/api/portal/login", json={"order_id": light[0], "email": light[1]}))
    agent = app.test_client()
    agent_headers = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    invoices = iter(heavy_payments)

    rows: list[tuple[str, Callable[[], Any], int]] = [
        ("bare Flask endpoint (reference)", lambda: _expect(customer.get("/bench/bare")), args.repeat * 3),
        ("login (Order ID + email)", lambda: _expect(app.test_client().post(f"{prefix}/api/portal/login", json=login)),
         args.repeat),
        ("My Orders JSON (30 purchases, 1,500 payments)",
         lambda: _expect(customer.get(f"{prefix}/api/portal/purchases")), args.repeat),
        ("My Orders HTML (same lead)", lambda: _expect(customer.get(f"{prefix}/portal/")), args.repeat),
        (f"My Orders JSON (light lead, {light[2]} payment{'s' if light[2] != 1 else ''})",
         lambda: _expect(light_client.get(f"{prefix}/api/portal/purchases")), args.repeat),
        ("My Orders HTML (light lead)", lambda: _expect(light_client.get(f"{prefix}/portal/")), args.repeat),
        ("healthz", lambda: _expect(customer.get(f"{prefix}/healthz")), args.repeat),
        ("agent queue (open, Billing, first page)",
         lambda: _expect(agent.get(f"{prefix}/api/agent/tickets?status=open&department=Billing",
                                   headers=agent_headers)), args.repeat),
        ("lead lookup (q=novak)",
         lambda: _expect(agent.get(f"{prefix}/api/agent/leads?q=novak", headers=agent_headers)), args.repeat),
        ("lead lookup (exact email)",
         lambda: _expect(agent.get(f"{prefix}/api/agent/leads?q={scale_data.HEAVY_EMAIL}", headers=agent_headers)),
         args.repeat),
        ("invoice PDF, first render",
         lambda: _expect(customer.get(f"{prefix}/portal/payments/{next(invoices)}/invoice.pdf")),
         min(args.repeat, 20)),
        ("invoice PDF, cached",
         lambda: _expect(customer.get(f"{prefix}/portal/payments/{heavy_payments[0]}/invoice.pdf")), args.repeat),
    ]
    results = []
    for name, fn, repeat in rows:
        samples = _time(fn, repeat)
        results.append((name, statistics.median(samples), sorted(samples)[int(len(samples) * 0.95) - 1]))

    mail_rate = _worker_rate(app)
    bare_ms = results[0][1]
    print(f"\ndata: {sizes['leads']:,} leads, {sizes['purchases']:,} purchases, {sizes['payments']:,} payments "
          f"on {db_name(url)}\n")
    print(f"| {'what':48} | {'median ms':>9} | {'p95 ms':>8} | {'req/s':>8} | {'x bare':>7} |")
    print(f"| {'-' * 48} | {'-' * 9}:| {'-' * 8}:| {'-' * 8}:| {'-' * 7}:|")
    for name, median, p95 in results:
        print(f"| {name:48} | {median:9.2f} | {p95:8.2f} | {1000 / median:8.0f} | {median / bare_ms:7.1f} |")
    print(f"| {'worker: emails sent per second (aiosmtpd)':48} | {'':9} | {'':8} | {mail_rate:8.0f} | {'':7} |")
    medians = {name.split(" (")[0] + (" light" if "light" in name else ""): median for name, median, _ in results}
    for kind in ("JSON", "HTML"):
        heavy, light_ms = medians[f"My Orders {kind}"], medians[f"My Orders {kind} light"]
        healthz = medians["healthz"]
        print(f"My Orders {kind}: heavy/light {heavy / light_ms:.1f}x, heavy {heavy / healthz:.1f}x healthz, "
              f"light {light_ms / healthz:.1f}x healthz")


def light_lead() -> tuple[str, str, int]:
    """(order id, email, payments) of a lead with one purchase and the fewest payments: the light lead."""
    from plugin.ledger.models import Lead, Payment, Purchase

    single = select(Purchase.lead_id).group_by(Purchase.lead_id).having(func.count() == 1).subquery()
    order_id, email, payments = db.session.execute(
        select(Purchase.order_id, Lead.email, func.count(Payment.id))
        .join(single, single.c.lead_id == Purchase.lead_id).join(Lead, Lead.id == Purchase.lead_id)
        .join(Payment, Payment.purchase_id == Purchase.id)
        .group_by(Purchase.order_id, Lead.email).order_by(func.count(Payment.id), Purchase.order_id).limit(1)
    ).one()
    return order_id, email, payments


def db_name(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def _worker_rate(app: Any, emails: int = 300) -> float:
    from aiosmtpd.controller import Controller

    class Sink:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Sink.count += 1
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=app.config["MAIL_PORT"])
    controller.start()
    try:
        with app.app_context():
            app.extensions["mail"].server = "127.0.0.1"
            app.extensions["mail"].port = app.config["MAIL_PORT"]
            from plugin.ledger.service import get_purchase
            from plugin.notifications import enqueue
            from plugin.notifications.worker import run_worker

            purchase = get_purchase(scale_data.HEAVY_ORDER)
            for _ in range(emails):
                enqueue("address_changed", purchase)
            db.session.commit()
            start = time.perf_counter()
            run_worker(once=True)
            elapsed = time.perf_counter() - start
    finally:
        controller.stop()
    return Sink.count / elapsed


if __name__ == "__main__":
    main()

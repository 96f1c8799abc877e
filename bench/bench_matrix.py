"""Issue 18's ratios for both databases and both sizes, as one table, from one command.

    .venv/bin/python bench/bench_matrix.py                        # 10k and 1M payments, SQLite and PostgreSQL
    .venv/bin/python bench/bench_matrix.py --quick                # a smoke run: 2k and 20k payments, short runs
    .venv/bin/python bench/bench_matrix.py --sizes 10000,1000000 --databases sqlite,postgresql \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/

Data sets (bench/scale_data.py; per N payments, N/10 leads and N/10 tickets, plus the heavy lead
HEAVY-0000 with 30 purchases x 50 payments) are built once and reused: SQLite files under
bench/.data/ (gitignored), on PostgreSQL one database per size (``sb_bench_<leads>_<payments>_<tickets>``)
on the server of ``--database-url``. A data set is marked when its build finished; one without the
mark is built again. Without ``--database-url``, when PostgreSQL's binaries are under
/usr/lib/postgresql/*/bin, the command starts its own server (``fsync=off``) on a free loopback port,
with its data folder under bench/.data/ (so its data sets are reused too), and stops it at the end.

For each database and size, every figure is a ratio to a reference measured in the same run:

* in-process (Flask test client, the whole WSGI stack without sockets), all sizes of one database
  interleaved request by request: every page beside ``/bench/bare`` (a bare endpoint of the same
  app); the invoice's first render (empty cache) interleaved with bare wkhtmltopdf on the same HTML;
* over HTTP (gunicorn, 4 sync workers on loopback; one request at a time on a fresh connection,
  as the sync workers close each one): My Orders JSON and HTML for the heavy lead and a one-purchase
  lead, beside healthz of the same server, interleaved;
* under load (the same gunicorn, ``wrk -t2 -c16 --latency``): p99 / median on the heavy lead's My
  Orders JSON and HTML, and healthz's own p99 / median as the floor of the machine.

"Flat with size" is each page at the bigger size over the same page at the smallest size, on the same
database, both measured interleaved in one process. It prints one table (ratio, target, ok/MISS per
cell), the absolute medians, the machine (cores, load average), versions and build times. It exits 0:
a measurement, not a gate.
"""
from __future__ import annotations

import argparse
import glob
import importlib.metadata
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_invoices  # noqa: E402
import bench_scale  # noqa: E402
import load  # noqa: E402
import scale_data  # noqa: E402
from plugin.db import db  # noqa: E402

DATA = ROOT / "bench" / ".data"
PREFIX = "/billing"


# -- sizes and labels ---------------------------------------------------------------------------

def parse_count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    for suffix, factor in (("k", 1_000), ("m", 1_000_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def label(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1_000:g}k"
    return str(n)


# -- PostgreSQL: an own server, one database per size -----------------------------------------------

class OwnPostgres:
    """A PostgreSQL server of the bench's own (fsync=off), data folder under bench/.data/, kept for reuse."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
        if not found:
            raise SystemExit("PostgreSQL: no --database-url and no binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        self.major = self.bin.parent.name
        self.data = DATA / f"postgresql-{self.major}"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.port = load.free_port()
        self.sockets = Path(tempfile.mkdtemp(prefix="sb-pg-"))
        self.log = self.sockets / "server.log"

    def _own(self, path: Path) -> None:
        if self.as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.as_postgres, *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
                             + (self.log.read_text() if self.log.exists() else ""))

    def start(self) -> str:
        DATA.mkdir(parents=True, exist_ok=True)
        self._own(self.sockets)
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.mkdir(parents=True)
            self._own(self.data)
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--no-sync", "--locale=C")
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "-t", "120", "start")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/"

    def stop(self) -> None:
        subprocess.run([*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                        "stop"], capture_output=True)
        shutil.rmtree(self.sockets, ignore_errors=True)


def pg_database(server_url: str, sizes: tuple[int, int, int], rebuild: bool) -> str:
    """The URL of this size's database on the server: kept if built (marked), else dropped and created empty."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "sb_bench_{}_{}_{}".format(*sizes)
    base = make_url(server_url)
    url = base.set(database=name)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists and not rebuild:
            engine = create_engine(url)
            try:
                if scale_data.built_marker(engine) is not None:
                    return url.render_as_string(hide_password=False)
            finally:
                engine.dispose()
            print(f"# {name}: half-built (no mark), building it again", flush=True)
        with admin.connect() as conn:
            if exists:
                conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return url.render_as_string(hide_password=False)


def pg_version(url: str) -> str:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SHOW server_version").scalar_one().split()[0]
    finally:
        engine.dispose()


# -- one cell: a database at a size -----------------------------------------------------------------

@dataclass
class Cell:
    database: str
    payments: int
    sizes: tuple[int, int, int]
    url: str = ""
    build: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    light: tuple[str, str, int] = ("", "", 0)
    inproc: dict[str, float] = field(default_factory=dict)  # name -> median ms
    http: dict[str, float] = field(default_factory=dict)  # name -> median ms, one request at a time
    load: dict[str, load.Result] = field(default_factory=dict)
    invoice: dict[str, float] = field(default_factory=dict)  # first_render, bare_wkhtmltopdf (median ms)
    load_avg: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{'PG' if self.database == 'postgresql' else 'SQLite'} {label(self.payments)}"


def _expect(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return response


#: In-process pages: (key, what it is). Keys are used by the tables below.
PAGES = [
    ("bare", "bare endpoint (reference)"),
    ("healthz", "healthz"),
    ("orders_json_heavy", "My Orders JSON, heavy lead"),
    ("orders_json_light", "My Orders JSON, light lead"),
    ("orders_html_heavy", "My Orders HTML, heavy lead"),
    ("orders_html_light", "My Orders HTML, light lead"),
    ("history_json", "payment history JSON (a 50-payment purchase)"),
    ("history_html", "payment history page (same purchase)"),
    ("agent_queue", "agent queue (API, open Billing)"),
    ("lookup_email", "lead lookup, exact email (API)"),
    ("lookup_order", "lead lookup, exact Order ID (API)"),
    ("lookup_substring", "lead lookup, substring q=novak (API)"),
    ("desk_queue", "desk: queue page"),
    ("desk_lookup", "desk: lead lookup page (exact email)"),
    ("desk_ticket", "desk: ticket page"),
    ("desk_order", "desk: order page (heavy lead's order)"),
    ("invoice_cached", "invoice PDF, cached download"),
]


def _page_calls(app: Any, light: tuple[str, str, int], invoice_id: str) -> dict[str, Callable[[], Any]]:
    heavy_login = {"order_id": scale_data.HEAVY_ORDER, "email": scale_data.HEAVY_EMAIL}
    customer = app.test_client()
    _expect(customer.post(f"{PREFIX}/api/portal/login", json=heavy_login))
    light_client = app.test_client()
    _expect(light_client.post(f"{PREFIX}/api/portal/login", json={"order_id": light[0], "email": light[1]}))
    agent = app.test_client()
    bearer = {"Authorization": f"Bearer {bench_scale.AGENT_TOKEN}"}
    heavy, email = scale_data.HEAVY_ORDER, scale_data.HEAVY_EMAIL

    def get(client: Any, path: str, headers: dict[str, str] | None = None) -> Callable[[], Any]:
        def call() -> Any:
            response = _expect(client.get(path, headers=headers))
            response.close()
        return call

    return {
        "bare": get(customer, "/bench/bare"),
        "healthz": get(customer, f"{PREFIX}/healthz"),
        "orders_json_heavy": get(customer, f"{PREFIX}/api/portal/purchases"),
        "orders_json_light": get(light_client, f"{PREFIX}/api/portal/purchases"),
        "orders_html_heavy": get(customer, f"{PREFIX}/portal/"),
        "orders_html_light": get(light_client, f"{PREFIX}/portal/"),
        "history_json": get(customer, f"{PREFIX}/api/portal/purchases/{heavy}/payments"),
        "history_html": get(customer, f"{PREFIX}/portal/purchases/{heavy}/payments"),
        "agent_queue": get(agent, f"{PREFIX}/api/agent/tickets?status=open&department=Billing", bearer),
        "lookup_email": get(agent, f"{PREFIX}/api/agent/leads?q={email}", bearer),
        "lookup_order": get(agent, f"{PREFIX}/api/agent/leads?q={heavy}", bearer),
        "lookup_substring": get(agent, f"{PREFIX}/api/agent/leads?q=novak", bearer),
        "desk_queue": get(agent, f"{PREFIX}/desk/?status=open&department=Billing", bearer),
        "desk_lookup": get(agent, f"{PREFIX}/desk/leads?q={email}", bearer),
        "desk_ticket": get(agent, f"{PREFIX}/desk/tickets/1", bearer),
        "desk_order": get(agent, f"{PREFIX}/desk/orders/{heavy}", bearer),
        "invoice_cached": get(customer, f"{PREFIX}/portal/payments/{invoice_id}/invoice.pdf"),
    }


def open_cell(cell: Cell, server_url: str | None, rebuild: bool) -> Any:
    """Build or reuse the cell's data set; its in-process app."""
    if cell.database == "sqlite":
        cell.url = bench_scale.sqlite_url(cell.sizes)
        if rebuild:
            Path(cell.url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    else:
        cell.url = pg_database(server_url, cell.sizes, rebuild)
    print(f"# {cell.title}: {'building' if rebuild else 'opening'} the data set "
          f"({cell.sizes[0]:,} leads, {cell.sizes[1]:,} payments, {cell.sizes[2]:,} tickets)", flush=True)
    app = bench_scale.make_app(cell.url)
    cell.build = bench_scale.ensure_data(app, cell.sizes)
    with app.app_context():
        cell.rows = bench_scale.table_sizes()
        cell.light = bench_scale.light_lead()
        app.extensions["bench_invoice_ids"] = bench_scale.heavy_payment_ids(5)
        db.session.remove()
    how = "reused" if cell.build["reused"] else "built"
    print(f"# {cell.title}: {how} (build {cell.build['seconds']:.0f}s): "
          + ", ".join(f"{v:,} {k}" for k, v in cell.rows.items()), flush=True)
    return app


def measure_inproc(cells: list[Cell], apps: list[Any], repeat: int) -> None:
    """Every page of every cell of one database, interleaved request by request; medians in ms."""
    calls = [_page_calls(app, cell.light, app.extensions["bench_invoice_ids"][0]) for cell, app in zip(cells, apps)]
    samples: list[dict[str, list[float]]] = [{key: [] for key, _ in PAGES} for _ in cells]
    for round_ in range(repeat + 3):  # three unmeasured rounds first (templates, caches, the PDF)
        for i, page_calls in enumerate(calls):
            for key, _ in PAGES:
                start = time.perf_counter()
                page_calls[key]()
                elapsed = (time.perf_counter() - start) * 1000
                if round_ >= 3:
                    samples[i][key].append(elapsed)
    for cell, cell_samples in zip(cells, samples):
        cell.inproc = {key: statistics.median(values) for key, values in cell_samples.items()}


def measure_first_render(cell: Cell, app: Any, renders: int) -> None:
    """The invoice's first render (empty cache, through the app) interleaved with bare wkhtmltopdf on its HTML."""
    binary = shutil.which("wkhtmltopdf")
    if binary is None:
        cell.errors.append("wkhtmltopdf is not installed: no invoice rows")
        return
    invoice_id = app.extensions["bench_invoice_ids"][0]
    url = f"{PREFIX}/portal/payments/{invoice_id}/invoice.pdf"
    client = app.test_client()
    _expect(client.post(f"{PREFIX}/api/portal/login",
                        json={"order_id": scale_data.HEAVY_ORDER, "email": scale_data.HEAVY_EMAIL}))
    _expect(client.get(url))  # issues the invoice if it had none
    html = bench_invoices.invoice_html_for(app, invoice_id)
    with tempfile.TemporaryDirectory(prefix="sb-render-") as tmp:
        folder = Path(tmp)
        bench_invoices.bare_wkhtmltopdf(binary, html, folder / "bare.pdf")
        bench_invoices.first_render_once(app, client, url, folder)
        first, bare = [], []
        for _ in range(renders):
            bare += bench_invoices.timed(lambda: bench_invoices.bare_wkhtmltopdf(binary, html, folder / "bare.pdf"), 1)
            first += bench_invoices.timed(lambda: bench_invoices.first_render_once(app, client, url, folder), 1)
    cell.invoice = {"first_render": statistics.median(first) * 1000, "bare_wkhtmltopdf": statistics.median(bare) * 1000}


#: Pages timed over HTTP one at a time: (key, customer or None, path).
HTTP_PAGES = [
    ("bare", None, "/bench/bare"),
    ("healthz", None, f"{PREFIX}/healthz"),
    ("orders_json_heavy", "heavy", f"{PREFIX}/api/portal/purchases"),
    ("orders_json_light", "light", f"{PREFIX}/api/portal/purchases"),
    ("orders_html_heavy", "heavy", f"{PREFIX}/portal/"),
    ("orders_html_light", "light", f"{PREFIX}/portal/"),
]


def _raw_get(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(request)
        chunks = []
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def measure_http(cell: Cell, repeat: int, duration: int, workers: int, connections: int, wrk_binary: str) -> None:
    with load.serve(cell.url, workers) as (port, _token, _work):
        cell.load_avg = os.getloadavg()[0]
        cookies = {"heavy": load.log_in(port, scale_data.HEAVY_ORDER, scale_data.HEAVY_EMAIL),
                   "light": load.log_in(port, cell.light[0], cell.light[1])}
        requests = {}
        for key, who, path in HTTP_PAGES:
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            if who:
                head += f"Cookie: {cookies[who]}\r\n"
            requests[key] = (head + "\r\n").encode()
        samples: dict[str, list[float]] = {key: [] for key, _, _ in HTTP_PAGES}
        warm = 3 * workers  # every worker renders every page before it is measured
        for round_ in range(repeat + warm):
            for key, _, path in HTTP_PAGES:
                start = time.perf_counter()
                answer = _raw_get(port, requests[key])
                elapsed = (time.perf_counter() - start) * 1000
                status = answer[:answer.find(b"\r\n")].split(b" ")[1:2]
                if status != [b"200"]:
                    raise load.Stop(f"GET {path} over HTTP answered {answer[:200]!r}")
                if round_ >= warm:
                    samples[key].append(elapsed)
        cell.http = {key: statistics.median(values) for key, values in samples.items()}
        for key, who, path in (("healthz", None, f"{PREFIX}/healthz"),
                               ("orders_json_heavy", "heavy", f"{PREFIX}/api/portal/purchases"),
                               ("orders_html_heavy", "heavy", f"{PREFIX}/portal/")):
            headers = {"Cookie": cookies[who]} if who else {}
            load.wrk(port, path, headers, 1, 2, connections, wrk_binary)  # warm-up, unmeasured
            result = load.parse_wrk(key, load.wrk(port, path, headers, duration, 2, connections, wrk_binary))
            if result.errors:
                cell.errors.append(f"under load, {key}: {result.non_2xx_3xx} non-2xx/3xx, "
                                   f"{result.socket_errors} socket errors")
            cell.load[key] = result


# -- the tables --------------------------------------------------------------------------------------

def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Measure:
    name: str
    target: float | None  # None: a reference row, no mark
    value: Callable[[Cell], float | None]


def _ms(source: str, key: str) -> Callable[[Cell], float | None]:
    return lambda c: getattr(c, source).get(key)


def _p99_over_p50(key: str) -> Callable[[Cell], float | None]:
    return lambda c: _ratio(c.load[key].p99_ms, c.load[key].p50_ms) if key in c.load else None


MEASURES = [
    Measure("My Orders JSON heavy / light (HTTP)", 2, lambda c: _ratio(c.http.get("orders_json_heavy"),
                                                                      c.http.get("orders_json_light"))),
    Measure("My Orders HTML heavy / light (HTTP)", 2, lambda c: _ratio(c.http.get("orders_html_heavy"),
                                                                      c.http.get("orders_html_light"))),
    Measure("My Orders JSON heavy x healthz (HTTP)", 8, lambda c: _ratio(c.http.get("orders_json_heavy"),
                                                                        c.http.get("healthz"))),
    Measure("My Orders HTML heavy x healthz (HTTP)", 12, lambda c: _ratio(c.http.get("orders_html_heavy"),
                                                                         c.http.get("healthz"))),
    Measure("load: My Orders JSON heavy p99 / p50", 4, _p99_over_p50("orders_json_heavy")),
    Measure("load: My Orders HTML heavy p99 / p50", 4, _p99_over_p50("orders_html_heavy")),
    Measure("load: healthz p99 / p50 (the floor)", None, _p99_over_p50("healthz")),
    Measure("agent queue x bare", 10, lambda c: _ratio(c.inproc.get("agent_queue"), c.inproc.get("bare"))),
    Measure("lead lookup, exact email x bare", 10, lambda c: _ratio(c.inproc.get("lookup_email"),
                                                                   c.inproc.get("bare"))),
    Measure("lead lookup, exact Order ID x bare", 10, lambda c: _ratio(c.inproc.get("lookup_order"),
                                                                      c.inproc.get("bare"))),
    Measure("invoice, cached download x bare", 2, lambda c: _ratio(c.inproc.get("invoice_cached"),
                                                                  c.inproc.get("bare"))),
    Measure("invoice, first render / bare wkhtmltopdf", 1.3, lambda c: _ratio(c.invoice.get("first_render"),
                                                                             c.invoice.get("bare_wkhtmltopdf"))),
]

#: Pages of the "flat with size" block (in-process medians, bigger size / smallest size, same database).
FLAT = [key for key, _ in PAGES if key != "bare"]
FLAT_TARGET = 1.5


def _mark(value: float | None, target: float | None) -> tuple[str, bool | None]:
    if value is None:
        return "n/a", None
    if target is None:
        return f"{value:.1f}x", None
    ok = value <= target
    return f"{value:.1f}x {'ok' if ok else 'MISS'}", ok


def _result(marks: list[bool | None]) -> str:
    judged = [m for m in marks if m is not None]
    if not judged:
        return ""
    misses = judged.count(False)
    return "pass" if not misses else f"MISS {misses}/{len(judged)}"


def print_table(cells: list[Cell], sizes: list[int]) -> int:
    names = {key: what for key, what in PAGES}
    smallest = min(sizes)
    section = f"**flat with size: / {label(smallest)}, same database**"
    width = max(48, len(section), *(len(m.name) for m in MEASURES), *(len(names[k]) + 2 for k in FLAT))
    col = max(11, *(len(c.title) for c in cells))
    head = f"| {'measure':{width}} | {'target':>7} | " + " | ".join(f"{c.title:>{col}}" for c in cells) + " | result    |"
    rule = f"| {'-' * width} | {'-' * 6}: | " + " | ".join("-" * (col - 1) + ":" for _ in cells) + " | --------- |"
    print(head)
    print(rule)
    misses = 0
    for m in MEASURES:
        marks = [_mark(m.value(c), m.target) for c in cells]
        misses += sum(1 for _, ok in marks if ok is False)
        target = f"<= {m.target:g}x" if m.target is not None else "-"
        print(f"| {m.name:{width}} | {target:>7} | " + " | ".join(f"{t:>{col}}" for t, _ in marks)
              + f" | {_result([ok for _, ok in marks]):9} |")
    print(f"| {section:{width}} | {'':7} | " + " | ".join(f"{'':{col}}" for _ in cells) + f" | {'':9} |")
    by_key = {(c.database, c.payments): c for c in cells}
    for key in FLAT:
        marks = []
        for c in cells:
            base = by_key.get((c.database, smallest))
            if c.payments == smallest or base is None:
                marks.append(("-", None))
            else:
                target = None if key == "healthz" else FLAT_TARGET
                marks.append(_mark(_ratio(c.inproc.get(key), base.inproc.get(key)), target))
        misses += sum(1 for _, ok in marks if ok is False)
        target = "-" if key == "healthz" else f"<= {FLAT_TARGET:g}x"
        print(f"| {'  ' + names[key]:{width}} | {target:>7} | " + " | ".join(f"{t:>{col}}" for t, _ in marks)
              + f" | {_result([ok for _, ok in marks]):9} |")
    return misses


def print_medians(cells: list[Cell]) -> None:
    names = {key: what for key, what in PAGES}
    rows: list[tuple[str, Callable[[Cell], str]]] = []

    def ms(value: float | None) -> str:
        return "n/a" if value is None else (f"{value:.2f}" if value < 100 else f"{value:.0f}")

    for key, _ in PAGES:
        rows.append((f"in-process: {names[key]}", lambda c, k=key: ms(c.inproc.get(k))))
    rows.append(("in-process: invoice first render (empty cache)", lambda c: ms(c.invoice.get("first_render"))))
    rows.append(("bare wkhtmltopdf, same HTML", lambda c: ms(c.invoice.get("bare_wkhtmltopdf"))))
    for key, _, _ in HTTP_PAGES:
        rows.append((f"HTTP, one at a time: {key.replace('_', ' ')}", lambda c, k=key: ms(c.http.get(k))))
    for key in ("healthz", "orders_json_heavy", "orders_html_heavy"):
        rows.append((f"load: {key.replace('_', ' ')} p50", lambda c, k=key: ms(c.load[k].p50_ms) if k in c.load else "n/a"))
        rows.append((f"load: {key.replace('_', ' ')} p99", lambda c, k=key: ms(c.load[k].p99_ms) if k in c.load else "n/a"))
        rows.append((f"load: {key.replace('_', ' ')} req/s",
                     lambda c, k=key: f"{c.load[k].rps:.0f}" if k in c.load else "n/a"))
    rows.append(("load average (1 min) at the HTTP phase", lambda c: f"{c.load_avg:.2f}" if c.load_avg else "n/a"))
    width = max(len(name) for name, _ in rows)
    col = max(11, *(len(c.title) for c in cells))
    print(f"| {'median ms':{width}} | " + " | ".join(f"{c.title:>{col}}" for c in cells) + " |")
    print(f"| {'-' * width} | " + " | ".join("-" * (col - 1) + ":" for _ in cells) + " |")
    for name, value in rows:
        print(f"| {name:{width}} | " + " | ".join(f"{value(c):>{col}}" for c in cells) + " |")


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "n/a"


def versions(pg: str | None) -> str:
    meta = importlib.metadata.version
    parts = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    if pg:
        parts.append(f"PostgreSQL {pg}")
    parts += [f"Flask {meta('flask')}", f"SQLAlchemy {meta('sqlalchemy')}", f"psycopg {meta('psycopg')}",
              f"gunicorn {meta('gunicorn')}", _version(["wrk", "-v"]).split(" [")[0],
              _version(["wkhtmltopdf", "--version"]).replace(" (with patched qt)", "")]
    commit = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return ", ".join(parts) + f"; commit {commit}"


# -- main ------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=None, help="payments per data set, comma-separated (default 10000,1000000)")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both (default)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL base, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/ "
                             "(default: the bench's own server when PostgreSQL is installed)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: sizes 2000,20000, 10 rounds, 3 s of wrk, 3 renders (unless given)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds of in-process and HTTP requests (30)")
    parser.add_argument("--duration", type=int, default=None, help="seconds of wrk per load scenario (10)")
    parser.add_argument("--renders", type=int, default=None, help="first renders and bare wkhtmltopdf runs (10)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--rebuild", action="store_true", help="build the data sets again even if built")
    parser.add_argument("--no-http", action="store_true", help="skip gunicorn and wrk (in-process rows only)")
    args = parser.parse_args()
    quick = args.quick
    sizes = sorted({parse_count(s) for s in (args.sizes or ("2000,20000" if quick else "10000,1000000")).split(",")})
    repeat = args.repeat or (10 if quick else 30)
    duration = args.duration or (3 if quick else 10)
    renders = args.renders or (3 if quick else 10)
    databases = [d.strip().lower() for d in args.databases.split(",") if d.strip()]
    unknown = set(databases) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown database(s): {', '.join(sorted(unknown))}")
    wrk_binary = shutil.which("wrk")
    if not args.no_http and wrk_binary is None:
        parser.error("wrk is not installed (apt-get install wrk), or pass --no-http")

    started = time.perf_counter()
    load_start = os.getloadavg()
    cells: list[Cell] = []
    own_pg: OwnPostgres | None = None
    server_url = args.database_url
    pg = None
    try:
        if "postgresql" in databases and not server_url:
            own_pg = OwnPostgres()
            server_url = own_pg.start()
            print(f"# started PostgreSQL {own_pg.major} ({own_pg.data}, fsync=off) on port {own_pg.port}", flush=True)
        for database in databases:
            group = [Cell(database, n, scale_data.sizes_for(n)) for n in sizes]
            apps = [open_cell(cell, server_url, args.rebuild) for cell in group]
            if database == "postgresql":
                pg = pg_version(group[0].url)
            print(f"# {database}: in-process pages, {repeat} rounds, sizes interleaved", flush=True)
            try:
                measure_inproc(group, apps, repeat)
            except Exception as error:  # a page failing leaves its cells n/a; the rest is still measured
                for cell in group:
                    cell.errors.append(f"in-process pages: {type(error).__name__}: {str(error)[:300]}")
            for cell, app in zip(group, apps):
                print(f"# {cell.title}: invoice first renders ({renders})", flush=True)
                try:
                    measure_first_render(cell, app, renders)
                except Exception as error:
                    cell.errors.append(f"invoice first render: {type(error).__name__}: {str(error)[:300]}")
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
            for cell in group:
                if args.no_http:
                    continue
                print(f"# {cell.title}: gunicorn ({args.workers} workers), {repeat} rounds over HTTP, "
                      f"wrk -c{args.connections} {duration}s x 3", flush=True)
                try:
                    measure_http(cell, repeat, duration, args.workers, args.connections, wrk_binary)
                except Exception as error:
                    cell.errors.append(f"HTTP: {type(error).__name__}: {str(error)[:300]}")
            cells += group
    finally:
        if own_pg is not None:
            own_pg.stop()
    load_end = os.getloadavg()

    print()
    print(f"Issue 18 matrix: {', '.join(databases)} at {', '.join(label(n) + ' payments' for n in sizes)}; "
          f"ratios in one run beside a reference of the same app; {repeat} rounds, wrk -t2 -c{args.connections} "
          f"{duration}s, {renders} renders")
    print()
    misses = print_table(cells, sizes)
    print()
    print(f"{misses} cell(s) miss their target." if misses else "Every cell meets its target.")
    print("Agent queue and lookups: the issue states 10x for PostgreSQL at 1M; every cell is marked against it.")
    print()
    print_medians(cells)
    print()
    print(f"machine: {os.cpu_count()} cores; load average (1, 5, 15 min) "
          f"{'/'.join(f'{x:.2f}' for x in load_start)} at start, {'/'.join(f'{x:.2f}' for x in load_end)} at end; "
          f"{time.perf_counter() - started:.0f} s in all")
    print(f"versions: {versions(pg)}")
    for c in cells:
        b = c.build
        how = f"reused (built in {b['seconds']:.0f} s on {b['built_at'][:16]})" if b.get("reused") else \
            f"built in {b.get('seconds', 0):.0f} s"
        rows = ", ".join(f"{v:,} {k}" for k, v in c.rows.items())
        print(f"data {c.title}: {rows}; light lead {c.light[0]} ({c.light[2]} payment{'s' if c.light[2] != 1 else ''}); "
              f"{how}")
    for c in cells:
        for error in c.errors:
            print(f"ERROR {c.title}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

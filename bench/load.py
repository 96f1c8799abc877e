"""Load test: the demo helpdesk under gunicorn, driven by wrk from another process, one command.

    python bench/load.py                                   # SQLite file seeded with seed-demo
    python bench/load.py --scale 2000,20000,2000           # a larger SQLite data set (bench/scale_data.py)
    python bench/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/empty_db

What it does:

1. makes a throwaway folder (instance, SQLite file, invoice cache, gunicorn log);
2. fills the database: ``flask self-billing init-db`` then ``seed-demo`` (the
   customer is DEMO-1001 / ann@example.com), or, with ``--scale``, the bulk
   builder of the scale benchmark (the customer is the heavy lead: 30
   purchases, 1,500 payments);
3. starts the demo (``plugin.demo:create_app``, plus one bare endpoint as the
   reference row) under gunicorn with several sync workers on a free loopback
   port, configured only through ``FLASK_*`` environment variables as an
   operator would (one shared SECRET_KEY, an agent API token, login limits
   generous enough that the run is not throttled);
4. logs the customer in with Python and checks each scenario answers 200 with
   the expected content type (so a redirect to the login page is never
   measured by mistake), warms the invoice cache;
5. runs ``wrk --latency`` for each scenario for a bounded time and prints one
   table: requests/s, p50, p99, errors;
6. stops gunicorn (also on Ctrl-C) and removes the folder.

Exits non-zero when any response was not 2xx/3xx, on any socket error
(connect, read, write, timeout), or when gunicorn logged a traceback.
Needs ``wrk`` (``apt-get install wrk``) and gunicorn (``pip install .[deploy]``).
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/billing"
AGENT_EMAIL = "agent@example.com"
DEMO_CUSTOMER = ("DEMO-1001", "ann@example.com")
GENEROUS = "1000000 per minute"


@dataclass
class Scenario:
    name: str
    path: str
    headers: dict[str, str]
    content_type: str


@dataclass
class Result:
    name: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx_3xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + self.socket_errors


class Stop(Exception):
    """The run cannot go on; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(work: Path, database_url: str, agent_token: str) -> dict[str, str]:
    """The demo's configuration, through FLASK_* variables (JSON where it parses, as create_app reads them)."""
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "bench"), env.get("PYTHONPATH")])),
        "FLASK_SQLALCHEMY_DATABASE_URI": database_url,
        # One key for every worker: a session cookie made by one worker is read by the others.
        "FLASK_SECRET_KEY": secrets.token_hex(32),
        "FLASK_HELPDESK_AGENT_TOKENS": json.dumps({agent_token: AGENT_EMAIL}),
        "FLASK_SELF_BILLING_INVOICE_CACHE_DIR": str(work / "invoices"),
        # One logged-in customer and one address make every request: keep the login limits out of the way.
        "FLASK_SELF_BILLING_LOGIN_LIMIT_PER_EMAIL": GENEROUS,
        "FLASK_SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS": GENEROUS,
        "FLASK_HELPDESK_LOGIN_LIMIT": GENEROUS,
        "FLASK_HELPDESK_LOGIN_LIMIT_PER_EMAIL": GENEROUS,
    })
    return env


def flask_cli(env: dict[str, str], work: Path, *args: str) -> str:
    app = f"plugin.demo:create_app(instance_path={str(work / 'instance')!r})"
    command = [sys.executable, "-m", "flask", "--app", app, "self-billing", *args]
    done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise Stop(f"`flask self-billing {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def build_scale(env: dict[str, str], work: Path, sizes: tuple[int, int, int]) -> str:
    """Fill an empty database with bench/scale_data.py's builder, in a child process with the same config."""
    code = (
        "import sys, json; sys.path.insert(0, %r)\n"
        "import scale_data\n"
        "from plugin.demo import create_app\n"
        "from plugin.schema import init_db\n"
        "app = create_app(instance_path=%r)\n"
        "with app.app_context():\n"
        "    init_db()\n"
        "    print(json.dumps(scale_data.build(*%r)))\n"
    ) % (str(ROOT / "bench"), str(work / "instance"), tuple(sizes))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise Stop(f"building the scale data set failed (it needs an empty database):\n{done.stderr[-3000:]}")
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    return ", ".join(f"{v:,} {k}" for k, v in counts.items())


def demo_app(instance_path: str) -> Any:
    """What gunicorn serves: ``plugin.demo.create_app`` plus one bare endpoint, the reference row.

    The bare endpoint runs through the same app, hooks and gunicorn workers, so the
    ratio to it is the cost of the page itself (as in bench_scale.py).
    """
    from flask import jsonify

    from plugin.demo import create_app

    app = create_app(instance_path=instance_path)
    app.add_url_rule("/bench/bare", "bench_bare", lambda: jsonify({"ok": True}))
    return app


def start_gunicorn(env: dict[str, str], work: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    import gunicorn

    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--error-logfile", str(work / "gunicorn.log"),
               "--pid", str(work / "gunicorn.pid")]
    if int(gunicorn.__version__.split(".")[0]) >= 27:
        command.append("--no-control-socket")  # gunicorn 27 would otherwise create ~/.gunicorn/
    command.append(f"load:demo_app(instance_path={str(work / 'instance')!r})")
    # Its own session: Ctrl-C reaches this script, which then stops gunicorn cleanly (see stop_gunicorn).
    return subprocess.Popen(command, env=env, cwd=work, start_new_session=True)


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # graceful: the arbiter stops its workers
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None
        headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_ready(port: int, process: subprocess.Popen[bytes], work: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Stop(f"gunicorn exited with {process.returncode}:\n{log_tail(work)}")
        try:
            status, _, body = request(port, "GET", f"{PREFIX}/healthz")
        except OSError:
            time.sleep(0.2)
            continue
        if status == 200:
            return
        raise Stop(f"{PREFIX}/healthz answered {status}: {body[:300]!r}")
    raise Stop(f"gunicorn did not answer within {timeout:.0f}s:\n{log_tail(work)}")


def log_tail(work: Path, lines: int = 40) -> str:
    path = work / "gunicorn.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def log_in(port: int, order_id: str, email: str) -> str:
    """The customer's session cookie ("name=value"), from the portal's JSON login."""
    status, headers, body = request(port, "POST", f"{PREFIX}/api/portal/login",
                                    body={"order_id": order_id, "email": email})
    if status != 200:
        raise Stop(f"login as {order_id} / {email} answered {status}: {body[:300]!r}")
    cookie = headers.get("set-cookie", "")
    if not cookie:
        raise Stop("login answered 200 without a session cookie")
    return cookie.split(";", 1)[0]


def scenarios(port: int, cookie: str, agent_token: str) -> tuple[list[Scenario], str]:
    customer = {"Cookie": cookie}
    status, _, body = request(port, "GET", f"{PREFIX}/api/portal/purchases", headers=customer)
    if status != 200:
        raise Stop(f"My Orders JSON answered {status} right after login: {body[:300]!r}")
    purchases = json.loads(body)["purchases"]
    payments = [p for purchase in purchases for p in purchase["payments"]]
    if not payments:
        raise Stop("the logged-in customer has no payments: no invoice to download")
    invoice = payments[0]["invoice_url"]
    shape = f"{len(purchases)} purchases, {len(payments):,} payments"
    return [
        Scenario("bare Flask endpoint, same app (reference)", "/bench/bare", {}, "application/json"),
        Scenario("healthz", f"{PREFIX}/healthz", {}, "application/json"),
        Scenario("login page (standalone portal)", f"{PREFIX}/portal/", {}, "text/html"),
        Scenario(f"My Orders JSON ({shape})", f"{PREFIX}/api/portal/purchases", customer, "application/json"),
        Scenario("My Orders HTML (same customer)", f"{PREFIX}/portal/", customer, "text/html"),
        Scenario("agent queue (open tickets, bearer token)", f"{PREFIX}/api/agent/tickets?status=open",
                 {"Authorization": f"Bearer {agent_token}"}, "application/json"),
        Scenario("invoice PDF, cached", invoice, customer, "application/pdf"),
    ], shape


def preflight(port: int, scenario: Scenario) -> None:
    """One request before wrk: 200 and the expected content type (a 302 to the login page would pass wrk)."""
    status, headers, body = request(port, "GET", scenario.path, headers=scenario.headers)
    kind = headers.get("content-type", "")
    if status != 200 or not kind.startswith(scenario.content_type):
        raise Stop(f"{scenario.name}: GET {scenario.path} answered {status} {kind}, expected 200 "
                   f"{scenario.content_type}: {body[:200]!r}")


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS_MS[unit]


def parse_wrk(name: str, output: str) -> Result:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise Stop(f"{name}: could not read wrk's output ({pattern!r}):\n{output}")
        return match

    socket_errors = 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors:
        socket_errors = sum(int(n) for n in errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Result(
        name=name,
        requests=int(find(r"(\d+) requests in").group(1)),
        rps=float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_ms(find(r"\n\s+50%\s+(\S+)").group(1)),
        p99_ms=_ms(find(r"\n\s+99%\s+(\S+)").group(1)),
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def wrk(port: int, path: str, headers: dict[str, str], seconds: int, threads: int = 2, connections: int = 16,
        binary: str = "wrk") -> str:
    """wrk's output (``--latency``) for ``seconds`` of GETs of ``path`` on the loopback port."""
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    command.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise Stop(f"wrk failed on {path}:\n{done.stdout}{done.stderr}")
    return done.stdout


def run_wrk(port: int, scenario: Scenario, args: argparse.Namespace, seconds: int) -> str:
    return wrk(port, scenario.path, scenario.headers, seconds, args.threads, args.connections, args.wrk)


@contextlib.contextmanager
def serve(database_url: str, workers: int = 4) -> Iterator[tuple[int, str, Path]]:
    """gunicorn serving the demo on ``database_url`` (already filled) on a free loopback port, for the
    ``with`` block: yields (port, agent token, work folder); stops gunicorn and removes the folder after."""
    work = Path(tempfile.mkdtemp(prefix="sb-load-"))
    agent_token = secrets.token_urlsafe(24)
    server = None
    try:
        port = free_port()
        server = start_gunicorn(app_env(work, database_url, agent_token), work, port, workers)
        wait_ready(port, server, work)
        yield port, agent_token, work
        if server.poll() is not None:
            raise Stop(f"gunicorn exited during the run:\n{log_tail(work)}")
    finally:
        if server is not None:
            stop_gunicorn(server)
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: list[Result]) -> None:
    reference = results[0].rps if results and results[0].name.startswith("bare") else None
    print(f"| {'scenario':52} | {'requests':>8} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'x bare':>6} "
          f"| {'errors':>6} |")
    print(f"| {'-' * 52} | {'-' * 7}:| {'-' * 6}:| {'-' * 6}:| {'-' * 6}:| {'-' * 5}:| {'-' * 5}:|")
    for r in results:
        ratio = f"{reference / r.rps:6.1f}" if reference and r.rps else f"{'':6}"
        print(f"| {r.name:52} | {r.requests:8} | {r.rps:7.0f} | {r.p50_ms:7.1f} | {r.p99_ms:7.1f} | {ratio} "
              f"| {r.errors:6} |")


def parse_scale(text: str) -> tuple[int, int, int]:
    try:
        leads, payments, tickets = (int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("use LEADS,PAYMENTS,TICKETS, e.g. 2000,20000,2000") from None
    return leads, payments, tickets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per scenario (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured wrk first, 0 for none (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL database (empty with --scale); default: a throwaway SQLite file")
    parser.add_argument("--scale", type=parse_scale, default=None, metavar="LEADS,PAYMENTS,TICKETS",
                        help="bulk-build this data set instead of seed-demo (log in as the heavy lead)")
    parser.add_argument("--only", default=None,
                        help="run only the scenarios whose name contains this text (and the reference)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="the wrk binary")
    args = parser.parse_args()
    if shutil.which(args.wrk) is None:
        print("wrk is not installed: `sudo apt-get install wrk` (or pass --wrk PATH).", file=sys.stderr)
        return 2
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        print("gunicorn is not installed: `pip install -e '.[deploy]'`.", file=sys.stderr)
        return 2

    # SIGTERM (a CI timeout, kill) ends the run like Ctrl-C: through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    work = Path(tempfile.mkdtemp(prefix="sb-load-"))
    agent_token = secrets.token_urlsafe(24)
    database_url = args.database_url or f"sqlite:///{work / 'load.db'}"
    env = app_env(work, database_url, agent_token)
    server: subprocess.Popen[bytes] | None = None
    try:
        started = time.perf_counter()
        if args.scale:
            data = build_scale(env, work, args.scale)
            customer = ("HEAVY-0000", "heavy@example.com")
        else:
            flask_cli(env, work, "init-db")
            summary = flask_cli(env, work, "seed-demo").splitlines()[0]
            data = summary.removeprefix("Demo data ready: ").rstrip(".")
            customer = DEMO_CUSTOMER
        print(f"data ({time.perf_counter() - started:.0f}s): {data}")

        port = free_port()
        server = start_gunicorn(env, work, port, args.workers)
        wait_ready(port, server, work)
        cookie = log_in(port, *customer)
        plan, shape = scenarios(port, cookie, agent_token)
        if args.only:
            plan = plan[:1] + [s for s in plan[1:] if args.only.lower() in s.name.lower()]
        db_kind = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
        print(f"gunicorn: {args.workers} sync workers on 127.0.0.1:{port}, {db_kind}; customer {customer[0]} "
              f"({shape}); wrk -t{args.threads} -c{args.connections} -d{args.duration}s per scenario\n")

        load_before = os.getloadavg()[0]
        results = []
        for scenario in plan:
            preflight(port, scenario)  # also renders and caches the invoice before it is measured
            if args.warmup > 0:
                run_wrk(port, scenario, args, args.warmup)
            results.append(parse_wrk(scenario.name, run_wrk(port, scenario, args, args.duration)))
            if server.poll() is not None:
                raise Stop(f"gunicorn exited during {scenario.name}:\n{log_tail(work)}")
        print_table(results)
        print(f"\n{os.cpu_count()} cores; 1-minute load average {load_before:.2f} before the runs, "
              f"{os.getloadavg()[0]:.2f} after (wrk, gunicorn and anything else on this machine)")

        problems = [f"{r.name}: {r.non_2xx_3xx} non-2xx/3xx responses, {r.socket_errors} socket errors"
                    for r in results if r.errors]
        problems += [f"{r.name}: no request completed in {args.duration}s; give it a longer --duration"
                     for r in results if r.requests == 0]
        log = (work / "gunicorn.log").read_text(errors="replace")
        if "Traceback" in log or "WORKER TIMEOUT" in log:
            problems.append(f"gunicorn logged an error:\n{log_tail(work)}")
        if problems:
            print("\nFAILED:\n" + "\n".join(problems), file=sys.stderr)
            return 1
        print("\nno errors")
        return 0
    except Stop as stop:
        print(f"\nFAILED: {stop}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping gunicorn", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            stop_gunicorn(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

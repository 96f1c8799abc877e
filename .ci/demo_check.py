"""CI: the README's first command on a fresh machine, used the way a new user would use it.

Starts ``./scripts/demo`` (which installs everything itself) on a free port, then, with only
Python's standard library (the fresh machine has nothing else):

1. waits for ``/billing/healthz`` to answer with ``"pdf": "ok"`` (wkhtmltopdf was installed);
2. logs in to the portal as the demo customer and downloads an invoice: a real PDF;
3. changes the customer's billing address, which emails them, and sees that email in the
   agent desk's "Sent email" page within a few seconds (the demo's own catcher and worker);
4. stops the demo with Ctrl-C (SIGINT) and checks that nothing it started is left running.

Exit status 0 when all of that holds; otherwise 1, with the demo's output.
"""
from __future__ import annotations

import html
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL_SECONDS = 900  # pip and apt on a brand-new machine
MAIL_SECONDS = 15


class Failed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    """Cookies kept between requests, like a browser; answers as (status, headers, body)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, method: str, path: str, *, json_body: object = None, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        data, sent = None, dict(headers or {})
        if json_body is not None:
            data, sent["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with self.opener.open(req, timeout=30) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)
    print(f"demo check: {what}: yes", flush=True)


def wait_for_health(browser: Browser, demo: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + INSTALL_SECONDS
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise Failed(f"./scripts/demo exited with {demo.returncode} before serving")
        try:
            status, _, body = browser.request("GET", "/billing/healthz")
            if status == 200:
                return json.loads(body)
        except OSError:
            pass
        time.sleep(2)
    raise Failed(f"the demo did not answer /billing/healthz within {INSTALL_SECONDS}s")


def address_emails_to_ann(agent: Browser) -> int:
    """Rows of the desk's Sent email page sent to the demo customer about her billing address."""
    status, _, page = agent.request("GET", "/desk/mail")
    if status != 200:
        raise Failed(f"/desk/mail answered {status}")
    rows = re.findall(r"<td>([^<]*)</td>\s*<td><a [^>]*>([^<]*)</a></td>", page.decode())
    return sum(1 for to, subject in rows if "ann@example.com" in html.unescape(to) and "address" in subject.lower())


def check(browser: Browser, demo: subprocess.Popen[bytes]) -> None:
    health = wait_for_health(browser, demo)
    expect(health.get("pdf") == "ok", f"healthz says pdf ok ({health})")

    status, _, body = browser.request("POST", "/billing/api/portal/login",
                                      json_body={"order_id": "DEMO-1001", "email": "ann@example.com"})
    expect(status == 200, f"the demo customer logs in with DEMO-1001 / ann@example.com ({status})")
    csrf = json.loads(body)["csrf_token"]
    status, _, body = browser.request("GET", "/billing/api/portal/purchases")
    purchases = json.loads(body)["purchases"]
    invoice_url = next(p["invoice_url"] for purchase in purchases for p in purchase.get("payments", [])
                       if p.get("invoice_url"))
    status, headers, pdf = browser.request("GET", invoice_url.removeprefix(browser.base))
    expect(status == 200 and pdf.startswith(b"%PDF"), f"the invoice {invoice_url} downloads as a PDF ({status})")

    agent = Browser(browser.base)
    _, _, page = agent.request("GET", "/desk/login")
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1).decode()
    status, _, _ = agent.request("POST", "/desk/login", form={
        "csrf_token": token, "email": "agent@example.com", "password": "demo-agent-pass", "next": ""})
    expect(status == 200, "the demo agent signs in to the desk")
    before = address_emails_to_ann(agent)

    address = {"name": "Ann Lee", "line1": "1 Check Street", "city": "Chicago", "region": "IL",
               "postal_code": "60601", "country": "US"}
    status, _, body = browser.request("PUT", "/billing/api/portal/purchases/DEMO-1001/billing-address",
                                      json_body=address, headers={"X-CSRFToken": csrf})
    expect(status == 200, f"the billing address changes ({status})")
    changed = time.monotonic()
    deadline = changed + MAIL_SECONDS
    while address_emails_to_ann(agent) <= before:
        if time.monotonic() > deadline:
            raise Failed(f"no new address-change email to ann@example.com in /desk/mail after {MAIL_SECONDS}s")
        time.sleep(1)
    expect(True, f"the address-change email shows in the desk's Sent email page "
                 f"({time.monotonic() - changed:.1f}s after the change)")


#: Marks every process this check's demo starts (children inherit the environment), so the check finds
#: its own leftovers only: CI runs the test suite beside this check, on the same /proc, and the suite's
#: own demo processes (tests/test_demo_serve.py) are none of this check's business.
TAG = f"SELF_BILLING_DEMO_CHECK={uuid.uuid4().hex}"


def demo_processes() -> list[int]:
    """Processes this check's demo started (gunicorn, the worker, the supervisor) still alive."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if TAG.encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def main() -> int:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="demo-", suffix=".log", delete=False)
    name, _, value = TAG.partition("=")
    env = {**os.environ, "FLASK_RUN_PORT": str(port), name: value}
    env.pop("FLASK_MAIL_SERVER", None)
    started = time.monotonic()
    demo = subprocess.Popen(["./scripts/demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    browser = Browser(f"http://127.0.0.1:{port}")
    try:
        check(browser, demo)
        print(f"demo check: served and checked {time.monotonic() - started:.0f}s after ./scripts/demo started")
    except (Failed, OSError, KeyError, StopIteration, ValueError) as problem:
        print(f"demo check FAILED: {problem!r}", file=sys.stderr)
        demo.send_signal(signal.SIGINT)
        print(Path(log.name).read_text(errors="replace")[-6000:], file=sys.stderr)
        return 1
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                print("demo check FAILED: Ctrl-C did not stop the demo within 30s", file=sys.stderr)
                return 1
    time.sleep(1)
    leftovers = demo_processes()
    if leftovers:
        print(f"demo check FAILED: still running after Ctrl-C: {leftovers}", file=sys.stderr)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        return 1
    print("demo check: Ctrl-C stopped everything the demo started")
    return 0


if __name__ == "__main__":
    sys.exit(main())

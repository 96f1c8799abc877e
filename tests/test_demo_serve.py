"""The demo as ``./scripts/demo`` runs it: ``flask --app plugin.demo helpdesk serve``.

gunicorn, the outbox worker and the built-in mail catcher, started by one command: the email a
customer's click causes is in the agent desk's "Sent email" page a moment later, with its subject,
recipient, text and HTML; Ctrl-C stops everything the command started.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest

from plugin.demo import create_app
from plugin.demo.mailbox import caught_messages, start_catcher
from plugin.demo.settings import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
from plugin.notifications.worker import drain
from tests.parts import missing_part
from tests.test_demo import csrf_from, sign_in

try:
    import aiosmtpd  # noqa: F401
    import gunicorn  # noqa: F401
except ImportError:  # pragma: no cover
    missing_part("the demo extra is not installed: pip install -e '.[demo]'")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def catcher(tmp_path):
    controller = start_catcher(tmp_path / "mail")
    yield controller
    controller.stop()


@pytest.fixture
def demo_with_catcher(database_url, tmp_path, catcher):
    app = create_app({"TESTING": True, "SECRET_KEY": "demo-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "MAIL_SERVER": catcher.hostname, "MAIL_PORT": catcher.port, "MAIL_SUPPRESS_SEND": False,
                      "HELPDESK_MAILBOX": str(tmp_path / "mail")},
                     instance_path=str(tmp_path / "instance"))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["self-billing", "seed-demo"]).exit_code == 0
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


def test_the_sent_email_page_shows_what_the_customer_received(demo_with_catcher, tmp_path):
    app = demo_with_catcher
    with app.app_context():
        report = drain()
    assert report.sent >= 1
    caught = caught_messages(tmp_path / "mail")
    assert len(caught) == report.sent

    client = app.test_client()
    assert client.get("/desk/mail").headers["Location"].startswith("/desk/login")  # agents only
    sign_in(client)
    listing = unescape(client.get("/desk/mail").get_data(as_text=True))
    newest = caught[0]
    assert newest.subject in listing and newest.to in listing
    assert 'href="/desk/mail"' in client.get("/desk/").get_data(as_text=True)  # linked from the desk

    keys = re.findall(r'href="/desk/mail/([^"]+)"', listing)
    assert len(keys) == len(caught)
    page = client.get(f"/desk/mail/{keys[0]}")
    shown = unescape(page.get_data(as_text=True))
    assert page.status_code == 200
    assert newest.subject in shown and newest.to in shown
    assert newest.text.strip().splitlines()[0] in shown
    assert newest.html and re.search(r'<iframe[^>]* sandbox srcdoc="', page.get_data(as_text=True))
    assert client.get("/desk/mail/no-such-message").status_code == 404


def test_without_the_catcher_the_page_says_where_email_goes(database_url, tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "demo-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "MAIL_SERVER": "smtp.example.net", "MAIL_PORT": 587},
                     instance_path=str(tmp_path / "instance"))
    client = app.test_client()
    sign_in(client)
    assert 'href="/desk/mail"' not in client.get("/desk/").get_data(as_text=True)
    assert "smtp.example.net:587" in client.get("/desk/mail").get_data(as_text=True)


def test_serve_runs_the_whole_demo_and_ctrl_c_stops_it(tmp_path):
    import urllib.request
    from http.cookiejar import CookieJar
    from urllib.parse import urlencode

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(FLASK_SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'demo.db'}", FLASK_SECRET_KEY="serve-test",
               FLASK_HELPDESK_MAILBOX=str(tmp_path / "mail"), FLASK_SELF_BILLING_INVOICE_CACHE_DIR=str(tmp_path / "pdf"),
               SERVE_TEST_TAG="helpdesk-serve-test")
    flask = [sys.executable, "-m", "flask", "--app", "plugin.demo"]
    for command in (["self-billing", "init-db"], ["self-billing", "seed-demo"]):
        subprocess.run([*flask, *command], env=env, check=True, capture_output=True)
    log = open(tmp_path / "serve.log", "wb")
    # SERVE_TEST_TAG in the environment marks every process serve starts (see _env_tagged_processes).
    serve = subprocess.Popen([*flask, "helpdesk", "serve", "--port", str(port), "--workers", "2"],
                             env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(path: str) -> str:
        with opener.open(base + path, timeout=10) as answer:
            return answer.read().decode()

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get("/billing/healthz")
                break
            except OSError:
                assert serve.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.3)
        login = get("/desk/login")
        opener.open(base + "/desk/login", data=urlencode({
            "csrf_token": csrf_from(login), "email": DEMO_AGENT_EMAIL, "password": DEMO_AGENT_PASSWORD,
            "next": ""}).encode(), timeout=10)
        # seeding queued email; the worker sends it to the catcher, the desk lists it.
        deadline = time.monotonic() + 10
        while "/desk/mail/" not in get("/desk/mail"):
            assert time.monotonic() < deadline, "no email reached the Sent email page"
            time.sleep(0.3)
        assert "gunicorn" in (tmp_path / "serve.log").read_text()
    finally:
        serve.send_signal(signal.SIGINT)
        status = serve.wait(timeout=30)
    assert status == 0, (tmp_path / "serve.log").read_text()
    assert "Demo stopped." in (tmp_path / "serve.log").read_text()
    leftovers = [pid for pid in _env_tagged_processes() if pid != serve.pid]
    assert leftovers == [], f"still running after Ctrl-C: {leftovers}"


def _env_tagged_processes() -> list[int]:
    """Processes whose environment carries the test's tag: everything serve started, and their children."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if b"SERVE_TEST_TAG=helpdesk-serve-test" in environ:
                found.append(int(entry.name))
    return found

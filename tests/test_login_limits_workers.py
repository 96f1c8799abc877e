"""The login limits hold across processes: the demo under gunicorn with 4 workers.

Each failed login lands on whichever worker accepts the connection. With counters per process
(``memory://``) "5 per 15 minutes" allowed up to 20 tries; the default storage (the app's own
database, ``self-billing-db://``) and Redis (a real ``redis-server``) count once for all workers,
so exactly the configured number of tries is allowed, then 429 with ``Retry-After``: for the
portal's JSON login, the portal's login page and the demo desk's sign-in.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.parts import missing_part

WORKERS = 4
TRIES = 12
LIMIT = 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


@pytest.fixture
def redis_uri(tmp_path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        missing_part("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def served(database_url: str, tmp_path: Path, storage: str | None) -> tuple[subprocess.Popen[bytes], str, Path]:
    try:
        import gunicorn
    except ImportError:
        missing_part("gunicorn is not installed: pip install -e '.[demo]'")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(FLASK_SQLALCHEMY_DATABASE_URI=database_url, FLASK_SECRET_KEY="workers-test",
               FLASK_SELF_BILLING_ADMIN_TOKEN=ADMIN_TOKEN, FLASK_SELF_BILLING_LOGIN_LIMIT_PER_EMAIL=f"{LIMIT} per hour",
               FLASK_HELPDESK_LOGIN_LIMIT_PER_EMAIL=f"{LIMIT} per hour", FLASK_MAIL_SUPPRESS_SEND="true")
    if storage:
        env["FLASK_SELF_BILLING_RATELIMIT_STORAGE_URI"] = storage
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
               "--error-logfile", str(log)]
    if int(gunicorn.__version__.split(".")[0]) >= 27:
        command.append("--no-control-socket")
    process = subprocess.Popen([*command, f"plugin.demo:create_app(instance_path={str(tmp_path / 'i')!r})"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/billing/healthz", process, log)
    settings = urllib.request.Request(base + "/billing/api/admin/settings", method="PUT",
                                      data=json.dumps({"enabled": True, "portal": "both"}).encode(),
                                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                               "Content-Type": "application/json"})
    urllib.request.urlopen(settings, timeout=10).read()
    return process, base, log


def status_of(request: urllib.request.Request) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def json_login(base: str, email: str) -> urllib.request.Request:
    return urllib.request.Request(base + "/billing/api/portal/login", method="POST",
                                  data=json.dumps({"order_id": "NO-SUCH-ORDER", "email": email}).encode(),
                                  headers={"Content-Type": "application/json"})


def form_post(base: str, page: str, action: str, fields: dict[str, str]) -> urllib.request.Request:
    """A form POST with the page's CSRF token (fetched through its own cookie jar, as a browser would)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    html = opener.open(base + page, timeout=10).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    request = urllib.request.Request(base + action, method="POST",
                                     data=urlencode({**fields, "csrf_token": token}).encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    request.opener = opener  # type: ignore[attr-defined]
    return request


def answers(make_request, tries: int = TRIES) -> list[int]:
    seen = []
    for _ in range(tries):
        request = make_request()
        opener = getattr(request, "opener", None)
        if opener is None:
            seen.append(status_of(request)[0])
            continue
        try:
            with opener.open(request, timeout=10) as answer:
                seen.append(answer.status)
        except urllib.error.HTTPError as error:
            seen.append(error.code)
    return seen


def check_limits(base: str) -> None:
    portal = answers(lambda: json_login(base, "victim@example.com"))
    assert portal == [401] * LIMIT + [429] * (TRIES - LIMIT), portal
    status, headers = status_of(json_login(base, "victim@example.com"))
    assert status == 429 and int(headers["Retry-After"]) > 0

    page = answers(lambda: form_post(base, "/billing/portal/", "/billing/portal/login",
                                     {"order_id": "NO-SUCH", "email": "page@example.com"}))
    assert page == [401] * LIMIT + [429] * (TRIES - LIMIT), page

    desk = answers(lambda: form_post(base, "/desk/login", "/desk/login",
                                     {"email": "agent@example.com", "password": "guess", "next": ""}))
    assert desk == [401] * LIMIT + [429] * (TRIES - LIMIT), desk


@pytest.mark.parametrize("storage", ["default", "redis"])
def test_failed_logins_are_counted_once_across_four_workers(database_url, tmp_path, storage, request):
    uri = request.getfixturevalue("redis_uri") if storage == "redis" else None
    process, base, log = served(database_url, tmp_path, uri)
    try:
        check_limits(base)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "Traceback" not in log.read_text(), log.read_text()

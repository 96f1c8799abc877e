"""A real, stateful Stripe API on loopback for the Stripe tests: the ``localstripe`` package.

``localstripe_url`` (session-wide) starts ``localstripe --port N --from-scratch`` on a free port,
waits until it answers and stops it at the end; each test gets an empty store (``DELETE
/_config/data``). Without the package (or the ``stripe`` library) the tests skip with the reason;
under ``CI=true`` they fail instead (:func:`tests.parts.missing_part`).

What localstripe is not (docs/stripe.md): it implements Plans, not Prices; it enforces neither
idempotency keys nor refund caps; it never sends ``charge.refunded`` nor
``customer.subscription.updated``; it can send signed webhooks (``POST /_config/webhooks/<id>``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.parts import missing_part

SECRET_KEY = "sk_test_selfbilling"
PUBLISHABLE_KEY = "pk_test_selfbilling"
WEBHOOK_SECRET = "whsec_selfbilling_test"


def need_stripe() -> Any:
    """The stripe library, or the test stops here."""
    try:
        import stripe
    except ImportError:
        missing_part("the stripe package is not installed (pip install -e '.[test]')")
    return stripe


def _localstripe_command() -> list[str] | None:
    script = Path(sys.executable).with_name("localstripe")
    if script.exists():
        return [str(script)]
    found = shutil.which("localstripe")
    return [found] if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/js.stripe.com/v3/", timeout=1) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def _localstripe_server(tmp_path_factory) -> Iterator[str]:
    need_stripe()
    command = _localstripe_command()
    if command is None:
        missing_part("localstripe is not installed (pip install -e '.[test]')")
    port = _free_port()
    log = (tmp_path_factory.mktemp("localstripe") / "localstripe.log").open("wb")
    process = subprocess.Popen([*command, "--port", str(port), "--from-scratch"], stdout=log,
                               stderr=subprocess.STDOUT, cwd=str(tmp_path_factory.getbasetemp()),
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"localstripe did not start on port {port} (see {log.name})", pytrace=False)
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def localstripe_url(_localstripe_server: str) -> str:
    """The running localstripe's address, its store emptied for this test."""
    request = urllib.request.Request(_localstripe_server + "/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()
    return _localstripe_server


def stripe_config(url: str, **extra: Any) -> dict[str, Any]:
    """The app config of a host on the Stripe gateway against localstripe at ``url``."""
    return {"SELF_BILLING_GATEWAY": "stripe", "SELF_BILLING_STRIPE_SECRET_KEY": SECRET_KEY,
            "SELF_BILLING_STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "SELF_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "SELF_BILLING_STRIPE_API_BASE": url,
            "SELF_BILLING_STRIPE_JS_URL": url + "/js.stripe.com/v3/", **extra}


def client(url: str) -> Any:
    """A StripeClient of the test's own (the merchant's side: what they do in Stripe's dashboard)."""
    stripe = need_stripe()
    made = stripe.StripeClient(SECRET_KEY, base_addresses={"api": url}, max_network_retries=0)
    return getattr(made, "v1", made)


def register_webhook(url: str, target: str, events: list[str] | None = None) -> None:
    """Make localstripe send its events, signed with WEBHOOK_SECRET, to ``target``."""
    body: dict[str, Any] = {"url": target, "secret": WEBHOOK_SECRET}
    if events is not None:
        body["events"] = events
    request = urllib.request.Request(url + "/_config/webhooks/test", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, as Stripe computes it."""
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    """A Stripe event's JSON body carrying ``obj``."""
    return json.dumps({"id": event_id or f"evt_test_{obj.get('id')}_{event_type}", "object": "event",
                       "type": event_type, "created": int(time.time()), "api_version": "2020-08-27",
                       "data": {"object": obj}, "livemode": False}).encode()

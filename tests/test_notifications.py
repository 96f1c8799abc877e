"""Customer email through the outbox, against a real SMTP server (aiosmtpd on loopback).

Emails are queued with the public Python API (``plugin.notifications.enqueue``)
and sent by the worker (``run_worker`` and ``flask self-billing worker --once``);
what the tests look at is what the SMTP server received and what the merchant
API reports. The flows that queue them (requests, replies, card changes) are
covered by their own tests.
"""
from __future__ import annotations

import re

import socket
import threading
import time
from datetime import timedelta

import pytest

from plugin.db import db, utcnow
from plugin.ledger.service import get_purchase
from plugin.notifications import KINDS, card_session, enqueue, failed_emails, queued_count, record_messages
from plugin.notifications.worker import run_worker
from tests.mail_support import SENDER, parts, smtp  # noqa: F401 - smtp is a fixture


@pytest.fixture
def mail_app(make_app, smtp):
    return make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False,
                    MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_MAIL_TIMEOUT_SECONDS=10)


@pytest.fixture
def shop(mail_app, admin_headers):
    """Price points and orders through the merchant's Python API, on the mail app."""
    from tests.conftest import Ledger

    ledger = Ledger(mail_app)
    ledger.price("pro-monthly")
    ledger.price("ebook", product="Python Ebook", amount="19.00", interval=None)
    return ledger


def queue(app, kind: str, order_id: str, **kwargs) -> None:
    with app.app_context():
        enqueue(kind, get_purchase(order_id), **kwargs)
        db.session.commit()


def worker_once(app, now=None):
    with app.app_context():
        return run_worker(once=True, now=now)


def outbox(client, admin_headers, status=None):
    query = f"?status={status}" if status else ""
    response = client.get(f"/billing/api/admin/email-outbox{query}", headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_each_kind_arrives_with_the_order_id_in_its_subject(mail_app, shop, smtp):
    shop.order("ORD-1001", email="ann@example.com")
    with mail_app.app_context():
        purchase = get_purchase("ORD-1001")
        for kind in KINDS:
            enqueue(kind, purchase, message="We are on it." if kind == "agent_reply" else None)
        db.session.commit()

    report = worker_once(mail_app, now=utcnow() + card_session.LONGEST)  # the card email waits for its session

    assert report.sent == len(KINDS)
    assert len(smtp.messages) == len(KINDS)
    for message in smtp.messages:
        assert "ORD-1001" in str(message["Subject"])
        assert message["To"] == "ann@example.com"
        assert message["X-Envelope-To"] == "ann@example.com"
        assert "billing@shop.test" in message["From"]
        assert message["Reply-To"] is None  # no SELF_BILLING_MAIL_REPLY_TO, no seller email: no header
        body = parts(message)
        assert set(body) == {"text/plain", "text/html"}
        assert "ORD-1001" in body["text/plain"] and "ORD-1001" in body["text/html"]
        # No seller name configured: signed with the sender's display name.
        assert "Kind regards,\nShop Billing" in body["text/plain"] and "Shop Billing" in body["text/html"]
    subjects = smtp.handler.subjects()
    assert "Your order ORD-1001: Pro Plan" in subjects  # the purchase confirmation
    assert "Your refund of $49.00 for order ORD-1001" in subjects
    reply = next(m for m in smtp.messages if str(m["Subject"]) == "Re: your order ORD-1001")
    assert "We are on it." in parts(reply)["text/plain"]


def test_nothing_is_queued_when_the_change_rolls_back(mail_app, shop, smtp):
    shop.order("ORD-1002")
    with mail_app.app_context():
        enqueue("cancellation_done", get_purchase("ORD-1002"))
        db.session.rollback()
        assert queued_count() == 0
    assert worker_once(mail_app).sent == 0
    assert smtp.messages == []


def test_worker_once_through_the_cli(mail_app, shop, smtp):
    shop.order("ORD-1003")
    queue(mail_app, "address_changed", "ORD-1003")

    result = mail_app.test_cli_runner().invoke(args=["self-billing", "worker", "--once"])

    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output
    assert smtp.handler.subjects() == ["Your billing address was changed (order ORD-1003)"]
    assert "New address: Ann Lee, 1 Main St" in parts(smtp.messages[0])["text/plain"]
    again = mail_app.test_cli_runner().invoke(args=["self-billing", "worker", "--once"])
    assert "No email was due." in again.output
    assert len(smtp.messages) == 1


def test_server_down_keeps_emails_queued_until_it_comes_back(mail_app, shop, smtp, client, admin_headers):
    shop.order("ORD-1004")
    smtp.stop()
    queue(mail_app, "refund_done", "ORD-1004")
    start = utcnow()

    result = mail_app.test_cli_runner().invoke(args=["self-billing", "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 to retry later" in result.output

    [row] = outbox(client, admin_headers, "queued")["emails"]
    assert row["attempts"] == 1
    assert "Could not connect to the mail server" in row["last_error"]
    next_at = row["next_attempt_at"]
    assert next_at > start.isoformat().replace("+00:00", "Z")
    # Times as every JSON answer writes them: UTC, whole seconds, a Z.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["created_at"]) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", next_at), row
    with mail_app.app_context():
        assert queued_count() == 1
    assert client.get("/billing/healthz").get_json()["mail_queue"] == 1

    smtp.start()
    assert worker_once(mail_app, now=start).sent == 0  # not due yet: the backoff holds
    assert smtp.messages == []
    report = worker_once(mail_app, now=start + timedelta(seconds=31))
    assert report.sent == 1
    assert smtp.handler.subjects() == ["Your refund of $49.00 for order ORD-1004"]
    [sent] = outbox(client, admin_headers, "sent")["emails"]
    assert sent["attempts"] == 2 and sent["last_error"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sent["sent_at"]), sent
    assert client.get("/billing/healthz").get_json()["mail_queue"] == 0


def test_a_mail_server_down_for_a_day_loses_nothing(make_app, smtp, admin_headers):
    smtp.stop()
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False,
                   MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_MAIL_RETRY_BASE_SECONDS=10,
                   SELF_BILLING_MAIL_RETRY_MAX_SECONDS=3600)
    from datetime import datetime

    from tests.conftest import Ledger

    ledger = Ledger(app)
    ledger.price()
    ledger.order("ORD-1005")
    queue(app, "cancellation_done", "ORD-1005")
    client = app.test_client()
    start = now = utcnow()
    delays = []
    while now - start < timedelta(days=1):  # the worker runs whenever the email is due
        worker_once(app, now=now)
        [row] = outbox(client, admin_headers)["emails"]
        assert row["status"] == "queued" and "Could not connect" in row["last_error"], row
        due = datetime.fromisoformat(row["next_attempt_at"].replace("Z", "+00:00"))
        delays.append(int((due - now).total_seconds()))
        now = due
    # Doubling from the base, then capped: about an hour apart at most, never given up.
    assert delays[:5] == [10, 20, 40, 80, 160] and max(delays) == 3600 and delays[-1] == 3600
    assert outbox(client, admin_headers, "failed")["emails"] == []

    smtp.start()  # the server is back: the next round delivers it, once
    worker_once(app, now=now)
    worker_once(app, now=now + timedelta(hours=2))
    [row] = outbox(client, admin_headers)["emails"]
    assert row["status"] == "sent" and row["attempts"] == len(delays) + 1
    assert [str(m["Subject"]) for m in smtp.messages].count(str(smtp.messages[0]["Subject"])) == 1
    assert len(smtp.messages) == 1


def test_two_workers_deliver_each_email_once(make_app, smtp, shop, mail_app):
    orders = [f"ORD-2{n:03d}" for n in range(40)]
    for order_id in orders:
        shop.order(order_id, email=f"{order_id.lower()}@example.com")
    with mail_app.app_context():
        for order_id in orders:
            enqueue("cancellation_done", get_purchase(order_id))
        db.session.commit()
    config = dict(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False,
                  MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_MAIL_BATCH_SIZE=3)
    apps = [make_app(**config), make_app(**config)]
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def work(app):
        try:
            with app.app_context():
                barrier.wait()
                reports.append(run_worker(once=True))
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(r.sent for r in reports) == 40
    received = sorted(m["To"] for m in smtp.messages)
    assert received == sorted(f"{o.lower()}@example.com" for o in orders)  # each exactly once
    assert len({m["Message-ID"] for m in smtp.messages}) == 40


def test_refused_recipient_fails_at_once_and_the_others_are_sent(mail_app, shop, smtp, client, admin_headers):
    shop.order("ORD-3001", email="ann@example.com")
    shop.order("ORD-3002", email="nobody@example.com")
    shop.order("ORD-3003", email="bob@example.com")
    smtp.handler.refuse.add("nobody@example.com")
    for order_id in ("ORD-3001", "ORD-3002", "ORD-3003"):
        queue(mail_app, "request_ticketed", order_id)

    report = worker_once(mail_app)

    assert (report.sent, report.failed, report.retried) == (2, 1, 0)
    assert sorted(m["To"] for m in smtp.messages) == ["ann@example.com", "bob@example.com"]
    [failed] = outbox(client, admin_headers, "failed")["emails"]
    assert failed["order_id"] == "ORD-3002" and failed["attempts"] == 1
    assert "550" in failed["last_error"] and "mailbox unavailable" in failed["last_error"]

    # The merchant fixes the customer's address and sends the email again.
    shop.order("ORD-3002", email="nora@example.com")
    response = client.post(f"/billing/api/admin/email-outbox/{failed['id']}/retry", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["to"] == "nora@example.com"
    assert worker_once(mail_app).sent == 1
    assert smtp.messages[-1]["To"] == "nora@example.com"
    again = client.post(f"/billing/api/admin/email-outbox/{failed['id']}/retry", headers=admin_headers)
    assert again.status_code == 409


def test_connection_dropped_mid_message_is_retried_and_delivered_once(mail_app, shop, smtp, client, admin_headers):
    for order_id in ("ORD-4001", "ORD-4002", "ORD-4003"):
        shop.order(order_id, email=f"{order_id.lower()}@example.com")
        queue(mail_app, "address_changed", order_id)
    smtp.handler.drop_data = 1
    now = utcnow()

    first = worker_once(mail_app, now=now)
    assert (first.sent, first.retried) == (2, 1)
    [queued] = outbox(client, admin_headers, "queued")["emails"]
    assert "closed the connection" in queued["last_error"]

    second = worker_once(mail_app, now=now + timedelta(seconds=31))
    assert second.sent == 1
    received = sorted(m["To"] for m in smtp.messages)
    assert received == ["ord-4001@example.com", "ord-4002@example.com", "ord-4003@example.com"]
    retried = next(m for m in smtp.messages if m["To"] == queued["to"])
    assert "ORD-400" in str(retried["Subject"])
    assert "New address: Ann Lee, 1 Main St, Springfield, IL, 62701, US" in parts(retried)["text/plain"]


def test_a_server_that_never_answers_times_out_and_the_email_waits(make_app, admin_headers):
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=silent.getsockname()[1], MAIL_SUPPRESS_SEND=False,
                       MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_MAIL_TIMEOUT_SECONDS=0.5)
        from tests.conftest import Ledger

        ledger = Ledger(app)
        ledger.price()
        ledger.order("ORD-4201")
        queue(app, "cancellation_done", "ORD-4201")
        report = worker_once(app)
    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    [row] = outbox(app.test_client(), admin_headers, "queued")["emails"]
    assert row["attempts"] == 1 and "did not answer in time" in row["last_error"]


def test_a_worker_that_died_mid_batch_leaves_rows_that_are_reclaimed_after_the_lease(mail_app, shop, smtp):
    from plugin.notifications.models import OutboxEmail

    shop.order("ORD-4101")
    queue(mail_app, "cancellation_done", "ORD-4101")
    with mail_app.app_context():
        row = db.session.query(OutboxEmail).one()
        row.status, row.claimed_by, row.claimed_at, row.attempts = "sending", "dead-worker", utcnow(), 1
        db.session.commit()
    assert worker_once(mail_app).sent == 0  # the lease still holds
    assert worker_once(mail_app, now=utcnow() + timedelta(seconds=601)).sent == 1
    assert len(smtp.messages) == 1


def test_merchant_templates_are_checked_when_saved(mail_app, shop, smtp, admin_headers):
    client = mail_app.test_client()
    url = "/billing/api/admin/email-templates/refund_done"
    cases = [
        ({"subject": "Refund for {order_id} {nope}", "body": "Hi"}, "subject", "{nope}"),
        ({"subject": "Refund for {order_id", "body": "Hi"}, "subject", "braces"),
        ({"subject": "Refund for {order_id}", "body": "Hi {first_name} }"}, "body", "braces"),
        ({"subject": "Refund for {order_id.__class__}", "body": "Hi"}, "subject", "{order_id.__class__}"),
        ({"subject": "Refund for {order_id:>99}", "body": "Hi"}, "subject", "takes no format"),
        ({"subject": "Refund for {0}", "body": "Hi"}, "subject", "no name"),
        ({"subject": "Your refund", "body": "Hi"}, "subject", "{order_id}"),
        ({"subject": "Refund {order_id}\nBcc: x@evil.test", "body": "Hi"}, "subject", "one line"),
        ({"subject": "Refund {order_id}", "body": "Hi {amount} {last_nam}"}, "body", "{last_nam}"),
    ]
    for body, field, words in cases:
        response = client.put(url, json=body, headers=admin_headers)
        assert response.status_code == 400, body
        error = response.get_json()["error"]
        assert words in error["fields"][field], (body, error)
        assert words in error["message"]
    assert client.put(url, json={"subject": "x {order_id}", "body": 5}, headers=admin_headers).status_code == 400
    assert client.put(url, json={"subject": "x {order_id}", "body": "y", "to": "z"},
                      headers=admin_headers).status_code == 400
    assert client.get(url, headers=admin_headers).get_json()["customized"] is False

    good = {"subject": "{first_name}, your {amount} refund ({order_id})",
            "body": "Dear {first_name} {last_name},\n\nWe refunded {amount} for {product} on {date}.\n"
                    "Literal braces: {{like this}}."}
    response = client.put(url, json=good, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["customized"] is True
    listed = client.get("/billing/api/admin/email-templates", headers=admin_headers).get_json()
    assert {t["kind"] for t in listed["templates"]} == set(KINDS)
    assert listed["placeholders"] == ["order_id", "first_name", "last_name", "product", "amount", "date",
                                      "merchant_name"]

    shop.order("ORD-5001", purchased_at="2026-10-01T10:00:00Z")
    queue(mail_app, "refund_done", "ORD-5001", extra={"date": "2026-11-26T09:00:00Z"})
    worker_once(mail_app)
    [message] = smtp.messages
    assert str(message["Subject"]) == "Ann, your $49.00 refund (ORD-5001)"
    text = parts(message)["text/plain"]
    assert "Dear Ann Lee,\n\nWe refunded $49.00 for Pro Plan on November 26, 2026." in text
    assert "Literal braces: {like this}." in text

    reset = client.delete(url, headers=admin_headers)
    assert reset.status_code == 200 and reset.get_json()["customized"] is False
    assert client.get("/billing/api/admin/email-templates/no_such_kind", headers=admin_headers).status_code == 404


def test_email_template_api_needs_the_merchant_token(mail_app):
    client = mail_app.test_client()
    assert client.get("/billing/api/admin/email-templates").status_code == 401
    assert client.get("/billing/api/admin/email-outbox",
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.put("/billing/api/admin/email-templates/refund_done",
                      json={"subject": "{order_id}", "body": "x"}).status_code == 401


def test_values_are_shown_as_written_and_escaped_in_html(mail_app, shop, smtp):
    shop.order("ORD-6001", first_name="<b>Ann</b>", last_name="{order_id}")
    queue(mail_app, "agent_reply", "ORD-6001", message="Use {first_name}? <script>alert(1)</script>\nThanks")
    worker_once(mail_app)
    [message] = smtp.messages
    body = parts(message)
    assert "Hi <b>Ann</b>," in body["text/plain"]
    assert "Use {first_name}? <script>alert(1)</script>" in body["text/plain"]
    assert "<script>" not in body["text/html"] and "&lt;script&gt;" in body["text/html"]
    assert "&lt;b&gt;Ann&lt;/b&gt;" in body["text/html"]


def test_send_after_commit_sends_without_a_worker_and_never_before_commit(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False,
                   MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_MAIL_SEND_AFTER_COMMIT=True)
    from tests.conftest import Ledger

    ledger = Ledger(app)
    ledger.price()
    ledger.order("ORD-7001")
    with app.app_context():
        enqueue("cancellation_done", get_purchase("ORD-7001"))
        db.session.flush()
        assert smtp.messages == []  # flushed but not committed: nothing goes out
        db.session.rollback()
    assert smtp.messages == []
    with app.app_context():
        enqueue("cancellation_done", get_purchase("ORD-7001"))
        db.session.commit()
        assert smtp.handler.subjects() == ["Your Pro Plan subscription is cancelled (order ORD-7001)"]
        assert queued_count() == 0

    smtp.stop()
    with app.app_context():
        enqueue("refund_done", get_purchase("ORD-7001"))
        db.session.commit()  # the send fails; the commit does not
        assert queued_count() == 1
    smtp.start()
    assert worker_once(app, now=utcnow() + timedelta(seconds=31)).sent == 1
    assert len(smtp.messages) == 2


def test_loop_mode_sends_what_arrives_until_stopped(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False,
                   MAIL_DEFAULT_SENDER=SENDER, SELF_BILLING_WORKER_POLL_SECONDS=0.1)
    from tests.conftest import Ledger

    ledger = Ledger(app)
    ledger.price()
    ledger.order("ORD-8001")
    stop = threading.Event()
    done = []

    def loop():
        with app.app_context():
            done.append(run_worker(once=False, stop=stop))

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        queue(app, "address_changed", "ORD-8001")
        deadline = time.monotonic() + 30
        while not smtp.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert smtp.handler.subjects() == ["Your billing address was changed (order ORD-8001)"]
    assert done[0].sent == 1


def test_a_broken_host_template_fails_that_email_only(mail_app, shop, smtp, client, admin_headers, tmp_path):
    folder = tmp_path / "host_templates" / "self_billing" / "email"
    folder.mkdir(parents=True)
    (folder / "refund_done.txt").write_text("{% extends 'self_billing/email/_layout.txt' %}{% block details %}"
                                            "{{ extra.missing.deeper }}{% endblock %}")
    (folder / "cancellation_done.txt").write_text("Host layout for {{ order_id }}: {{ body }}")
    # The host's own template folder comes first, as for every template of the plugin.
    mail_app.jinja_loader.searchpath.insert(0, str(tmp_path / "host_templates"))
    shop.order("ORD-9001")
    queue(mail_app, "refund_done", "ORD-9001")
    queue(mail_app, "cancellation_done", "ORD-9001")

    report = worker_once(mail_app)

    assert (report.sent, report.failed) == (1, 1)
    [failed] = outbox(client, admin_headers, "failed")["emails"]
    assert failed["last_error"].startswith("Could not render the email")
    assert parts(smtp.messages[0])["text/plain"].startswith("Host layout for ORD-9001: Hi Ann,")


def test_missing_sender_is_said_plainly(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False)
    result = app.test_cli_runner().invoke(args=["self-billing", "worker", "--once"])
    assert result.exit_code != 0
    assert "MAIL_DEFAULT_SENDER" in result.output


def test_unknown_outbox_status_is_a_400(mail_app, admin_headers):
    response = mail_app.test_client().get("/billing/api/admin/email-outbox?status=lost", headers=admin_headers)
    assert response.status_code == 400
    assert "queued" in response.get_json()["error"]["message"]


def test_enqueue_refuses_an_unknown_kind(mail_app, shop):
    shop.order("ORD-9101")
    with mail_app.app_context(), pytest.raises(ValueError, match="purchase_confirmation"):
        enqueue("welcome", get_purchase("ORD-9101"))


def test_record_messages_sees_what_the_worker_sends_with_suppressed_mail(app, ledger, client, admin_headers):
    ledger.price()
    ledger.order("ORD-9201")
    queue(app, "request_declined", "ORD-9201", message="Outside the refund window.")
    with app.app_context(), record_messages() as sent:  # the default test app suppresses sending
        report = run_worker(once=True)
    assert report.sent == 1
    [message] = sent
    assert message.subject == "About your request for order ORD-9201"
    assert message.recipients == ["ann@example.com"]
    assert "Outside the refund window." in message.body and "Outside the refund window." in message.html
    assert outbox(client, admin_headers, "sent")["counts"]["sent"] == 1


def test_worker_on_a_database_without_the_schema_says_so(tmp_path):
    from flask import Flask

    from plugin import SelfBilling

    app = Flask("no_schema", instance_path=str(tmp_path / "instance"))
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.db'}", MAIL_DEFAULT_SENDER=SENDER)
    SelfBilling(app)
    result = app.test_cli_runner().invoke(args=["self-billing", "worker", "--once"])
    assert result.exit_code == 1
    assert "nothing was sent" in result.output and "init-db" in result.output
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()


def test_a_paragraph_longer_than_an_smtp_line_arrives_whole(mail_app, shop, smtp, client, admin_headers):
    # SMTP servers refuse lines over 998 octets (aiosmtpd too: "500 Line too long"); an agent's reply
    # written as one paragraph is longer than that.
    shop.order("ORD-1001", email="ann@example.com")
    paragraph = " ".join(f"word{i}" for i in range(200)) + " €uro " + "x" * 1200
    queue(mail_app, "agent_reply", "ORD-1001", message=paragraph)

    report = worker_once(mail_app)

    assert report.sent == 1 and report.failed == 0, report.errors
    body = parts(smtp.messages[-1])
    assert paragraph in body["text/plain"]
    assert paragraph in " ".join(body["text/html"].split())
    assert outbox(client, admin_headers, status="failed")["emails"] == []

"""The customer portal's JSON API (contract section 4) through HTTP: login, session, CSRF, rate limits,
purchases, cancellation, refunds, billing address, cards, ownership and bad input."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, Customer

API = "/billing/api/portal"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def days_ago(days: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def stock(ledger, *, cancellation: str = "automatic", refunds: str = "automatic", enabled: bool = True) -> None:
    """Ann: a monthly subscription (2 payments, the last refundable) and a one-time e-book; Bob: one subscription."""
    ledger.settings(enabled=enabled, portal="both", cancellation={"mode": cancellation}, refunds={"mode": refunds})
    ledger.price("pro-monthly")
    ledger.price("pro-delayed", product="Team Plan", amount="99.00", cancellation="delayed")
    ledger.price("ebook", product="E-book", amount="19.00", interval=None)
    ledger.order("SUB-1", purchased_at=days_ago(40))
    ledger.payment("SUB-1", "PAY-1", days_ago(40))
    ledger.payment("SUB-1", "PAY-2", days_ago(10))
    ledger.order("BOOK-1", price_point="ebook", purchased_at=days_ago(5))
    ledger.payment("BOOK-1", "PAY-B1", days_ago(5))
    ledger.order("BOB-1", email="bob@example.com", first_name="Bob", purchased_at=days_ago(3))
    ledger.payment("BOB-1", "PAY-BOB", days_ago(3))


@pytest.fixture
def shop(ledger):
    stock(ledger)
    return ledger


@pytest.fixture
def ann(client, shop) -> Customer:
    customer = Customer(client)
    assert customer.login("SUB-1").status_code == 200
    return customer


def admin_order(client, order_id: str) -> dict[str, Any]:
    answer = client.get(f"/billing/api/admin/orders/{order_id}", headers=ADMIN)
    assert answer.status_code == 200
    return answer.get_json()


def sent_emails(app, now: datetime | None = None) -> list[Any]:
    """Send what the outbox holds (the worker's one round, as at ``now``) and return the messages."""
    from plugin.notifications.worker import drain

    app.config["MAIL_DEFAULT_SENDER"] = "billing@example.com"
    with app.app_context():
        with app.extensions["mail"].record_messages() as outbox:
            drain(now=now)
    return outbox


def card_token(client, number: str = "4242424242424242") -> str:
    answer = client.post("/billing/sandbox/tokens",
                         json={"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"})
    assert answer.status_code in (200, 201), answer.get_json()
    return answer.get_json()["token"]


def error(answer) -> dict[str, Any]:
    body = answer.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"]
    return body["error"]


# -- login --------------------------------------------------------------------------------------


def test_login_with_order_id_and_email_of_the_same_lead(client, shop):
    answer = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "  ANN@Example.COM "})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["lead"] == {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"}
    assert body["csrf_token"]
    # any of the lead's orders logs in
    assert client.post(f"{API}/login", json={"order_id": "BOOK-1", "email": "ann@example.com"}).status_code == 200


@pytest.mark.parametrize("order_id, email", [
    ("NOPE-1", "ann@example.com"),      # unknown order
    ("SUB-1", "nobody@example.com"),    # unknown email
    ("BOB-1", "ann@example.com"),       # both exist, different leads
    ("SUB-1", "bob@example.com"),
])
def test_a_wrong_pair_gets_one_message_whatever_was_wrong(client, shop, order_id, email):
    answer = client.post(f"{API}/login", json={"order_id": order_id, "email": email})
    assert answer.status_code == 401
    reference = client.post(f"{API}/login", json={"order_id": "X", "email": "y@example.com"})
    assert answer.get_json() == reference.get_json()
    assert client.get(f"{API}/purchases").status_code == 401


@pytest.mark.parametrize("body", [
    {"order_id": "", "email": "ann@example.com"},
    {"order_id": "SUB-1", "email": ""},
    {"order_id": "   ", "email": "ann@example.com"},
    {"order_id": "S" * 2000, "email": "ann@example.com"},
    {"order_id": "SUB-1", "email": "a" * 2000 + "@example.com"},
    {"order_id": "SUB-1"},
    {"order_id": 12, "email": "ann@example.com"},
    {"order_id": "SUB-1", "email": "ann@example.com", "admin": True},
])
def test_login_refuses_empty_or_oversized_fields(client, shop, body):
    answer = client.post(f"{API}/login", json=body)
    assert answer.status_code == 400
    assert error(answer)["fields"]
    assert client.get(f"{API}/purchases").status_code == 401


@pytest.mark.parametrize("order_id, email", [
    ("SUB-1", "\u0430nn@example.com"),                 # Cyrillic a
    ("SUB-1", "ann@ex\u0430mple.com"),
    ("SUB\u20111", "ann@example.com"),                 # non-breaking hyphen
    ("ＳＵＢ-1", "ann@example.com"),                      # full-width letters
    ("SUB-1", "ann@example.com\u200b"),                # zero-width space
    ("' OR '1'='1", "ann@example.com"),
    ("SUB-1", "' OR 1=1 --"),
    ("SUB-1'; DROP TABLE sb_leads; --", "ann@example.com"),
    ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>@example.com"),
])
def test_look_alikes_sql_and_html_do_not_log_in(client, shop, order_id, email):
    answer = client.post(f"{API}/login", json={"order_id": order_id, "email": email})
    assert answer.status_code == 401
    assert "<" not in answer.get_data(as_text=True)
    assert client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"}).status_code == 200


def test_login_needs_a_json_body(client, shop):
    assert client.post(f"{API}/login", data="order_id=SUB-1").status_code == 415
    answer = client.post(f"{API}/login", data="{nope", content_type="application/json")
    assert answer.status_code == 400 and error(answer)["code"] == "malformed_json"


def test_portal_disabled_answers_403_on_every_route(client, ledger):
    stock(ledger, enabled=False)
    answer = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"})
    assert answer.status_code == 403
    assert "not enabled" in error(answer)["message"]
    for method, path in [("get", "/purchases"), ("post", "/purchases/SUB-1/cancel"),
                         ("get", "/purchases/SUB-1/payment-methods"), ("post", "/logout")]:
        assert getattr(client, method)(API + path).status_code == 403


def test_disabling_the_portal_shuts_out_a_logged_in_customer(client, ann, shop):
    assert ann.get("/purchases").status_code == 200
    shop.settings(enabled=False)
    answer = ann.get("/purchases")
    assert answer.status_code == 403 and "purchases" not in answer.get_json()


# -- session ----------------------------------------------------------------------------------


def test_logout_ends_the_session_and_needs_the_csrf_header(client, ann):
    assert client.post(f"{API}/logout").status_code == 400  # no header
    assert ann.get("/purchases").status_code == 200
    assert ann.post("/logout").status_code == 200
    answer = ann.get("/purchases")
    assert answer.status_code == 401 and error(answer)["code"] == "not_logged_in"


def test_an_idle_session_expires(make_app, client, shop):
    customer = Customer(client)
    customer.login("SUB-1")
    assert customer.get("/purchases").status_code == 200
    with client.session_transaction() as session:
        session["self_billing_seen"] -= 31 * 60  # the default idle limit is 30 minutes
    assert customer.get("/purchases").status_code == 401


def test_a_cookie_copied_before_logout_opens_nothing_after_it(app, client, ann):
    stolen = client.get_cookie("session").value  # what an attacker copied while Ann was logged in
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get(f"{API}/purchases").status_code == 200

    assert ann.post("/logout").status_code == 200

    for _ in range(3):  # replaying it renews nothing
        answer = thief.get(f"{API}/purchases")
        assert answer.status_code == 401 and error(answer)["code"] == "not_logged_in"
    page = thief.get("/billing/portal/")
    assert "Log in" in page.get_data(as_text=True) and "SUB-1" not in page.get_data(as_text=True)
    assert ann.get("/purchases").status_code == 401


def test_a_session_ends_after_its_lifetime_however_active(make_app, shop, monkeypatch):
    import plugin.portal.auth as auth

    app = make_app(SELF_BILLING_SESSION_MAX_HOURS=2)
    customer = Customer(app.test_client())
    assert customer.login("SUB-1").status_code == 200
    start = auth.utcnow()
    for minutes in (20, 40, 60, 80, 100, 119):  # used every 20 minutes: never idle
        monkeypatch.setattr(auth, "utcnow", lambda m=minutes: start + timedelta(minutes=m))
        monkeypatch.setattr(auth.time, "time", lambda m=minutes: start.timestamp() + m * 60)
        assert customer.get("/purchases").status_code == 200, minutes
    monkeypatch.setattr(auth, "utcnow", lambda: start + timedelta(minutes=121))
    monkeypatch.setattr(auth.time, "time", lambda: start.timestamp() + 121 * 60)
    answer = customer.get("/purchases")
    assert answer.status_code == 401 and error(answer)["code"] == "not_logged_in"


def test_tick_deletes_sessions_that_can_no_longer_be_live(app, client, ann, shop):
    from plugin.db import db
    from plugin.portal.models import PortalSession

    bob = Customer(app.test_client())
    assert bob.login("SUB-1").status_code == 200  # a second, live session
    assert ann.post("/logout").status_code == 200
    runner = app.test_cli_runner()
    result = runner.invoke(args=["self-billing", "tick"])
    assert "Deleted 1 ended or expired portal session(s)." in result.output, result.output
    with app.app_context():
        assert db.session.query(PortalSession).count() == 1
    assert bob.get("/purchases").status_code == 200
    later = (datetime.now(timezone.utc) + timedelta(hours=13)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "Deleted 1 " in runner.invoke(args=["self-billing", "tick", "--now", later]).output


def test_login_rotates_the_session_and_keeps_the_hosts_csrf_token(app, client, shop):
    first, second = Customer(client), Customer(client)
    first.login("SUB-1")
    with client.session_transaction() as session:
        token, csrf = session["self_billing_session"], session["csrf_token"]
    stolen = client.get_cookie("session").value
    second.login("BOOK-1")
    with client.session_transaction() as session:
        assert session["self_billing_session"] != token
        assert session["csrf_token"] == csrf  # the host's forms in other tabs keep working
    # the session from before the new login is over, whoever holds a copy of it
    old = app.test_client()
    old.set_cookie("session", stolen)
    assert old.get(f"{API}/purchases").status_code == 401


def test_session_cookie_flags_when_the_host_opts_in(make_app):
    from tests.conftest import Ledger

    app = make_app(SELF_BILLING_SESSION_COOKIE_DEFAULTS=True)
    stock(Ledger(app))
    client = app.test_client()
    answer = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"},
                         base_url="https://localhost")
    assert "Secure" in secure.headers["Set-Cookie"]


def test_host_choices_for_the_session_cookie_are_kept(make_app):
    app = make_app(SESSION_COOKIE_SAMESITE="Strict", SELF_BILLING_SESSION_COOKIE_DEFAULTS=True)
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_the_host_session_cookie_and_interface_are_left_alone_by_default(make_app):
    app = make_app()
    assert app.config["SESSION_COOKIE_SAMESITE"] is None
    assert type(app.session_interface).__name__ == "SecureCookieSessionInterface"


def test_session_endpoint_gives_a_fresh_csrf_token(ann):
    answer = ann.get("/session")
    assert answer.status_code == 200
    assert answer.get_json()["lead"]["email"] == "ann@example.com"
    ann.csrf_token = answer.get_json()["csrf_token"]
    assert ann.post("/purchases/SUB-1/cancel").status_code == 202


# -- rate limits --------------------------------------------------------------------------------


def test_failed_logins_per_email_are_limited_with_retry_after(make_app):
    app = make_app(SELF_BILLING_LOGIN_LIMIT_PER_EMAIL="3 per 15 minutes")
    from tests.conftest import Ledger

    stock(Ledger(app))
    client = app.test_client()
    for _ in range(3):
        assert client.post(f"{API}/login", json={"order_id": "WRONG", "email": "ann@example.com"}).status_code == 401
    # even the right pair is refused now, for that email (trimmed and case-insensitive) only
    answer = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": " Ann@Example.com"})
    assert answer.status_code == 429
    assert error(answer)["code"] == "rate_limited"
    assert 0 < int(answer.headers["Retry-After"]) <= 15 * 60
    assert "try again in" in error(answer)["message"]
    assert client.post(f"{API}/login", json={"order_id": "BOB-1", "email": "bob@example.com"}).status_code == 200


def test_logins_still_work_and_are_limited_when_the_shared_limit_storage_is_down(make_app):
    pytest.importorskip("redis", reason="the redis client (test extras) is needed to point at a Redis that is down")
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(SELF_BILLING_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}/0",
                   SELF_BILLING_LOGIN_LIMIT_PER_EMAIL="2 per 15 minutes")
    from tests.conftest import Ledger

    stock(Ledger(app))
    client = app.test_client()
    assert client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"}).status_code == 200
    for _ in range(2):
        assert client.post(f"{API}/login", json={"order_id": "WRONG", "email": "bob@example.com"}).status_code == 401
    assert client.post(f"{API}/login", json={"order_id": "BOB-1", "email": "bob@example.com"}).status_code == 429


def test_failed_logins_per_address_are_limited(make_app):
    app = make_app(SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS="4 per 15 minutes")
    from tests.conftest import Ledger

    stock(Ledger(app))
    client = app.test_client()
    for n in range(4):
        assert client.post(f"{API}/login", json={"order_id": "X", "email": f"guess{n}@example.com"}).status_code == 401
    answer = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"})
    assert answer.status_code == 429 and "Retry-After" in answer.headers
    other_address = client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"},
                                environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other_address.status_code == 200


def test_the_order_id_logs_in_in_any_letter_case_and_counts_as_no_failure(make_app):
    app = make_app(SELF_BILLING_LOGIN_LIMIT_PER_EMAIL="2 per 15 minutes")
    from tests.conftest import Ledger

    stock(Ledger(app))
    client = app.test_client()
    for typed in ("sub-1", "Sub-1", " SUB-1 ", "bOoK-1"):  # four logins, more than the two failures allowed
        answer = client.post(f"{API}/login", json={"order_id": typed, "email": "ann@example.com"})
        assert answer.status_code == 200, (typed, answer.get_json())
    assert client.post(f"{API}/login", json={"order_id": "bob-1", "email": "ann@example.com"}).status_code == 401


def test_successful_logins_do_not_count(make_app):
    app = make_app(SELF_BILLING_LOGIN_LIMIT_PER_EMAIL="2 per 15 minutes")
    from tests.conftest import Ledger

    stock(Ledger(app))
    client = app.test_client()
    for _ in range(6):
        assert client.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"}).status_code == 200


def test_limits_leave_the_hosts_routes_alone(make_app):
    app = make_app(SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS="1 per 15 minutes", RATELIMIT_DEFAULT="1 per hour")

    @app.get("/host-page")
    def host_page():
        return "host"

    client = app.test_client()
    assert [client.get("/host-page").status_code for _ in range(5)] == [200] * 5


# -- CSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-CSRFToken": "forged"}, {"X-CSRFToken": ""}])
def test_state_changes_without_a_valid_csrf_header_are_refused_and_change_nothing(client, ann, shop, headers):
    before = admin_order(client, "SUB-1")
    requests = [
        client.post(f"{API}/purchases/SUB-1/cancel", json={}, headers=headers),
        client.post(f"{API}/payments/PAY-2/refund", json={}, headers=headers),
        client.put(f"{API}/purchases/SUB-1/billing-address", headers=headers,
                   json={"name": "X", "line1": "1 Road", "city": "Paris", "country": "FR"}),
        client.post(f"{API}/purchases/SUB-1/payment-methods", json={"token": card_token(client)}, headers=headers),
        client.delete(f"{API}/purchases/SUB-1/payment-methods/1", headers=headers),
    ]
    for answer in requests:
        assert answer.status_code == 400
        assert error(answer)["code"] == "csrf_failed"
        assert "X-CSRFToken" in error(answer)["message"]
    assert admin_order(client, "SUB-1") == before


def test_a_token_from_another_session_is_refused(app, shop):
    first, second = Customer(app.test_client()), Customer(app.test_client())
    first.login("SUB-1")
    second.login("BOB-1", "bob@example.com")
    second.csrf_token = first.csrf_token
    assert second.post("/purchases/BOB-1/cancel").status_code == 400


# -- purchases ------------------------------------------------------------------------------------


def test_purchases_are_the_leads_own_newest_first(ann):
    purchases = ann.get("/purchases").get_json()["purchases"]
    assert [p["order_id"] for p in purchases] == ["BOOK-1", "SUB-1"]
    book, sub = purchases
    assert book["kind"] == "one_time" and book["next_payment_at"] is None
    assert sub["kind"] == "subscription" and sub["next_payment_at"]
    assert [p["payment_id"] for p in sub["payments"]] == ["PAY-2", "PAY-1"]


def test_each_purchase_holds_its_latest_page_of_payments_and_the_rest_is_paged(client, shop, ann):
    for n in range(3, 13):  # SUB-1: 12 payments in all
        shop.payment("SUB-1", f"PAY-X{n}", days_ago(10 - n * 0.5))
    sub = next(p for p in ann.get("/purchases").get_json()["purchases"] if p["order_id"] == "SUB-1")
    assert [p["payment_id"] for p in sub["payments"]] == ["PAY-X12", "PAY-X11", "PAY-X10", "PAY-X9", "PAY-X8"]
    assert sub["payments_total"] == 12 and sub["payments_next"]
    assert ann.get("/purchases/SUB-1").get_json()["payments_total"] == 12
    seen, after, pages = [p["payment_id"] for p in sub["payments"]], sub["payments_next"], []
    while after:
        answer = ann.get(f"/purchases/SUB-1/payments?after={after}")
        assert answer.status_code == 200
        body = answer.get_json()
        assert set(body) == {"payments", "next"}
        assert set(body["payments"][0]) == set(sub["payments"][0])  # P's payment shape
        pages.append(len(body["payments"]))
        seen += [p["payment_id"] for p in body["payments"]]
        after = body["next"]
    assert pages == [5, 2]
    assert seen == [f"PAY-X{n}" for n in range(12, 2, -1)] + ["PAY-2", "PAY-1"]
    first = ann.get("/purchases/SUB-1/payments").get_json()  # no cursor: the latest page, as in P
    assert first["payments"] == sub["payments"] and first["next"] == sub["payments_next"]
    assert ann.get("/purchases/SUB-1/payments?after=").get_json() == first
    # The merchant's view of a purchase holds every payment.
    assert len(admin_order(client, "SUB-1")["payments"]) == 12


def test_a_payment_recorded_meanwhile_neither_repeats_nor_hides_one(shop, ann):
    for n in range(3, 9):
        shop.payment("SUB-1", f"PAY-X{n}", days_ago(9 - n))
    sub = ann.get("/purchases/SUB-1").get_json()
    shop.payment("SUB-1", "PAY-NEW", days_ago(0))  # a renewal between two pages
    older = ann.get(f"/purchases/SUB-1/payments?after={sub['payments_next']}").get_json()
    assert [p["payment_id"] for p in older["payments"]] == ["PAY-X3", "PAY-2", "PAY-1"] and older["next"] is None


def test_one_payment_a_purchase_has_no_next_page(ann):
    book = ann.get("/purchases/BOOK-1").get_json()
    assert book["payments_total"] == 1 and book["payments_next"] is None
    assert ann.get("/purchases/BOOK-1/payments").get_json()["next"] is None


@pytest.mark.parametrize("cursor", [
    "nope", "x" * 500, "%C3%A9", "MjAyNi0xMS0wMVQxMDowMDowMCswMDowMH4tMQ",  # ...~-1
    "MjAyNi0xMS0wMVQxMDowMDowMH4x",  # a time without its offset
    "bm90LWEtZGF0ZX4x", "MjAyNi0xMS0wMVQxMDowMDowMCswMDowMH45OTk5OTk5OTk5OTk5", "%2B%2F%3D%3D", "====",
    "MDAwMS0wMS0wMVQwMDowMDowMCswMTowMH4x", "OTk5OS0xMi0zMVQyMzo1OTo1OS0wMTowMH4x",  # out of range in UTC
])
def test_a_bad_cursor_is_400_with_a_clear_message(ann, cursor):
    answer = ann.get(f"/purchases/SUB-1/payments?after={cursor}")
    assert answer.status_code == 400
    body = error(answer)
    assert body["code"] == "bad_cursor" and "'next'" in body["message"] and body["fields"] == {
        "after": "not a cursor from this API"}


def test_another_leads_payment_history_is_not_found_like_an_unknown_one(client, ann):
    bob = Customer(client.application.test_client())
    bob.login("BOB-1", "bob@example.com")
    cursor = bob.get("/purchases/BOB-1").get_json()["payments_next"]
    theirs, unknown = ann.get("/purchases/BOB-1/payments"), ann.get("/purchases/NOPE-9/payments")
    assert theirs.status_code == unknown.status_code == 404 and theirs.get_json() == unknown.get_json()
    assert cursor is None and ann.get("/purchases/BOB-1/payments?after=bogus").status_code == 404
    assert ann.get("/purchases/SUB-1/payments?after=" + "A" * 81).status_code == 400


def test_not_logged_in_gets_401(client, shop):
    for path in ("/purchases", "/purchases/SUB-1/payment-methods", "/purchases/SUB-1/payments", "/session"):
        answer = client.get(API + path)
        assert answer.status_code == 401 and error(answer)["code"] == "not_logged_in"


# -- ownership ----------------------------------------------------------------------------------


def test_another_leads_order_or_payment_is_not_found_like_an_unknown_one(client, ann):
    pairs = [
        (ann.post("/purchases/BOB-1/cancel"), ann.post("/purchases/NOPE-9/cancel")),
        (ann.post("/payments/PAY-BOB/refund"), ann.post("/payments/NOPE-9/refund")),
        (ann.put("/purchases/BOB-1/billing-address", json={"name": "A", "line1": "B", "city": "C", "country": "US"}),
         ann.put("/purchases/NOPE-9/billing-address", json={"name": "A", "line1": "B", "city": "C", "country": "US"})),
        (ann.get("/purchases/BOB-1/payment-methods"), ann.get("/purchases/NOPE-9/payment-methods")),
        (ann.post("/purchases/BOB-1/payment-methods", json={"token": "tok_x"}),
         ann.post("/purchases/NOPE-9/payment-methods", json={"token": "tok_x"})),
        (ann.post("/purchases/BOB-1/payment-methods/1/default"), ann.post("/purchases/NOPE-9/payment-methods/1/default")),
        (ann.delete("/purchases/BOB-1/payment-methods/1"), ann.delete("/purchases/NOPE-9/payment-methods/1")),
        (ann.get("/purchases/BOB-1"), ann.get("/purchases/NOPE-9")),
    ]
    for theirs, unknown in pairs:
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.get_json() == unknown.get_json()
    assert admin_order(client, "BOB-1")["status"] == "active"


def test_a_card_of_another_purchase_is_not_found(client, ann):
    bob_card = admin_order(client, "BOB-1")
    bob = Customer(client.application.test_client())
    bob.login("BOB-1", "bob@example.com")
    bob_card_id = bob.get("/purchases/BOB-1/payment-methods").get_json()["payment_methods"][0]["id"]
    for answer in (ann.post(f"/purchases/SUB-1/payment-methods/{bob_card_id}/default"),
                   ann.delete(f"/purchases/SUB-1/payment-methods/{bob_card_id}")):
        assert answer.status_code == 404
    assert bob.get("/purchases/BOB-1/payment-methods").get_json()["payment_methods"][0]["id"] == bob_card_id
    assert bob_card["status"] == "active"


# -- cancellation -------------------------------------------------------------------------------


def test_automatic_instant_cancellation(client, app, ann):
    answer = ann.post("/purchases/SUB-1/cancel", json={"reason": "Too expensive"})
    assert answer.status_code == 202
    request = answer.get_json()["request"]
    assert request["type"] == "cancellation" and request["outcome"] == "cancelled"
    purchase = ann.get("/purchases/SUB-1").get_json()
    assert purchase["status"] == "cancelled" and purchase["actions"]["cancel"] is False
    # safe to repeat: the same request, nothing moves twice
    again = ann.post("/purchases/SUB-1/cancel")
    assert again.status_code in (202, 409)
    assert [m.subject for m in sent_emails(app) if "SUB-1" in m.subject]


def test_delayed_cancellation_is_scheduled(client, shop):
    shop.order("TEAM-1", price_point="pro-delayed", purchased_at=days_ago(3))
    shop.payment("TEAM-1", "PAY-T1", days_ago(3))
    customer = Customer(client)
    customer.login("TEAM-1")
    request = customer.post("/purchases/TEAM-1/cancel").get_json()["request"]
    assert request["outcome"] == "cancel_scheduled"
    purchase = customer.get("/purchases/TEAM-1").get_json()
    assert purchase["status"] == "cancel_scheduled" and purchase["cancels_at"]


def test_cancellation_by_request_opens_a_ticket_and_a_repeat_returns_it(client, ledger):
    stock(ledger, cancellation="request")
    customer = Customer(client)
    customer.login("SUB-1")
    first = customer.post("/purchases/SUB-1/cancel", json={"reason": "Moving on"})
    assert first.status_code == 202
    request = first.get_json()["request"]
    assert request["state"] == "ticketed" and request["ticket_id"]
    second = customer.post("/purchases/SUB-1/cancel")
    assert second.status_code == 202 and second.get_json()["request"]["id"] == request["id"]


def test_cancellation_disabled_is_403_and_one_time_purchases_are_409(client, ledger):
    stock(ledger, cancellation="disabled")
    customer = Customer(client)
    customer.login("SUB-1")
    answer = customer.post("/purchases/SUB-1/cancel")
    assert answer.status_code == 403 and error(answer)["code"] == "cancellation_disabled"
    ledger.settings(cancellation={"mode": "automatic"})
    assert customer.post("/purchases/BOOK-1/cancel").status_code == 409


@pytest.mark.parametrize("body", [{"reason": 5}, {"reason": "x" * 2001}, {"why": "no"}, ["reason"]])
def test_cancel_refuses_a_bad_body(client, ann, body):
    answer = ann.post("/purchases/SUB-1/cancel", json=body)
    assert answer.status_code == 400
    assert admin_order(client, "SUB-1")["status"] == "active"


# -- refunds ------------------------------------------------------------------------------------


def test_automatic_refund_of_the_full_remaining_amount(client, app, ann):
    answer = ann.post("/payments/PAY-2/refund", json={"reason": "Did not use it"})
    assert answer.status_code == 202
    request = answer.get_json()["request"]
    assert request["type"] == "refund" and request["outcome"] == "refunded" and request["amount"] == "49.00"
    payment = next(p for p in ann.get("/purchases/SUB-1").get_json()["payments"] if p["payment_id"] == "PAY-2")
    assert payment["status"] == "refunded" and payment["refunded_amount"] == "49.00"
    assert payment["actions"]["refund"] is False
    repeat = ann.post("/payments/PAY-2/refund")
    assert repeat.status_code == 409  # refunded once; money moves once
    assert [m for m in sent_emails(app) if "SUB-1" in m.subject]


def test_refund_outside_the_window_is_409_and_disabled_is_403(client, ledger):
    stock(ledger)
    customer = Customer(client)
    customer.login("SUB-1")
    old = customer.post("/payments/PAY-1/refund")  # 40 days ago, window 30 days
    assert old.status_code == 409 and error(old)["code"] == "refund_not_available"
    ledger.settings(refunds={"mode": "disabled"})
    answer = customer.post("/payments/PAY-2/refund")
    assert answer.status_code == 403 and error(answer)["code"] == "refunds_disabled"


def test_refund_by_request_opens_a_ticket(client, ledger):
    stock(ledger, refunds="request")
    customer = Customer(client)
    customer.login("SUB-1")
    request = customer.post("/payments/PAY-B1/refund").get_json()["request"]
    assert request["state"] == "ticketed" and request["ticket_id"]


# -- billing address ----------------------------------------------------------------------------

NEW_ADDRESS = {"name": "Ann Lee GmbH", "line1": "Hauptstr. 5", "line2": "", "city": "Berlin",
               "region": "", "postal_code": "10115", "country": "DE"}


def test_billing_address_applies_to_future_invoices_and_emails_the_customer(client, app, ann):
    answer = ann.put("/purchases/SUB-1/billing-address", json=NEW_ADDRESS)
    assert answer.status_code == 200
    assert answer.get_json()["billing_address"] == NEW_ADDRESS
    assert answer.get_json()["order_id"] == "SUB-1"
    with app.app_context():
        from plugin.db import db
        from plugin.ledger.models import Payment

        past = db.session.query(Payment).filter_by(payment_id="PAY-2").one()
        assert past.bill_to["city"] == "Springfield"  # issued invoices keep their address
    emails = sent_emails(app)
    assert len([m for m in emails if "SUB-1" in m.subject]) == 1


@pytest.mark.parametrize("change, field", [
    ({"city": ""}, "city"),
    ({"line1": None}, "line1"),
    ({"country": "XX"}, "country"),
    ({"country": "Germany"}, "country"),
    ({"country": "\uff24\uff25"}, "country"),          # full-width "DE"
    ({"country": "D\u0415"}, "country"),                # Cyrillic E
    ({"name": "N" * 2000}, "name"),
    ({"postal_code": 10115}, "postal_code"),
    ({"phone": "123"}, "phone"),
])
def test_billing_address_refuses_bad_input_and_writes_nothing(client, ann, change, field):
    body = {**NEW_ADDRESS, **change}
    if change.get("line1", "") is None:
        del body["line1"]
    answer = ann.put("/purchases/SUB-1/billing-address", json=body)
    assert answer.status_code == 400
    assert field in error(answer)["fields"]
    assert admin_order(client, "SUB-1")["billing_address"]["city"] == "Springfield"


def test_html_and_sql_in_the_address_are_kept_as_text(ann):
    body = {**NEW_ADDRESS, "name": "<script>alert(1)</script>", "line1": "'; DROP TABLE sb_purchases; --"}
    answer = ann.put("/purchases/SUB-1/billing-address", json=body)
    assert answer.status_code == 200
    assert ann.get("/purchases/SUB-1").get_json()["billing_address"]["name"] == "<script>alert(1)</script>"


def test_address_of_a_one_time_purchase_cannot_change(ann):
    answer = ann.put("/purchases/BOOK-1/billing-address", json=NEW_ADDRESS)
    assert answer.status_code == 409


# -- cards --------------------------------------------------------------------------------------


def cards(customer: Customer, order_id: str = "SUB-1") -> list[dict[str, Any]]:
    answer = customer.get(f"/purchases/{order_id}/payment-methods")
    assert answer.status_code == 200
    return answer.get_json()["payment_methods"]


def test_saved_cards_show_brand_and_last_four_only(ann):
    [card] = cards(ann)
    assert card == {"id": card["id"], "type": "card", "brand": "visa", "last4": "4242",
                    "exp_month": 12, "exp_year": 2030, "default": True}


def test_add_card_make_it_default_remove_the_old_one(client, app, ann):
    [old] = cards(ann)
    token = card_token(client, "5555555555554444")
    added = ann.post("/purchases/SUB-1/payment-methods", json={"token": token})
    assert added.status_code == 201
    new = added.get_json()
    assert new["brand"] == "mastercard" and new["last4"] == "4444" and new["default"] is False
    assert ann.post("/purchases/SUB-1/payment-methods", json={"token": token}).get_json()["id"] == new["id"]

    removing_default = ann.delete(f"/purchases/SUB-1/payment-methods/{old['id']}")
    assert removing_default.status_code == 409 and error(removing_default)["code"] == "default_card"

    made_default = ann.post(f"/purchases/SUB-1/payment-methods/{new['id']}/default")
    assert made_default.status_code == 200 and made_default.get_json()["default"] is True
    assert ann.get("/purchases/SUB-1").get_json()["payment_method"]["last4"] == "4444"

    removed = ann.delete(f"/purchases/SUB-1/payment-methods/{old['id']}")
    assert removed.status_code == 200
    assert [c["id"] for c in cards(ann)] == [new["id"]]
    assert [m for m in sent_emails(app) if "SUB-1" in m.subject] == []  # the card session may go on
    later = datetime.now(timezone.utc) + timedelta(minutes=20)
    assert len([m for m in sent_emails(app, now=later) if "SUB-1" in m.subject]) == 1  # one email for the session


def test_the_last_card_of_an_active_subscription_stays(ann):
    [only] = cards(ann)
    answer = ann.delete(f"/purchases/SUB-1/payment-methods/{only['id']}")
    assert answer.status_code == 409
    assert error(answer)["code"] == "last_card"
    assert "at least one card" in error(answer)["message"].lower()
    assert len(cards(ann)) == 1


def test_a_declined_card_is_402_and_not_saved(client, ann):
    answer = ann.post("/purchases/SUB-1/payment-methods", json={"token": card_token(client, "4000000000000002")})
    assert answer.status_code == 402
    assert error(answer)["code"] == "card_declined"
    assert len(cards(ann)) == 1


@pytest.mark.parametrize("body, code", [
    ({"token": "tok_from_nowhere"}, "invalid_token"),
    ({"token": ""}, "invalid_token"),
    ({"token": "x" * 2000}, "invalid_token"),
    ({"token": "<script>"}, "invalid_token"),
    ({}, "invalid_token"),
    ({"token": 42}, "invalid_token"),
    ({"number": "4242424242424242", "exp_month": 1, "exp_year": 2031, "cvc": "123"}, "invalid"),
])
def test_bad_tokens_are_400_and_nothing_is_saved(ann, body, code):
    answer = ann.post("/purchases/SUB-1/payment-methods", json=body)
    assert answer.status_code == 400
    assert error(answer)["code"] == code
    assert "4242424242424242" not in answer.get_data(as_text=True)
    assert len(cards(ann)) == 1


def test_a_token_is_not_reusable_on_another_purchase(client, shop):
    ann, bob = Customer(shop.app.test_client()), Customer(shop.app.test_client())
    ann.login("SUB-1")
    bob.login("BOB-1", "bob@example.com")
    token = card_token(client)
    assert ann.post("/purchases/SUB-1/payment-methods", json={"token": token}).status_code == 201
    answer = bob.post("/purchases/BOB-1/payment-methods", json={"token": token})
    assert answer.status_code == 400 and error(answer)["code"] == "invalid_token"


def test_a_processor_outage_is_503_and_saves_nothing(client, ann):
    assert client.put("/billing/api/admin/sandbox/faults", json={"attach_card": 1}, headers=ADMIN).status_code == 200
    answer = ann.post("/purchases/SUB-1/payment-methods", json={"token": card_token(client)})
    assert answer.status_code == 503 and "try again" in error(answer)["message"].lower()
    assert len(cards(ann)) == 1


def test_unknown_card_ids_are_404(ann):
    for path in ("/purchases/SUB-1/payment-methods/999999/default", "/purchases/SUB-1/payment-methods/abc/default"):
        assert ann.post(path).status_code == 404
    assert ann.delete("/purchases/SUB-1/payment-methods/" + "9" * 40).status_code == 404


def test_paypal_purchases_answer_every_card_call_with_paypal_managed(client, shop):
    shop.order("PP-1", email="ann@example.com", purchased_at=days_ago(2),
               payment_method={"type": "paypal", "payer_email": "ann@paypal.example.com"})
    customer = Customer(client)
    customer.login("PP-1")
    answers = [
        customer.get("/purchases/PP-1/payment-methods"),
        customer.post("/purchases/PP-1/payment-methods", json={"token": card_token(client)}),
        customer.post("/purchases/PP-1/payment-methods/1/default"),
        customer.delete("/purchases/PP-1/payment-methods/1"),
    ]
    for answer in answers:
        assert answer.status_code == 409
        err = error(answer)
        assert err["code"] == "paypal_managed"
        assert err["manage_url"].startswith("https://")
        assert "Manage automatic payments" in err["message"]


def test_cards_of_a_one_time_purchase_cannot_change(client, ann):
    answer = ann.post("/purchases/BOOK-1/payment-methods", json={"token": card_token(client)})
    assert answer.status_code == 409


# -- what customers see of a request's handling ---------------------------------------------------------


def test_customers_see_the_billing_team_and_a_plain_sentence_never_internals(make_app):
    from tests.agent_support import ALICE, bearer_agent
    from tests.conftest import Ledger

    app = make_app(agent_loader=bearer_agent)
    ledger = Ledger(app)
    stock(ledger, refunds="request")
    client = app.test_client()
    ann = Customer(client)
    assert ann.login("SUB-1").status_code == 200
    asked = ann.post("/payments/PAY-2/refund", json={"reason": "Did not use it"})
    assert asked.status_code == 202, asked.get_json()
    ticket_id = asked.get_json()["request"]["ticket_id"]
    declined = client.post(f"/billing/api/agent/tickets/{ticket_id}/events", headers=ALICE,
                           json={"event": "decline", "message": "The refund window has passed, sorry."})
    assert declined.status_code == 200, declined.get_json()
    agent_email = declined.get_json()["request"]["history"][-1]["by"]
    assert "@" in agent_email  # agents see who did it

    # A processor failure on an automatic refund: agents see the processor's words, customers a sentence.
    ledger.settings(refunds={"mode": "automatic"})
    assert client.put("/billing/api/admin/sandbox/faults", json={"refund": 1}, headers=ADMIN).status_code == 200
    failed = ann.post("/payments/PAY-B1/refund", json={})
    assert failed.status_code == 202, failed.get_json()
    request_id = failed.get_json()["request"]["id"]

    purchases = ann.get("/purchases")
    body = purchases.get_data(as_text=True)
    assert agent_email not in body
    requests = {r["id"]: r for p in purchases.get_json()["purchases"] for r in p["requests"]}
    decline = next(r for r in requests.values() if r["outcome"] == "declined")
    assert decline["history"][-1]["by"] == "billing team"
    assert decline["history"][-1]["note"] == "The refund window has passed, sorry."  # the message meant for her
    broken = requests[request_id]
    assert broken["error"].startswith("Our payment processor could not complete this")
    assert {e["by"] for e in broken["history"]} <= {"customer", "system", "billing team"}
    assert "processor_failed" not in {e["event"] for e in broken["history"] if "note" in e}
    agents_view = client.get("/billing/api/agent/tickets?status=open", headers=ALICE).get_json()
    raw = next(t["request"] for t in agents_view["tickets"] if t["request"] and t["request"]["id"] == request_id)
    assert raw["error"] and raw["error"] != broken["error"]  # agents still see the processor's words
    assert raw["error"] not in body


# -- a failure after the money moved ---------------------------------------------------------------------


def _failing_recorder(monkeypatch, times: int) -> list[int]:
    """Make recording the processor's outcome fail ``times`` times with a database error."""
    from sqlalchemy.exc import OperationalError

    from plugin.workflows import steps

    real, calls = steps._finish_pending, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("UPDATE sb_requests ...", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "_finish_pending", flaky)
    monkeypatch.setattr(steps, "RECORD_RETRY_PAUSES", (0.01, 0.01, 0.01))
    return calls


def _sandbox_refunds(app) -> list[int]:
    from sqlalchemy import select

    from plugin.db import db
    from plugin.payments.sandbox_models import SandboxOperation

    with app.app_context():
        return list(db.session.execute(select(SandboxOperation.amount_cents)
                                       .where(SandboxOperation.kind == "refund")).scalars())


def test_a_database_hiccup_after_the_refund_is_retried_at_once(app, ann, monkeypatch):
    calls = _failing_recorder(monkeypatch, times=2)
    answer = ann.post("/payments/PAY-B1/refund", json={})
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["request"]["outcome"] == "refunded"
    assert len(calls) == 3 and _sandbox_refunds(app) == [1900]


def test_a_database_down_after_the_refund_says_what_happened_and_tick_records_it_once(app, ann, monkeypatch):
    from plugin.workflows import steps

    real = steps._finish_pending
    _failing_recorder(monkeypatch, times=100)
    answer = ann.post("/payments/PAY-B1/refund", json={})
    assert answer.status_code == 503, answer.get_json()
    failure = error(answer)
    assert failure["code"] == "recording_delayed"
    assert "refund was made" in failure["message"] and "nothing will be done twice" in failure["message"]
    assert _sandbox_refunds(app) == [1900]

    monkeypatch.setattr(steps, "_finish_pending", real)  # the database is back
    later = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = app.test_cli_runner().invoke(args=["self-billing", "tick", "--now", later])
    assert "Resumed 1 pending" in result.output, result.output
    book = next(p for p in ann.get("/purchases").get_json()["purchases"] if p["order_id"] == "BOOK-1")
    assert book["payments"][0]["refunded_amount"] == "19.00"
    assert _sandbox_refunds(app) == [1900]  # one refund at the processor, ever


# -- the way in while the login is paused: a one-time link by email ---------------------------------


def _login_link_in(app, email: str) -> str | None:
    """The link of the newest login_link email queued for ``email``, as the worker renders it."""
    from sqlalchemy import select

    from plugin.db import db
    from plugin.notifications.models import OutboxEmail

    with app.app_context():
        row = db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "login_link",
                                                           OutboxEmail.to_address == email)
                                 .order_by(OutboxEmail.id.desc())).scalars().first()
        return row.context["extra"]["link"] if row is not None else None


def test_an_attacker_pausing_the_login_cannot_lock_the_customer_out(make_app):
    import re

    from tests.conftest import Ledger

    app = make_app(SELF_BILLING_LOGIN_LIMIT_PER_EMAIL="3 per 15 minutes")
    stock(Ledger(app))
    attacker = app.test_client()
    for _ in range(3):
        attacker.post(f"{API}/login", json={"order_id": "GUESS", "email": "ann@example.com"})
    ann = app.test_client()
    paused = ann.post(f"{API}/login", json={"order_id": "SUB-1", "email": "ann@example.com"})
    assert paused.status_code == 429 and "login link" in error(paused)["message"]

    # The page says the same and offers the link form, open.
    page = ann.get("/billing/portal/")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    blocked = ann.post("/billing/portal/login", data={"csrf_token": token, "order_id": "SUB-1",
                                                      "email": "ann@example.com"})
    assert blocked.status_code == 429
    html = blocked.get_data(as_text=True)
    assert """href="/billing/portal/login/link" class="sb-button">Can't log in? Email me a login link""" in html

    form = ann.get("/billing/portal/login/link")
    assert form.status_code == 200 and "Email me a login link" in form.get_data(as_text=True)
    sent = ann.post("/billing/portal/login/link", data={"csrf_token": token, "order_id": "SUB-1",
                                                        "email": " Ann@Example.com "})
    assert sent.status_code == 200 and "we have emailed a login link" in sent.get_data(as_text=True)
    link = _login_link_in(app, "ann@example.com")
    assert link and link.startswith("http://localhost/billing/portal/login/link/")
    path = link.removeprefix("http://localhost")

    # Opening the link (a mail scanner's prefetch too) uses nothing; its button logs in, once.
    assert ann.get(path).status_code == 200 and ann.get(path).status_code == 200
    button = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', ann.get(path).get_data(as_text=True))
    done = ann.post(path, data={"csrf_token": button.group(1)})
    assert done.status_code == 302
    assert Customer(ann).get("/purchases").status_code == 200  # logged in, though the form is still paused
    again = attacker.post(path, data={"csrf_token": button.group(1)})
    assert again.status_code in (400, 410)
    reused = app.test_client()
    reused_page = reused.get(path).get_data(as_text=True)
    reused_token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', reused_page).group(1)
    spent = reused.post(path, data={"csrf_token": reused_token})
    assert spent.status_code == 410 and "expired or was already used" in spent.get_data(as_text=True)


def test_asking_for_a_link_reveals_nothing_and_is_limited_on_its_own(make_app):
    from tests.conftest import Ledger

    app = make_app(SELF_BILLING_LOGIN_LINK_LIMIT_PER_EMAIL="2 per hour")
    stock(Ledger(app))
    client = app.test_client()
    known = client.post(f"{API}/login-link", json={"order_id": "SUB-1", "email": "ann@example.com"})
    unknown = client.post(f"{API}/login-link", json={"order_id": "SUB-1", "email": "bob@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json()  # the same answer, matching pair or not
    assert _login_link_in(app, "ann@example.com") and _login_link_in(app, "bob@example.com") is None
    assert _login_link_in(app, "ann@example.com").count("/login/link/") == 1
    assert client.post(f"{API}/login-link", json={"order_id": "BOB-1", "email": "bob@example.com"}).status_code == 202
    too_many = client.post(f"{API}/login-link", json={"order_id": "BOB-1", "email": "bob@example.com"})
    assert too_many.status_code == 429 and "Retry-After" in too_many.headers
    # Asking for links is no failed login: the pair still logs in with the form.
    assert client.post(f"{API}/login", json={"order_id": "BOB-1", "email": "bob@example.com"}).status_code == 200
    assert client.post(f"{API}/login-link", json={"email": "x"}).status_code == 400


def test_a_login_link_expires(make_app, monkeypatch):
    from tests.conftest import Ledger

    import plugin.portal.login_links as links

    app = make_app(SELF_BILLING_LOGIN_LINK_MINUTES=15)
    stock(Ledger(app))
    client = app.test_client()
    client.post(f"{API}/login-link", json={"order_id": "SUB-1", "email": "ann@example.com"})
    token = _login_link_in(app, "ann@example.com").rsplit("/", 1)[-1]
    start = links.utcnow()
    monkeypatch.setattr(links, "utcnow", lambda: start + timedelta(minutes=16))
    with app.test_request_context():
        assert links.use_login_link(token) is None
    monkeypatch.setattr(links, "utcnow", lambda: start + timedelta(minutes=14))
    with app.test_request_context():
        assert links.use_login_link(token).email == "ann@example.com"
        assert links.use_login_link(token) is None  # once

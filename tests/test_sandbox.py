"""The sandbox processor: idempotency keys, injected faults, and its card token endpoint.

The token endpoint is what a card form posts to cross-origin; these tests check
its answers, its validation, its CORS preflight, that it never keeps a session,
and that the card number is found nowhere afterwards: not in any row, not in
the database files, not in the logs.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from plugin.db import Base, db
from plugin.ledger import service
from plugin.ledger.models import Payment, Purchase
from plugin.payments import get_gateway, processor
from plugin.payments.interface import CardDeclined, GatewayError, InvalidToken, PayPalManaged, ProcessorOutage
from plugin.payments.sandbox_models import SandboxOperation, SandboxToken

from .conftest import ADMIN_TOKEN

TOKENS = "/billing/sandbox/tokens"
FAULTS = "/billing/api/admin/sandbox/faults"
GOOD = "4242424242424242"
DECLINES = "4000000000000002"
NEXT_YEAR = datetime.now(timezone.utc).year + 1


def card(number: str = GOOD, **changes):
    body = {"number": number, "exp_month": 12, "exp_year": NEXT_YEAR, "cvc": "123"}
    body.update(changes)
    return body


@pytest.fixture
def paid(app, ledger):
    """A monthly order with one 49.00 payment, and a one-time PayPal order."""
    ledger.price()
    ledger.order("ORD-1")
    ledger.payment("ORD-1", "PAY-1", "2026-10-01T10:00:00Z")
    ledger.price("ebook", interval=None, amount="9.00")
    ledger.order("ORD-PP", price_point="ebook",
                 payment_method={"type": "paypal", "payer_email": "ann@example.com"})
    return app


def refund(app, amount_cents: int, key: str, payment_id: str = "PAY-1"):
    with app.app_context():
        payment = db.session.execute(select(Payment).where(Payment.payment_id == payment_id)).scalar_one()
        purchase = db.session.get(Purchase, payment.purchase_id)
        return get_gateway().refund(processor.refund_order(purchase, payment, amount_cents, key))


def operations(app, kind: str = "refund") -> list[SandboxOperation]:
    with app.app_context():
        return db.session.execute(select(SandboxOperation).where(SandboxOperation.kind == kind)).scalars().all()


# -- idempotency ------------------------------------------------------------------------------


def test_same_key_twice_is_one_refund_with_the_same_reference(paid):
    first = refund(paid, 1000, "req_1")
    again = refund(paid, 1000, "req_1")
    assert first.reference.startswith("re_") and again == first
    assert first.amount_cents == 1000 and first.currency == "USD"
    assert [(op.amount_cents, op.reference) for op in operations(paid)] == [(1000, first.reference)]

    other = refund(paid, 3900, "req_2")  # another key is another refund, up to what remains
    assert other.reference != first.reference
    with pytest.raises(GatewayError, match="more than what remains"):
        refund(paid, 1, "req_3")
    assert sum(op.amount_cents for op in operations(paid)) == 4900


def test_a_key_used_for_another_payment_is_refused(paid, ledger):
    ledger.payment("ORD-1", "PAY-2", "2026-11-01T10:00:00Z")
    refund(paid, 1000, "req_1")
    with pytest.raises(GatewayError, match="already used"):
        refund(paid, 1000, "req_1", payment_id="PAY-2")
    assert len(operations(paid)) == 1


def test_concurrent_calls_with_one_key_move_money_once(paid):
    threads = 8
    barrier = threading.Barrier(threads)
    results, errors = [], []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(refund(paid, 2500, "req_same"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    assert len(results) == threads and len({r.reference for r in results}) == 1
    assert [op.amount_cents for op in operations(paid)] == [2500]


def test_concurrent_refunds_with_other_keys_never_pass_the_payment(paid):
    # Ten different refunds of 10.00 on a 49.00 payment at once: at most four can be made. Under
    # PostgreSQL's READ COMMITTED each call's total missed the others' uncommitted claims.
    threads = 10
    barrier = threading.Barrier(threads)
    made, refused, errors = [], [], []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            made.append(refund(paid, 1000, f"req_{n}"))
        except GatewayError:
            refused.append(n)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    assert len(made) == 4 and len(refused) == 6
    assert sum(op.amount_cents for op in operations(paid)) == 4000


def test_cancel_is_idempotent_too(paid):
    with paid.app_context():
        purchase = service.get_purchase("ORD-1")
        first = get_gateway().cancel_subscription(processor.cancel_order(purchase, True, "req_c"))
        again = get_gateway().cancel_subscription(processor.cancel_order(purchase, False, "req_c"))
    assert again == first and first.at_period_end is True
    assert len(operations(paid, "cancel")) == 1


# -- faults -------------------------------------------------------------------------------------


def test_injected_faults_fail_the_next_n_calls_then_succeed(paid, client):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = client.put(FAULTS, json={"refund": 2, "cancel": 1, "attach_card": 1}, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"refund": 2, "cancel": 1, "resume": 0, "attach_card": 1}

    for _ in range(2):
        with pytest.raises(ProcessorOutage):
            refund(paid, 1000, "req_1")
    assert operations(paid) == []  # a failed call moved nothing and did not use up the key
    result = refund(paid, 1000, "req_1")
    assert refund(paid, 1000, "req_1") == result

    token = client.post(TOKENS, json=card()).get_json()["token"]
    with paid.app_context():
        purchase = service.get_purchase("ORD-1")
        with pytest.raises(ProcessorOutage):
            get_gateway().cancel_subscription(processor.cancel_order(purchase, False, "req_c"))
        assert get_gateway().cancel_subscription(processor.cancel_order(purchase, False, "req_c")).at_period_end is False
        with pytest.raises(ProcessorOutage):
            get_gateway().attach_payment_method(processor.purchase_ref(purchase), token)
        assert get_gateway().attach_payment_method(processor.purchase_ref(purchase), token).last4 == "4242"
    assert client.get(FAULTS, headers=headers).get_json() == {"refund": 0, "cancel": 0, "resume": 0, "attach_card": 0}


# -- the token endpoint -------------------------------------------------------------------------


def test_test_cards_attach_or_decline(paid, client):
    good = client.post(TOKENS, json=card())
    assert good.status_code == 201
    body = good.get_json()
    assert body["brand"] == "visa" and body["last4"] == "4242" and body["token"].startswith("tok_")
    assert set(body) == {"token", "brand", "last4"}

    declined = client.post(TOKENS, json=card(DECLINES))
    assert declined.status_code == 201  # tokenizing works; the decline comes when it is attached

    with paid.app_context():
        purchase = service.get_purchase("ORD-1")
        details = get_gateway().attach_payment_method(processor.purchase_ref(purchase), body["token"])
        assert (details.brand, details.last4, details.exp_month, details.exp_year) == ("visa", "4242", 12, NEXT_YEAR)
        with pytest.raises(CardDeclined):
            get_gateway().attach_payment_method(processor.purchase_ref(purchase), declined.get_json()["token"])
        with pytest.raises(InvalidToken):
            get_gateway().attach_payment_method(processor.purchase_ref(purchase), "tok_made_up")


def test_paypal_purchases_are_managed_in_paypal(paid, client):
    token = client.post(TOKENS, json=card()).get_json()["token"]
    with paid.app_context():
        purchase = service.get_purchase("ORD-PP")
        with pytest.raises(PayPalManaged, match="PayPal") as raised:
            get_gateway().attach_payment_method(processor.purchase_ref(purchase), token)
    assert raised.value.code == "paypal_managed" and raised.value.manage_url.startswith("https://")


def test_brands_and_spaced_numbers(client):
    cases = {"5555 5555 5555 4444": ("mastercard", "4444"), "378282246310005": ("amex", "0005"),
             "6011111111111117": ("discover", "1117"), "4111 1111 1111 1111": ("visa", "1111")}
    for number, (brand, last4) in cases.items():
        body = client.post(TOKENS, json=card(number)).get_json()
        assert (body["brand"], body["last4"]) == (brand, last4)
    two_digit_year = client.post(TOKENS, json=card(exp_month="01", exp_year=str(NEXT_YEAR % 100), cvc="0123"))
    assert two_digit_year.status_code == 201


@pytest.mark.parametrize("changes,field", [
    ({"number": "4242424242424241"}, "number"),  # Luhn fails
    ({"number": "4242-4242-4242-4242"}, "number"),
    ({"number": "42424242424"}, "number"),  # 11 digits
    ({"number": "4" * 20}, "number"),
    ({"number": "４２４２４２４２４２４２４２４２"}, "number"),  # full-width digits
    ({"number": 4242424242424242}, "number"),
    ({"exp_month": 0}, "exp_month"),
    ({"exp_month": 13}, "exp_month"),
    ({"exp_month": True}, "exp_month"),
    ({"exp_month": 1.5}, "exp_month"),
    ({"exp_year": 2001}, "exp_year"),
    ({"exp_year": "soon"}, "exp_year"),
    ({"exp_year": NEXT_YEAR + 60}, "exp_year"),
    ({"cvc": "12"}, "cvc"),
    ({"cvc": "12345"}, "cvc"),
    ({"cvc": 123}, "cvc"),
    ({"cvc": "12a"}, "cvc"),
    ({"name": "Ann"}, "name"),
])
def test_bad_card_fields_are_400_naming_the_field(app, client, changes, field):
    response = client.post(TOKENS, json=card(**changes))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid" and field in error["fields"]
    assert "4242424242424241" not in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(SandboxToken)).scalar_one() == 0


def test_an_expired_month_of_this_year_is_refused(client):
    now = datetime.now(timezone.utc)
    if now.month == 1:
        pytest.skip("in January no month of this year is in the past")
    response = client.post(TOKENS, json=card(exp_month=now.month - 1, exp_year=now.year))
    assert response.status_code == 400 and "exp_year" in response.get_json()["error"]["fields"]
    assert client.post(TOKENS, json=card(exp_month=now.month, exp_year=now.year)).status_code == 201


def test_missing_fields_and_wrong_bodies(client):
    missing = client.post(TOKENS, json={})
    assert set(missing.get_json()["error"]["fields"]) == {"number", "exp_month", "exp_year", "cvc"}
    form = client.post(TOKENS, data=card())
    assert form.status_code == 415 and form.get_json()["error"]["code"] == "unsupported_media_type"
    huge = client.post(TOKENS, data='{"number": "' + "4" * (10 * 1024 * 1024) + '"}', content_type="application/json")
    assert huge.status_code == 413


def test_the_card_number_is_kept_nowhere(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    numbers = [GOOD, DECLINES, "5555555555554444"]
    for number in numbers:
        assert client.post(TOKENS, json=card(number)).status_code == 201
    assert client.post(TOKENS, json=card("4242424242424241")).status_code == 400

    with app.app_context():
        rows = [
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in db.session.execute(select(table)).all()
        ]
        url = make_url(str(db.engine.url))
    assert len([r for r in rows if "tok_" in r]) == 3
    everything = "\n".join(rows) + caplog.text
    for number in numbers + ["4242424242424241"]:
        assert number not in everything

    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]
        assert path in files
        raw = b"".join(p.read_bytes() for p in files)
        for number in numbers + ["4242424242424241"]:
            assert number.encode() not in raw
            assert number.encode("utf-16-le") not in raw


def test_token_endpoint_is_cross_origin_without_session_or_csrf(client):
    preflight = client.options(TOKENS, headers={"Origin": "https://shop.example",
                                                "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers

    posted = client.post(TOKENS, json=card(), headers={"Origin": "https://shop.example"})
    assert posted.status_code == 201  # no CSRF token, no cookie
    assert posted.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in posted.headers
    refused = client.post(TOKENS, json=card(cvc="1"), headers={"Origin": "https://shop.example"})
    assert refused.status_code == 400 and refused.headers["Access-Control-Allow-Origin"] == "*"

    # only this route: the merchant API stays same-origin
    admin = client.options(FAULTS, headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "PUT"})
    assert "Access-Control-Allow-Origin" not in admin.headers
    admin = client.get("/billing/api/admin/settings", headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                                              "Origin": "https://shop.example"})
    assert admin.status_code == 200 and "Access-Control-Allow-Origin" not in admin.headers


def test_token_endpoint_exists_only_with_the_sandbox(make_app):
    client = make_app(SELF_BILLING_GATEWAY="tests.test_merchant_api:make_other_gateway").test_client()
    response = client.post(TOKENS, json=card())
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "sandbox_not_in_use"

"""The merchant API (contract section 3) over HTTP: auth, round trips, every bad input of issue 2.

Bad input must get the contract's error form and status and write nothing; each
such test re-reads settings, the price point and the order through the API, and
counts every table's rows, before and after.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from plugin.db import Base, db
from plugin.errors import BillingError
from plugin.ledger import service

from .conftest import ADMIN_TOKEN

API = "/billing/api/admin"

PRICE = {"product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month",
         "interval_count": 1, "cancellation": "delayed", "refund_window_days": 14}
ADDRESS = {"name": "Ann Lee", "line1": "1 Main St", "line2": "Suite 2", "city": "Springfield",
           "region": "IL", "postal_code": "62701", "country": "US"}
CARD = {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}


def order_body(**changes: Any) -> dict[str, Any]:
    body = {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "price_point": "pro",
            "purchased_at": "2026-01-31T09:00:00Z", "billing_address": dict(ADDRESS), "payment_method": dict(CARD)}
    body.update(changes)
    return body


class Merchant:
    """The merchant's HTTP client: every call carries the bearer token."""

    def __init__(self, client) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any):
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return self.client.open(API + path, method=method, headers=headers, **kwargs)

    def get(self, path: str):
        return self.call("GET", path)

    def put(self, path: str, body: Any = None, **kwargs: Any):
        return self.call("PUT", path, body, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any):
        return self.call("POST", path, body, **kwargs)


@pytest.fixture
def merchant(client) -> Merchant:
    return Merchant(client)


@pytest.fixture
def shop(merchant) -> Merchant:
    """A monthly price point and one order with one payment, all made through the API."""
    assert merchant.put("/price-points/pro", PRICE).status_code == 201
    assert merchant.put("/orders/ORD-1", order_body()).status_code == 201
    assert merchant.post("/orders/ORD-1/payments",
                         {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z"}).status_code == 201
    return merchant


def row_counts(app) -> dict[str, int]:
    with app.app_context():
        return {t.name: db.session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables}


def snapshot(app, merchant: Merchant) -> tuple[Any, ...]:
    """What the API answers for everything a bad request could have touched, and every table's size."""
    reads = tuple(
        (r.status_code, r.get_json())
        for r in (merchant.get("/settings"), merchant.get("/price-points/pro"),
                  merchant.get("/orders/ORD-1"), merchant.get("/orders/ORD-2"))
    )
    return reads, row_counts(app)


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"])
    assert isinstance(error["message"], str) and error["message"].endswith(".")
    if code is not None:
        assert error["code"] == code
    if field is not None:
        assert field in error["fields"], error
        assert error["fields"][field]
    return error


# -- auth ---------------------------------------------------------------------------------


ROUTES = [
    ("GET", "/settings"), ("PUT", "/settings"), ("PUT", "/price-points/pro"), ("GET", "/price-points/pro"),
    ("PUT", "/orders/ORD-1"), ("GET", "/orders/ORD-1"), ("POST", "/orders/ORD-1/payments"),
    ("GET", "/sandbox/faults"), ("PUT", "/sandbox/faults"),
]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_route_needs_the_bearer_token(client, method, path):
    missing = client.open(API + path, method=method, json={})
    error = assert_error(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "Authorization: Bearer" in error["message"]

    wrong = client.open(API + path, method=method, json={}, headers={"Authorization": "Bearer not-the-token"})
    assert_error(wrong, 401, "invalid_token")
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]

    for header in (f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN, f"Bearer {ADMIN_TOKEN}x", "Bearer ", "Bearer é"):
        assert client.open(API + path, method=method, json={}, headers={"Authorization": header}).status_code == 401


@pytest.mark.parametrize("token", [None, "", "   "])
def test_merchant_api_is_off_without_a_configured_token(make_app, token):
    client = make_app(SELF_BILLING_ADMIN_TOKEN=token).test_client()
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
            response = client.open(API + path, method=method, json={}, headers=headers)
            error = assert_error(response, 404, "merchant_api_off")
            assert "SELF_BILLING_ADMIN_TOKEN" in error["message"]


def test_a_wrong_token_writes_nothing(app, shop, client):
    before = snapshot(app, shop)
    bad = {"Authorization": "Bearer wrong"}
    assert client.put(API + "/settings", json={"enabled": True}, headers=bad).status_code == 401
    assert client.put(API + "/price-points/pro", json={**PRICE, "amount": "1.00"}, headers=bad).status_code == 401
    assert client.put(API + "/orders/ORD-2", json=order_body(), headers=bad).status_code == 401
    assert client.post(API + "/orders/ORD-1/payments", json={"payment_id": "PAY-9", "paid_at": "2026-02-01T00:00:00Z"},
                       headers={}).status_code == 401
    assert snapshot(app, shop) == before


# -- settings ------------------------------------------------------------------------------


def _settings(response):
    """The settings a response carries, without the portal links, seller profile and tax switches (each
    checked on its own, in test_tax.py for the last two)."""
    return {k: v for k, v in response.get_json().items()
            if k not in {"portal_links", "seller", "tax", "cancellation_reasons"}}


def test_settings_round_trip_with_any_subset(merchant):
    defaults = merchant.get("/settings")
    assert defaults.status_code == 200
    assert _settings(defaults) == {"enabled": False, "portal": "both", "cancellation": {"mode": "request"},
                                   "refunds": {"mode": "request"}, "department": "Billing"}

    changed = merchant.put("/settings", {"enabled": True, "refunds": {"mode": "automatic"}})
    assert changed.status_code == 200
    expected = {"enabled": True, "portal": "both", "cancellation": {"mode": "request"},
                "refunds": {"mode": "automatic"}, "department": "Billing"}
    assert _settings(changed) == expected
    assert _settings(merchant.put("/settings", {})) == expected  # an empty subset changes nothing

    full = {"enabled": False, "portal": "standalone", "cancellation": {"mode": "disabled"},
            "refunds": {"mode": "disabled"}, "department": "Accounts"}
    assert _settings(merchant.put("/settings", full)) == full
    assert _settings(merchant.put("/settings", full)) == full  # idempotent
    assert _settings(merchant.get("/settings")) == full


@pytest.mark.parametrize("body,field", [
    ({"enabled": None}, "enabled"),
    ({"enabled": "yes"}, "enabled"),
    ({"portal": "intranet"}, "portal"),
    ({"cancellation": {"mode": "sometimes"}}, "cancellation.mode"),
    ({"refunds": "automatic"}, "refunds"),
    ({"department": ""}, "department"),
    ({"enabled": True, "colour": "red"}, "colour"),
])
def test_bad_settings_are_refused_and_nothing_changes(app, merchant, body, field):
    before = snapshot(app, merchant)
    assert_error(merchant.put("/settings", body), 400, "invalid", field)
    assert snapshot(app, merchant) == before


# -- price points --------------------------------------------------------------------------


def test_price_point_created_then_replaced_idempotently(merchant):
    created = merchant.put("/price-points/pro", PRICE)
    assert created.status_code == 201
    assert created.get_json() == {"code": "pro", **PRICE, "tax": None}
    again = merchant.put("/price-points/pro", PRICE)
    assert again.status_code == 200 and again.get_json() == created.get_json()

    changed = merchant.put("/price-points/pro", {**PRICE, "amount": "59.5", "currency": "eur"})
    assert changed.status_code == 200
    assert changed.get_json()["amount"] == "59.50" and changed.get_json()["currency"] == "EUR"
    assert merchant.get("/price-points/pro").get_json() == changed.get_json()


def test_one_time_price_point_and_defaults(merchant):
    response = merchant.put("/price-points/ebook", {"product": "E-book", "amount": "9", "currency": "USD",
                                                    "interval": None})
    assert response.status_code == 201
    assert response.get_json() == {"code": "ebook", "product": "E-book", "amount": "9.00", "currency": "USD",
                                   "interval": None, "interval_count": 1, "cancellation": "instant",
                                   "refund_window_days": 30, "tax": None}
    assert_error(merchant.get("/price-points/nothing"), 404, "price_point_not_found")


# -- orders and payments -------------------------------------------------------------------


def test_order_created_replaced_and_read_back(merchant):
    merchant.put("/price-points/pro", PRICE)
    created = merchant.put("/orders/ORD-1", order_body())
    assert created.status_code == 201
    order = created.get_json()
    assert order["order_id"] == "ORD-1" and order["product"] == "Pro Plan"
    assert order["kind"] == "subscription" and order["status"] == "active"
    assert order["amount"] == "49.00" and order["currency"] == "USD"
    assert order["purchased_at"] == "2026-01-31T09:00:00Z"
    assert order["next_payment_at"] == "2026-02-28T09:00:00Z"  # month ends clamp
    assert order["billing_address"] == ADDRESS
    assert order["payment_method"]["type"] == "card" and order["payment_method"]["last4"] == "4242"
    assert order["lead"] == {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"}
    assert order["price_point"] == "pro"
    assert order["payments"] == [] and order["requests"] == [] and order["tickets"] == []
    assert merchant.get("/orders/ORD-1").get_json() == order

    again = merchant.put("/orders/ORD-1", order_body())
    assert again.status_code == 200 and again.get_json() == order

    moved = merchant.put("/orders/ORD-1", order_body(
        purchased_at="2026-02-01T09:00:00+01:00",
        payment_method={"type": "paypal", "payer_email": "ann.paypal@example.com"}))
    assert moved.status_code == 200
    assert moved.get_json()["purchased_at"] == "2026-02-01T08:00:00Z"  # stored and answered in UTC
    assert moved.get_json()["payment_method"]["type"] == "paypal"
    assert_error(merchant.get("/orders/ORD-404"), 404, "order_not_found")


def test_lead_is_found_by_email_case_insensitively(merchant):
    merchant.put("/price-points/pro", PRICE)
    merchant.put("/orders/ORD-1", order_body(email="Ann@Example.com"))
    second = merchant.put("/orders/ORD-2", order_body(email="  ann@example.COM ", first_name="", last_name=""))
    assert second.status_code == 201
    assert second.get_json()["lead"] == {"email": "Ann@example.com", "first_name": "Ann", "last_name": "Lee"}


def test_payments_recorded_once_and_next_date_follows_the_last(merchant):
    merchant.put("/price-points/pro", PRICE)
    merchant.put("/orders/ORD-1", order_body())
    first = merchant.post("/orders/ORD-1/payments", {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z"})
    assert first.status_code == 201
    assert first.get_json() == {
        "payment_id": "PAY-1", "order_id": "ORD-1", "amount": "49.00", "currency": "USD",
        "paid_at": "2026-01-31T09:00:00Z", "status": "paid", "refunded_amount": "0.00",
        "period_start": "2026-01-31T09:00:00Z", "period_end": "2026-02-28T09:00:00Z",
        "bill_to": ADDRESS, "next_payment_at": "2026-02-28T09:00:00Z",
    }
    repeat = merchant.post("/orders/ORD-1/payments", {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z"})
    assert repeat.status_code == 200 and repeat.get_json() == first.get_json()
    same_with_amount = merchant.post("/orders/ORD-1/payments",
                                     {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z", "amount": "49.00"})
    assert same_with_amount.status_code == 200

    second = merchant.post("/orders/ORD-1/payments",
                           {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00Z", "amount": "24.50"})
    assert second.status_code == 201 and second.get_json()["amount"] == "24.50"
    order = merchant.get("/orders/ORD-1").get_json()
    assert [p["payment_id"] for p in order["payments"]] == ["PAY-2", "PAY-1"]
    assert order["next_payment_at"] == "2026-03-28T09:00:00Z"


def test_payment_id_conflicts(app, merchant):
    merchant.put("/price-points/pro", PRICE)
    merchant.put("/orders/ORD-1", order_body())
    merchant.put("/orders/ORD-2", order_body())
    merchant.post("/orders/ORD-1/payments", {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z"})
    before = snapshot(app, merchant)
    assert_error(merchant.post("/orders/ORD-1/payments", {"payment_id": "PAY-1", "paid_at": "2026-02-01T09:00:00Z"}),
                 409, "payment_id_reused")
    assert_error(merchant.post("/orders/ORD-1/payments",
                               {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z", "amount": "1.00"}),
                 409, "payment_id_reused")
    assert_error(merchant.post("/orders/ORD-2/payments", {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z"}),
                 409, "payment_id_taken")
    assert_error(merchant.post("/orders/ORD-9/payments", {"payment_id": "PAY-9", "paid_at": "2026-01-31T09:00:00Z"}),
                 404, "order_not_found")
    assert snapshot(app, merchant) == before


def test_one_time_order_has_no_next_payment(merchant):
    merchant.put("/price-points/ebook", {"product": "E-book", "amount": "9.00", "currency": "USD", "interval": None})
    order = merchant.put("/orders/ORD-1", order_body(price_point="ebook")).get_json()
    assert order["kind"] == "one_time" and order["status"] == "paid" and order["next_payment_at"] is None
    merchant.post("/orders/ORD-1/payments", {"payment_id": "PAY-1", "paid_at": "2026-01-31T09:00:00Z"})
    order = merchant.get("/orders/ORD-1").get_json()
    assert order["next_payment_at"] is None and order["payments"][0]["amount"] == "9.00"


def test_kind_cannot_change_once_paid(app, shop):
    shop.put("/price-points/ebook", {"product": "E-book", "amount": "9.00", "currency": "USD", "interval": None})
    before = snapshot(app, shop)
    assert_error(shop.put("/orders/ORD-1", order_body(price_point="ebook", email="new@example.com")), 409,
                 "kind_change")
    assert snapshot(app, shop) == before  # not even the new lead


def test_payment_keeps_the_address_it_was_made_with(shop):
    new_address = {**ADDRESS, "line1": "99 Elm Rd", "line2": "", "city": "Shelbyville"}
    assert shop.put("/orders/ORD-1", order_body(billing_address=new_address)).status_code == 200
    later = shop.post("/orders/ORD-1/payments", {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00Z"})
    assert later.get_json()["bill_to"] == new_address
    order = shop.get("/orders/ORD-1").get_json()
    assert order["billing_address"] == new_address
    bill_to = {p["payment_id"]: p["bill_to"] for p in order["payments"]}
    assert bill_to == {"PAY-1": ADDRESS, "PAY-2": new_address}


def test_order_shows_its_requests_and_tickets(app, shop):
    shop.put("/settings", {"enabled": True, "cancellation": {"mode": "request"}, "department": "Accounts"})
    from plugin.workflows.service import submit_cancellation

    with app.app_context():
        submit_cancellation(service.get_purchase("ORD-1"), actor="customer", reason="Too expensive")
    order = shop.get("/orders/ORD-1").get_json()
    assert len(order["requests"]) == 1
    request = order["requests"][0]
    assert request["type"] == "cancellation" and request["state"] == "ticketed"
    assert order["tickets"] == [{"id": request["ticket_id"], "subject": order["tickets"][0]["subject"],
                                 "department": "Accounts", "status": "open",
                                 "created_at": order["tickets"][0]["created_at"]}]
    assert "ORD-1" in order["tickets"][0]["subject"]


# -- every bad input of issue 2: the error form, the status, and nothing written ---------------

TEN_MB = 10 * 1024 * 1024

BAD_INPUTS = {
    "unknown price point": ("PUT", "/orders/ORD-2", order_body(price_point="gold"), 400, "unknown_price_point",
                            "price_point"),
    "malformed email": ("PUT", "/orders/ORD-1", order_body(email="ann.example.com"), 400, "invalid", "email"),
    "email with two @": ("PUT", "/orders/ORD-2", order_body(email="ann@@example.com"), 400, "invalid", "email"),
    "negative price": ("PUT", "/price-points/pro", {**PRICE, "amount": "-49.00"}, 400, "invalid", "amount"),
    "negative payment": ("POST", "/orders/ORD-1/payments",
                         {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00Z", "amount": "-1.00"},
                         400, "invalid", "amount"),
    "zero payment": ("POST", "/orders/ORD-1/payments",
                     {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00Z", "amount": "0.00"},
                     400, "invalid", "amount"),
    "non-numeric amount": ("PUT", "/price-points/pro", {**PRICE, "amount": "forty"}, 400, "invalid", "amount"),
    "amount as a JSON number": ("PUT", "/price-points/pro", {**PRICE, "amount": 49.0}, 400, "invalid", "amount"),
    "amount with three decimals": ("PUT", "/price-points/pro", {**PRICE, "amount": "49.001"}, 400, "invalid",
                                   "amount"),
    "payment with three decimals": ("POST", "/orders/ORD-1/payments",
                                    {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00Z", "amount": "1.999"},
                                    400, "invalid", "amount"),
    "purchase time without offset": ("PUT", "/orders/ORD-1", order_body(purchased_at="2026-03-01T09:00:00"), 400,
                                     "invalid", "purchased_at"),
    "payment time without offset": ("POST", "/orders/ORD-1/payments",
                                    {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00"}, 400, "invalid",
                                    "paid_at"),
    "unknown field on an order": ("PUT", "/orders/ORD-1", order_body(coupon="FREE"), 400, "invalid", "coupon"),
    "unknown field in the address": ("PUT", "/orders/ORD-1",
                                     order_body(billing_address={**ADDRESS, "county": "Sangamon"}), 400, "invalid",
                                     "billing_address.county"),
    "unknown field on a price": ("PUT", "/price-points/pro", {**PRICE, "trial_days": 7}, 400, "invalid",
                                 "trial_days"),
    "unknown currency": ("PUT", "/price-points/pro", {**PRICE, "currency": "XYZ"}, 400, "invalid", "currency"),
    "unknown country": ("PUT", "/orders/ORD-1", order_body(billing_address={**ADDRESS, "country": "ZZ"}), 400,
                        "invalid", "billing_address.country"),
    "unknown interval": ("PUT", "/price-points/pro", {**PRICE, "interval": "fortnight"}, 400, "invalid", "interval"),
    "missing fields": ("PUT", "/orders/ORD-2", {"email": "bob@example.com"}, 400, "invalid", "price_point"),
    "bad card on the order": ("PUT", "/orders/ORD-1", order_body(payment_method={**CARD, "last4": "42"}), 400,
                              "invalid", "payment_method.card.last4"),
    "bad order id in the URL": ("PUT", "/orders/ORD%201", order_body(), 400, "invalid", "order_id"),
    "bad price code in the URL": ("PUT", "/price-points/pro!", PRICE, 400, "invalid", "code"),
    "bad payment id": ("POST", "/orders/ORD-1/payments", {"payment_id": "PAY 2", "paid_at": "2026-02-28T09:00:00Z"},
                       400, "invalid", "payment_id"),
    "body not an object": ("PUT", "/settings", ["enabled"], 400, "invalid", None),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_gets_the_error_form_and_writes_nothing(app, shop, case):
    method, path, body, status, code, field = BAD_INPUTS[case]
    before = snapshot(app, shop)
    assert_error(shop.call(method, path, body), status, code, field)
    assert snapshot(app, shop) == before


@pytest.mark.parametrize("method,path", [("PUT", "/settings"), ("PUT", "/orders/ORD-2"),
                                         ("POST", "/orders/ORD-1/payments"), ("PUT", "/price-points/pro")])
def test_wrong_content_type_huge_body_and_broken_json_write_nothing(app, shop, method, path):
    before = snapshot(app, shop)
    valid = {"PUT /settings": {"enabled": True}, "PUT /orders/ORD-2": order_body(),
             "POST /orders/ORD-1/payments": {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00Z"},
             "PUT /price-points/pro": {**PRICE, "amount": "1.00"}}[f"{method} {path}"]
    as_form = shop.call(method, path, data=json.dumps(valid), content_type="text/plain")
    assert_error(as_form, 415, "unsupported_media_type")
    assert_error(shop.call(method, path, data={"enabled": "true"}), 415, "unsupported_media_type")

    huge = dict(valid)
    huge["padding"] = "x" * TEN_MB
    assert_error(shop.call(method, path, data=json.dumps(huge), content_type="application/json"),
                 413, "body_too_large")
    assert_error(shop.call(method, path, data='{"enabled": tru', content_type="application/json"),
                 400, "malformed_json")
    assert snapshot(app, shop) == before


# -- the Python API and the HTTP API give the same results -------------------------------------


def _normalise(value: Any, *names: str) -> Any:
    text = json.dumps(value, sort_keys=True)
    text = re.sub(r"INV-\d{4}-\d{6}", "INV-N", text)  # each shop's invoices take the next numbers
    for name in names:
        text = text.replace(name, "X")
    return json.loads(text)


def test_python_api_and_http_api_agree(app, merchant):
    with app.app_context():
        price, created = service.upsert_price_point("pro-py", PRICE)
        assert created
        from plugin.ledger.present import order_to_dict, payment_to_dict, price_point_to_dict

        py_price = price_point_to_dict(price)
        purchase, _ = service.upsert_order("ORD-py", order_body(price_point="pro-py"))
        payment, _ = service.record_payment("ORD-py", {"payment_id": "PAY-py", "paid_at": "2026-01-31T09:00:00Z"})
        py_payment = payment_to_dict(payment, payment.purchase)
        service.upsert_order("ORD-py", order_body(price_point="pro-py", billing_address={**ADDRESS, "city": "Ogden"}))
        service.record_payment("ORD-py", {"payment_id": "PAY2-py", "paid_at": "2026-02-28T09:00:00Z",
                                          "amount": "10.00"})
        py_order = order_to_dict(service.get_purchase("ORD-py"))
        py_settings = service.settings_to_dict(service.update_settings({"refunds": {"mode": "disabled"}}))

    http_price = merchant.put("/price-points/pro-http", PRICE).get_json()
    merchant.put("/orders/ORD-http", order_body(price_point="pro-http"))
    http_payment = merchant.post("/orders/ORD-http/payments",
                                 {"payment_id": "PAY-http", "paid_at": "2026-01-31T09:00:00Z"}).get_json()
    merchant.put("/orders/ORD-http", order_body(price_point="pro-http", billing_address={**ADDRESS, "city": "Ogden"}))
    merchant.post("/orders/ORD-http/payments",
                  {"payment_id": "PAY2-http", "paid_at": "2026-02-28T09:00:00Z", "amount": "10.00"})
    http_order = merchant.get("/orders/ORD-http").get_json()
    http_settings = merchant.put("/settings", {"refunds": {"mode": "disabled"}}).get_json()
    http_settings.pop("portal_links")

    assert _normalise(py_price, "-py") == _normalise(http_price, "-http")
    assert _normalise(py_payment, "-py") == _normalise(http_payment, "-http")
    assert _normalise(py_order, "-py") == _normalise(http_order, "-http")
    assert py_settings == http_settings
    assert len(http_order["payments"]) == 2


@pytest.mark.parametrize("call,http", [
    (lambda: service.upsert_price_point("pro", {**PRICE, "amount": "1.001", "colour": "red"}),
     ("PUT", "/price-points/pro", {**PRICE, "amount": "1.001", "colour": "red"})),
    (lambda: service.upsert_order("ORD-2", order_body(price_point="gold")),
     ("PUT", "/orders/ORD-2", order_body(price_point="gold"))),
    (lambda: service.upsert_order("bad id", order_body()), ("PUT", "/orders/bad%20id", order_body())),
    (lambda: service.record_payment("ORD-1", {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00"}),
     ("POST", "/orders/ORD-1/payments", {"payment_id": "PAY-2", "paid_at": "2026-02-28T09:00:00"})),
    (lambda: service.update_settings({"portal": None}), ("PUT", "/settings", {"portal": None})),
    (lambda: service.get_purchase("ORD-9"), ("GET", "/orders/ORD-9", None)),
])
def test_python_api_and_http_api_fail_alike(app, shop, call, http):
    before = snapshot(app, shop)
    with app.app_context():
        with pytest.raises(BillingError) as raised:
            call()
    response = shop.call(*http)
    assert response.status_code == raised.value.status
    assert response.get_json() == raised.value.to_dict()
    assert snapshot(app, shop) == before


# -- sandbox faults through the merchant API -------------------------------------------------


def test_faults_round_trip_and_validation(app, merchant):
    assert merchant.get("/sandbox/faults").get_json() == {"refund": 0, "cancel": 0, "resume": 0, "attach_card": 0}
    response = merchant.put("/sandbox/faults", {"refund": 2, "attach_card": 1})
    assert response.status_code == 200
    assert response.get_json() == {"refund": 2, "cancel": 0, "resume": 0, "attach_card": 1}
    assert merchant.put("/sandbox/faults", {"cancel": 3}).get_json() == {"refund": 2, "cancel": 3, "resume": 0,
                                                                      "attach_card": 1}
    for body, field in (({"refund": -1}, "refund"), ({"cancel": "2"}, "cancel"), ({"refund": None}, "refund"),
                        ({"charge": 1}, "charge"), ({"attach_card": 1.5}, "attach_card")):
        assert_error(merchant.put("/sandbox/faults", body), 400, "invalid", field)
    assert merchant.get("/sandbox/faults").get_json() == {"refund": 2, "cancel": 3, "resume": 0, "attach_card": 1}


class OtherGateway:
    """A stand-in for a real processor's adapter: anything but the sandbox."""

    name = "acme"


def make_other_gateway() -> OtherGateway:
    return OtherGateway()


def test_faults_exist_only_on_the_sandbox(make_app):
    client = make_app(SELF_BILLING_GATEWAY="tests.test_merchant_api:make_other_gateway").test_client()
    merchant = Merchant(client)
    error = assert_error(merchant.put("/sandbox/faults", {"refund": 1}), 404, "sandbox_not_in_use")
    assert "acme" in error["message"]
    assert_error(merchant.put("/sandbox/faults", {"refund": -1}), 404, "sandbox_not_in_use")
    assert_error(merchant.get("/sandbox/faults"), 404, "sandbox_not_in_use")


# -- repeats at the same moment ----------------------------------------------------------------


def _in_threads(app, count: int, call) -> list[Any]:
    import threading

    barrier = threading.Barrier(count)
    answers: list[Any] = []

    def worker() -> None:
        client = Merchant(app.test_client())
        barrier.wait()
        try:
            response = call(client)
        except Exception as exc:  # noqa: BLE001 - shown in the assertion
            answers.append((500, repr(exc)))
        else:
            answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_concurrent_repeats_create_one_order_and_one_payment(app, merchant):
    merchant.put("/price-points/pro", PRICE)
    body = order_body(email="new.customer@example.com")
    answers = _in_threads(app, 6, lambda m: m.put("/orders/ORD-NEW", body))
    assert sorted(status for status, _ in answers) == [200] * 5 + [201]
    assert len({json.dumps(answer, sort_keys=True) for _, answer in answers}) == 1

    payment = {"payment_id": "PAY-NEW", "paid_at": "2026-01-31T09:00:00Z"}
    answers = _in_threads(app, 6, lambda m: m.post("/orders/ORD-NEW/payments", payment))
    assert sorted(status for status, _ in answers) == [200] * 5 + [201]
    order = merchant.get("/orders/ORD-NEW").get_json()
    assert [p["payment_id"] for p in order["payments"]] == ["PAY-NEW"]
    counts = row_counts(app)
    assert counts["sb_leads"] == 1 and counts["sb_purchases"] == 1 and counts["sb_payments"] == 1


def test_new_order_can_send_a_purchase_confirmation_with_the_order_id(app, client, admin_headers):
    from plugin.notifications.models import OutboxEmail
    from plugin.db import db as _db

    client.put("/billing/api/admin/price-points/pro", headers=admin_headers,
               json={"product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month"})
    order = {"email": "new@example.com", "first_name": "Neo", "price_point": "pro",
             "purchased_at": "2026-11-01T10:00:00Z", "send_confirmation": True,
             "billing_address": {"name": "Neo", "line1": "1 St", "city": "Town", "country": "US"},
             "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2031}}
    assert client.put("/billing/api/admin/orders/NEW-1", headers=admin_headers, json=order).status_code == 201
    assert client.put("/billing/api/admin/orders/NEW-1", headers=admin_headers, json=order).status_code == 200
    order["send_confirmation"] = "yes"
    bad = client.put("/billing/api/admin/orders/NEW-2", headers=admin_headers, json=order)
    assert bad.status_code == 400 and "send_confirmation" in bad.get_json()["error"]["fields"]
    with app.app_context():
        rows = _db.session.query(OutboxEmail).all()
        assert [(r.kind, r.order_id, r.to_address) for r in rows] == [
            ("purchase_confirmation", "NEW-1", "new@example.com")]


def test_settings_give_the_login_link_of_each_portal(make_app, admin_headers):
    app = make_app(SELF_BILLING_URL_PREFIX="/shop-billing")
    body = app.test_client().get("/shop-billing/api/admin/settings", headers=admin_headers).get_json()
    assert body["portal_links"] == {"standalone": "http://localhost/shop-billing/portal/", "helpdesk": None}

"""Schemathesis against ``docs/openapi.yaml``: every documented JSON operation, fuzzed in-process.

Each operation of the portal, merchant and agent APIs, the sandbox token endpoint
and the health check gets its own test: a fresh app (WSGI, no sockets) on seeded
data, then Schemathesis sends the spec's examples and generated valid and invalid
requests, each with the credentials the operation needs (merchant bearer token,
agent bearer token read by the host's ``agent_loader``, a logged-in customer's
session cookie with its ``X-CSRFToken``). Every answer must be:

- no server error (``not_a_server_error``);
- a documented status code, with a documented content type;
- a body that matches the documented schema, and names no field the doc leaves out
  (``every_field_documented``: the response schemas leave ``additionalProperties`` open).

Generated path ids are swapped, often, for the ids of the seeded orders, payments,
cards, tickets and emails, and some bodies for valid ones (real card tokens, price
points, amounts), so the fuzzing reaches the code behind the 404s and 400s; each
operation must have succeeded at least once. Generation is derandomized and bounded
(``MAX_EXAMPLES`` per operation), so a run repeats exactly and takes well under a
minute on SQLite; CI runs it on PostgreSQL too.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.parts import WKHTMLTOPDF, missing_part

try:
    import schemathesis
    import yaml
except ImportError:  # a test dependency: pip install -e '.[test]'
    missing_part("Schemathesis and PyYAML are test dependencies: pip install -e '.[test]'")

from flask import Flask  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from sqlalchemy import select, update  # noqa: E402

from plugin.db import db  # noqa: E402
from tests.agent_support import ALICE, bearer_agent, days_ago  # noqa: E402
from tests.conftest import ADMIN_TOKEN, Ledger  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
PREFIX = "/billing"
#: Generated cases per operation (the spec's examples and the coverage phase's cases come on top).
#: SELF_BILLING_FUZZ_EXAMPLES=300 makes a deeper run (about 2 minutes on SQLite).
MAX_EXAMPLES = int(os.environ.get("SELF_BILLING_FUZZ_EXAMPLES", "25"))
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")

CONFIG = schemathesis.Config.from_dict({
    "generation": {
        "mode": "all",  # valid requests and invalid ones
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
        # The credentials are the fixture's, sent by the test (below), never generated.
        "with-security-parameters": False,
    },
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
})

schema = schemathesis.openapi.from_path(str(DOC), config=CONFIG)


# -- the seeded shop ---------------------------------------------------------------------


@dataclass
class Seeded:
    """What the shop holds, for swapping generated ids for real ones."""

    app: Flask
    client: Any = None
    csrf_token: str = ""
    own_orders: list[str] = field(default_factory=list)
    other_orders: list[str] = field(default_factory=list)
    own_payments: list[str] = field(default_factory=list)
    other_payments: list[str] = field(default_factory=list)
    method_ids: list[int] = field(default_factory=list)
    cards: dict[str, list[int]] = field(default_factory=dict)
    ticket_ids: list[int] = field(default_factory=list)
    email_ids: list[int] = field(default_factory=list)
    own_notes: list[str] = field(default_factory=list)
    other_notes: list[str] = field(default_factory=list)
    card_tokens: list[str] = field(default_factory=list)
    price_codes: list[str] = field(default_factory=lambda: ["pro-monthly", "pro-yearly", "ebook"])
    #: The status of every answer, per operation (a test runs one operation).
    statuses: set[int] = field(default_factory=set)
    #: How many values of each kind steer() has picked (see _pick()).
    turns: Counter[str] = field(default_factory=Counter)


def _seed(app: Flask) -> Seeded:
    from plugin.ledger.models import Payment, PaymentMethod, Purchase
    from plugin.notifications.models import OutboxEmail
    from plugin.tickets.models import Ticket
    from plugin.workflows.service import submit_cancellation, submit_refund

    ledger = Ledger(app)
    seeded = Seeded(app=app)
    # Requests made now become tickets, for the agent API to act on.
    ledger.settings(enabled=True, cancellation={"mode": "request"}, refunds={"mode": "request"},
                    department="Billing")
    ledger.price("pro-monthly")
    ledger.price("pro-yearly", product="Pro Plan (yearly)", amount="490.00", interval="year",
                 cancellation="delayed")
    ledger.price("ebook", product="Cookbook", amount="100.00", interval=None)
    paypal = {"type": "paypal", "payer_email": "ann.pays@example.com"}
    orders = [  # order, price point, email, payment, extra order fields
        ("ORD-1001", "pro-monthly", "ann@example.com", "PAY-1", {}),
        ("ORD-1002", "pro-yearly", "ann@example.com", "PAY-12", {}),
        ("ORD-1003", "pro-yearly", "ann@example.com", "PAY-13", {}),  # set to end: resume keeps it
        ("ORD-2001", "ebook", "ann@example.com", "PAY-21", {}),
        ("ORD-3001", "pro-monthly", "ann@example.com", "PAY-31", {"payment_method": paypal}),
        ("ORD-9001", "pro-monthly", "bob@example.com", "PAY-91", {"first_name": "Bob"}),
        ("ORD-9002", "ebook", "bob@example.com", "PAY-92", {"first_name": "Bob"}),
    ]
    for order_id, price, email, payment_id, extra in orders:
        ledger.order(order_id, price_point=price, email=email, purchased_at=days_ago(20), **extra)
        ledger.payment(order_id, payment_id, days_ago(20))
        mine = email.startswith("ann")
        (seeded.own_orders if mine else seeded.other_orders).append(order_id)
        (seeded.own_payments if mine else seeded.other_payments).append(payment_id)

    with app.app_context():
        gateway = app.extensions["self_billing"].gateway
        numbers = ["4242424242424242", "5555555555554444", "4000000000000002", "4242424242424242"]
        seeded.card_tokens = [gateway.create_token(n, 12, 2040, "123").token for n in numbers]

        def purchase(order_id: str) -> Purchase:
            return db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one()

        def payment(payment_id: str) -> Payment:
            return db.session.execute(select(Payment).where(Payment.payment_id == payment_id)).scalar_one()

        from plugin.invoices.documents import CreditNote
        from plugin.workflows.service import agent_refund

        for payment_id, notes in (("PAY-21", seeded.own_notes), ("PAY-91", seeded.other_notes)):  # credit notes
            agent_refund(payment(payment_id), "agent@example.com", "1.00")
            notes.append(db.session.execute(select(CreditNote.number).order_by(CreditNote.id.desc())
                                            .limit(1)).scalar_one())
        from plugin.workflows.service import agent_cancel

        agent_cancel(purchase("ORD-1003"), "agent@example.com", "period_end")
        submit_cancellation(purchase("ORD-9001"), reason="Moving to another tool")
        submit_refund(payment("PAY-92"), reason="Bought it twice")
        submit_refund(payment("PAY-12"), reason="Meant the monthly plan")
        seeded.ticket_ids = list(db.session.execute(select(Ticket.id).order_by(Ticket.id)).scalars())
        seeded.email_ids = list(db.session.execute(select(OutboxEmail.id).order_by(OutboxEmail.id)).scalars())
        # One email failed, so the merchant has something to retry.
        db.session.execute(update(OutboxEmail).where(OutboxEmail.id == seeded.email_ids[0])
                           .values(status="failed", attempts=5, last_error="550 mailbox unavailable"))
        db.session.commit()
    assert len(seeded.ticket_ids) == 3 and seeded.email_ids

    # The portal's customer decides for herself from now on.
    ledger.settings(cancellation={"mode": "automatic"}, refunds={"mode": "automatic"})
    seeded.client = app.test_client()
    login = seeded.client.post(f"{PREFIX}/api/portal/login", json={"order_id": "ORD-1001", "email": "ann@example.com"})
    assert login.status_code == 200, login.get_json()
    seeded.csrf_token = login.get_json()["csrf_token"]
    # A second card on ORD-1001, so a card can be made the default and one removed.
    added = seeded.client.post(f"{PREFIX}/api/portal/purchases/ORD-1001/payment-methods",
                               json={"token": seeded.card_tokens.pop()}, headers={"X-CSRFToken": seeded.csrf_token})
    assert added.status_code == 201, added.get_json()
    with app.app_context():
        for method_id, order_id in db.session.execute(
            select(PaymentMethod.id, Purchase.order_id).join(Purchase, Purchase.id == PaymentMethod.purchase_id)
            .order_by(PaymentMethod.id)
        ):
            seeded.method_ids.append(method_id)
            seeded.cards.setdefault(order_id, []).append(method_id)
    assert len(seeded.cards["ORD-1001"]) == 2
    return seeded


@pytest.fixture
def shop(make_app, request):
    if ".pdf]" in request.node.name and WKHTMLTOPDF is None:
        # Without a renderer every download is the documented 503 pdf_unavailable, so the
        # operation could never succeed: it needs the part.
        missing_part("wkhtmltopdf is not installed (apt-get install wkhtmltopdf): PDF downloads are not fuzzed")
    seeded = _seed(make_app(agent_loader=bearer_agent))
    yield seeded
    # The steering works: the operation succeeded at least once, so fuzzing got past the 404s.
    assert any(200 <= status < 300 for status in seeded.statuses), (
        f"no success among the answers {sorted(seeded.statuses)}: steer the cases to real rows (see steer())")


# -- steering cases to real rows ---------------------------------------------------------------


def _pick(shop: Seeded, key: str, real: list[Any], generated: Any) -> Any:
    """Two times in three a real value, taking each in turn, else the generated one.

    Turns are counted per operation (one shop per test) and per ``key``, and the cases come in
    the same order on every run, so a run repeats exactly. Cases are steered here, in the test,
    not by generation hooks: the spec's examples and the coverage phase's cases are built while
    tests are collected, before any shop exists.
    """
    turn = shop.turns[key]
    shop.turns[key] += 1
    if not real or turn % 3 == 2:
        return generated
    return real[(turn - turn // 3) % len(real)]


def _real_path_values(shop: Seeded, path: str, name: str) -> list[Any]:
    portal = path.startswith(("/api/portal/", "/portal/"))
    values = {
        "order_id": shop.own_orders + shop.other_orders[:1] if portal else shop.own_orders + shop.other_orders,
        "payment_id": (shop.own_payments + shop.other_payments[:1] if portal
                       else shop.own_payments + shop.other_payments),
        "method_id": shop.method_ids,
        "ticket_id": shop.ticket_ids,
        "email_id": shop.email_ids,
        "code": shop.price_codes,
        "number": shop.own_notes + shop.other_notes[:1] if portal else shop.own_notes + shop.other_notes,
    }
    return values.get(name, [])


ADDRESS = {"name": "Ann Lee", "line1": "2 Oak Ave", "line2": "Suite 5", "city": "Chicago", "region": "IL",
           "postal_code": "60601", "country": "US"}


def _real_bodies(shop: Seeded, method: str, path: str) -> list[Any]:
    """Valid bodies for the operations whose generated bodies seldom get past validation."""
    card = {"type": "card", "brand": "mastercard", "last4": "4444", "exp_month": 3, "exp_year": 2031}
    order = {"email": "carol@example.com", "first_name": "Carol", "last_name": "Diaz", "price_point": "pro-monthly",
             "purchased_at": days_ago(3), "billing_address": ADDRESS, "payment_method": card}
    by_operation = {
        ("POST", "/api/portal/login"): [{"order_id": "ORD-1001", "email": " Ann@Example.com "},
                                        {"order_id": "ORD-9001", "email": "ann@example.com"}],
        ("POST", "/api/portal/purchases/{order_id}/payment-methods"): [{"token": t} for t in shop.card_tokens],
        ("PUT", "/api/portal/purchases/{order_id}/billing-address"): [ADDRESS, {**ADDRESS, "country": "de"}],
        ("POST", "/api/portal/purchases/{order_id}/cancel"): [{"reason": "Too expensive"}, {}],
        ("POST", "/api/portal/payments/{payment_id}/refund"): [{"reason": "Did not use it"}, {}],
        ("PUT", "/api/admin/orders/{order_id}"): [
            order, {**order, "price_point": "ebook"}, {**order, "price_point": "pro-yearly", "email": "ann@example.com",
                                                       "payment_method": {"type": "paypal", "payer_email": "a@b.co"}}],
        ("POST", "/api/admin/orders/{order_id}/payments"): [
            {"payment_id": "PAY-NEW-1", "paid_at": days_ago(1)}, {"payment_id": "PAY-1", "paid_at": days_ago(20)},
            {"payment_id": "PAY-NEW-2", "paid_at": days_ago(2), "amount": "12.50"}],
        ("PUT", "/api/admin/price-points/{code}"): [
            {"product": "Team Plan", "amount": "99.00", "currency": "EUR", "interval": "week", "interval_count": 2}],
        ("PUT", "/api/admin/email-templates/{kind}"): [
            {"subject": "About your order {order_id}", "body": "Hello {first_name},\n\nYour {product} order..."}],
        ("PUT", "/api/admin/sandbox/faults"): [{"refund": 1}, {"refund": 0, "cancel": 0, "attach_card": 0}],
        ("POST", "/api/agent/tickets/{ticket_id}/events"): [
            {"event": "decline", "message": "Not possible, sorry"}, {"event": "refund_partial", "amount": "10.00"},
            {"event": "cancel_at_period_end"}, {"event": "cancel_now"}, {"event": "refund_full"}],
        ("POST", "/api/agent/tickets/{ticket_id}/replies"): [{"message": "We are on it."}],
        ("POST", "/api/agent/purchases/{order_id}/cancel"): [{"when": "period_end", "message": "As asked"},
                                                            {"when": "now"}],
        ("POST", "/api/agent/payments/{payment_id}/refunds"): [{"amount": "1.00", "message": "As agreed"},
                                                              {"amount": "49.00"}],
        ("POST", "/sandbox/tokens"): [{"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2040,
                                       "cvc": "123"}],
    }
    return by_operation.get((method, path), [])


def steer(case: Any, shop: Seeded) -> None:
    """Swap generated ids (and some bodies and searches) for the shop's real ones."""
    path, method = case.operation.path, case.method.upper()
    if case.path_parameters:
        for name, value in list(case.path_parameters.items()):
            case.path_parameters[name] = _pick(shop, name, _real_path_values(shop, path, name), value)
        order_id = case.path_parameters.get("order_id")
        if "method_id" in case.path_parameters and order_id in shop.cards:  # mostly a card of that order
            case.path_parameters["method_id"] = _pick(shop, "card", shop.cards[order_id],
                                                      case.path_parameters["method_id"])
    if path == "/api/agent/leads" and case.query:
        case.query["q"] = _pick(shop, "q", ["ann", "BOB@example.com", "Lee"], case.query.get("q"))
    real_bodies = _real_bodies(shop, method, path)
    if real_bodies and method == case.operation.method.upper():
        case.body = _pick(shop, "body", real_bodies, case.body)


# -- a stricter check: nothing in an answer that the doc does not name --------------------------

SPEC: dict[str, Any] = yaml.safe_load(DOC.read_text(encoding="utf-8"))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def _undocumented(value: Any, node: dict[str, Any], where: str) -> list[str]:
    """Paths in ``value`` that ``node`` (a schema) does not document.

    Response schemas mostly leave ``additionalProperties`` open, so the built-in schema check
    passes a field the doc never mentions; this walks the answer and names each such field.
    """
    node = _resolve(node)
    if "allOf" in node:
        parts = [_resolve(part) for part in node["allOf"]]
        merged: dict[str, Any] = {"properties": {}}
        for part in parts:
            merged["properties"].update(part.get("properties", {}))
            if "additionalProperties" in part:
                merged["additionalProperties"] = part["additionalProperties"]
            if "items" in part:
                merged["items"] = part["items"]
        node = merged
    for key in ("oneOf", "anyOf"):
        if key in node:
            found = [_undocumented(value, option, where) for option in node[key]]
            return min(found, key=len)
    if isinstance(value, dict):
        properties, extra = node.get("properties", {}), node.get("additionalProperties")
        missing: list[str] = []
        for name, item in value.items():
            if name in properties:
                missing += _undocumented(item, properties[name], f"{where}.{name}")
            elif isinstance(extra, dict):
                missing += _undocumented(item, extra, f"{where}.{name}")
            elif extra is not True:
                missing.append(f"{where}.{name}")
        return missing
    if isinstance(value, list) and "items" in node:
        return [path for i, item in enumerate(value) for path in _undocumented(item, node["items"], f"{where}[{i}]")]
    return []


def every_field_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """A custom Schemathesis check: each field of a JSON answer is in the documented schema."""
    operation = SPEC["paths"][case.operation.path].get(case.method.lower())
    if operation is None or "json" not in (response.headers.get("content-type") or [""])[0]:
        return None
    answer = operation["responses"].get(str(response.status_code))
    if answer is None:
        return None  # status_code_conformance reports it
    media = _resolve(answer).get("content", {}).get("application/json")
    if not media or "schema" not in media:
        return None
    missing = _undocumented(response.json(), media["schema"], "body")
    assert not missing, f"not in docs/openapi.yaml for {response.status_code}: {', '.join(sorted(set(missing)))}"
    return True


# -- the test ------------------------------------------------------------------------------


def _credentials(path: str, shop: Seeded) -> dict[str, Any]:
    if path.startswith("/api/admin/"):
        return {"headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"}}
    if path.startswith("/api/agent/"):
        return {"headers": dict(ALICE)}
    if path.startswith(("/api/portal/", "/portal/")):
        return {"session": shop.client, "headers": {"X-CSRFToken": shop.csrf_token}}
    return {}


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_every_answer_is_documented(case, shop):
    steer(case, shop)
    response = case.call(app=shop.app, **_credentials(case.operation.path, shop))
    if case.method.upper() == case.operation.method.upper():
        shop.statuses.add(response.status_code)
    case.validate_response(response, additional_checks=[every_field_documented])


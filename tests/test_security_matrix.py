"""The security matrix, walked from ``app.url_map`` of the demo host helpdesk.

The demo mounts everything a host can: the plugin under ``/billing``, the My Orders tab
(``register_my_orders_tab``) at ``/help/my-orders`` and the agent desk again at ``/desk``
(``register_agent_desk``, with the host's login). Every route of that map is put in one
category (:func:`category`); a route in none fails :func:`test_every_route_is_in_a_category`,
so a new route is either covered by the checks below or noticed. The checks:

- ownership: lead A's session on lead B's order, payment or card id answers 404 with the body an
  unknown id gets, and writes nothing (every portal route: JSON, pages, tab, invoice);
- credentials: agent routes (API and desk) and merchant routes without credentials answer 401
  (the host's desk mount sends to its login; the merchant API is 404 while its token is unset),
  and a customer's portal session is no credential for them;
- CSRF: every state-changing route without its token (or with a forged one) is refused and
  writes nothing; JSON-only routes refuse what a cross-site form can send (415);
- login brute force meets 429 with ``Retry-After``, per email and per address, on every login;
- no full card number in the database file (and its WAL), the logs (DEBUG, SQL with parameters,
  werkzeug's access log) or any response, after every card flow;
- customer text in an invoice is inert.

"Nothing written" is checked by comparing every row of every table of the plugin before and after.
"""
from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import quote
from typing import Any, Iterator

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.routing import Rule

from plugin.db import Base, db
from plugin.demo import create_app
from plugin.demo.settings import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
from tests.conftest import Ledger
from tests.parts import need_wkhtmltopdf
from tests.test_invoices import ListeningSocket, address, pdf_text

PREFIX = "/billing"
ADMIN_TOKEN = "matrix-admin-token"
AGENT_TOKEN = "matrix-agent-token-0123456789"
AGENT_BEARER = {"Authorization": f"Bearer {AGENT_TOKEN}"}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000002"
ID_ARGS = ("order_id", "payment_id", "method_id")

# -- the categories ----------------------------------------------------------------------------

MERCHANT_BLUEPRINTS = {"self_billing_api_admin", "self_billing_api_admin_emails"}
AGENT_API_BLUEPRINTS = {"self_billing_api_agent", "self_billing_invoices_agent"}
HOST_BLUEPRINTS = {"help_center", "helpdesk_desk"}
HOST_ENDPOINTS = {"index", "static"}


def blueprint_of(endpoint: str) -> str:
    return endpoint.rsplit(".", 1)[0] if "." in endpoint else ""


def view_of(endpoint: str) -> str:
    return endpoint.rsplit(".", 1)[-1]


def category(app: Flask, rule: Rule) -> str | None:
    """Which checks a route gets; None for a route nobody has thought about yet."""
    state = app.extensions["self_billing"]
    blueprint = blueprint_of(rule.endpoint)
    if blueprint == "self_billing_api_portal":
        return "portal_api"
    if blueprint in state.portal_doors:
        return "portal_pages"  # the standalone portal and the My Orders tab
    if blueprint == "self_billing_invoices":
        return "customer_invoice"
    if blueprint in AGENT_API_BLUEPRINTS:
        return "agent_api"
    if blueprint == "self_billing_desk" or blueprint in state.desk_mounts:
        return "desk"
    if blueprint in MERCHANT_BLUEPRINTS:
        return "merchant"
    if rule.endpoint == "self_billing_sandbox.tokens":
        return "processor"  # the card processor's own endpoint: no session, CORS, never a number kept
    if rule.endpoint == "self_billing_health.healthz":
        return "public"
    if rule.endpoint == "self_billing_stripe_webhooks.stripe_event":
        return "processor_webhook"  # Stripe's events: no session, only a valid Stripe-Signature is applied
    if blueprint in HOST_BLUEPRINTS or rule.endpoint in HOST_ENDPOINTS:
        return "host"
    return None


CUSTOMER_CATEGORIES = ("portal_api", "portal_pages", "customer_invoice")
LOGINS = {"login"}  # views that start a session: CSRF-exempt in JSON, rate limited everywhere
#: One-time login links: asked for and used without a session (the way in while logins are paused).
LOGIN_LINKS = {"login_link", "use_link"}
#: "Forgot your Order ID?": asked for without a session, the same answer for any email.
ORDER_LOOKUPS = {"order_lookup"}
LOGOUTS = {"logout", "logout_view"}


def routes(app: Flask, *categories: str) -> Iterator[tuple[Rule, str]]:
    """(rule, method) of every route in ``categories``, in a stable order."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if category(app, rule) in categories:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def fill(rule: Rule, values: dict[str, Any]) -> str:
    """The rule's path with its arguments taken from ``values`` (a missing one fails the test)."""
    missing = set(rule.arguments) - set(values)
    assert not missing, f"{rule.rule}: no test value for {sorted(missing)}; add it to the matrix's values"
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(values[m.group(1)]), rule.rule)


# -- the host and its data ---------------------------------------------------------------------


@dataclass
class World:
    """Lead A (ann) and lead B (bob), each with a subscription (a payment, two cards) and more."""

    app: Flask
    a_order: str = "ORD-A1"
    a_payment: str = "PAY-A1"
    a_cards: list[int] = field(default_factory=list)
    b_order: str = "ORD-B1"
    b_payment: str = "PAY-B1"
    b_one_time: str = "ORD-B2"
    b_cards: list[int] = field(default_factory=list)
    b_ticket: int = 0
    email_id: int = 0
    a_note: str = ""
    b_note: str = ""

    def values(self, **override: Any) -> dict[str, Any]:
        """Path values of A's own objects (and the shared ones agents and merchants see)."""
        base = {"order_id": self.a_order, "payment_id": self.a_payment, "method_id": self.a_cards[-1],
                "ticket_id": self.b_ticket, "email_id": self.email_id, "kind": "refund_done",
                "code": "pro-monthly", "slug": "find-your-order-id", "filename": "helpdesk.css",
                "token": "no-such-login-link-token", "number": self.a_note}
        base.update(override)
        return base


def host_app(database_url: str, tmp_path: Path, **config: Any) -> Flask:
    settings = {
        "TESTING": True,
        "SECRET_KEY": "matrix-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_SUPPRESS_SEND": True,
        "SELF_BILLING_ADMIN_TOKEN": ADMIN_TOKEN,
        "HELPDESK_AGENT_TOKENS": {AGENT_TOKEN: DEMO_AGENT_EMAIL},
        "SELF_BILLING_INVOICE_CACHE_DIR": str(tmp_path / "invoices"),
    }
    settings.update(config)
    app = create_app(settings, instance_path=str(tmp_path / "instance"))
    return app


def portal_login(client: Any, order_id: str, email: str, **kwargs: Any) -> str:
    answer = client.post(f"{PREFIX}/api/portal/login", json={"order_id": order_id, "email": email}, **kwargs)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["csrf_token"]


#: Each test card gets its own expiry year: the same number with the same expiry is the same card, which a
#: purchase keeps once (a second copy is refused).
_EXPIRY_YEARS = itertools.count(2031)


def card_token(client: Any, number: str = GOOD_CARD) -> str:
    answer = client.post(f"{PREFIX}/sandbox/tokens",
                         json={"number": number, "exp_month": 12, "exp_year": next(_EXPIRY_YEARS) % 40 + 2031,
                               "cvc": "123"})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["token"]


def add_card(client: Any, csrf: str, order_id: str) -> int:
    answer = client.post(f"{PREFIX}/api/portal/purchases/{order_id}/payment-methods",
                         json={"token": card_token(client)}, headers={"X-CSRFToken": csrf})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def build_world(app: Flask) -> World:
    from plugin.notifications.models import OutboxEmail

    world = World(app)
    ledger = Ledger(app)
    ledger.settings(enabled=True, portal="both", cancellation={"mode": "request"}, refunds={"mode": "request"})
    ledger.price("pro-monthly")
    ledger.price("ebook", product="Cookbook", amount="100.00", interval=None)
    recent = "2026-11-20T10:00:00Z"
    ledger.order(world.a_order, email="ann@example.com", purchased_at=recent)
    ledger.payment(world.a_order, world.a_payment, recent)
    ledger.order(world.b_order, email="bob@example.com", purchased_at=recent, first_name="Bob", last_name="Roe",
                 billing_address=address(name="Bob Roe"))
    ledger.payment(world.b_order, world.b_payment, recent)
    ledger.order(world.b_one_time, price_point="ebook", email="bob@example.com", purchased_at=recent,
                 first_name="Bob", last_name="Roe", billing_address=address(name="Bob Roe"))
    ledger.payment(world.b_one_time, "PAY-B2", recent)
    for order_id, email, cards in ((world.a_order, "ann@example.com", world.a_cards),
                                   (world.b_order, "bob@example.com", world.b_cards)):
        client = app.test_client()
        csrf = portal_login(client, order_id, email)
        listed = client.get(f"{PREFIX}/api/portal/purchases/{order_id}/payment-methods").get_json()
        cards.extend(card["id"] for card in listed["payment_methods"])
        cards.append(add_card(client, csrf, order_id))
        assert len(cards) == 2
    # B's refund request becomes a ticket (request mode): agents have something to act on.
    client = app.test_client()
    csrf = portal_login(client, world.b_order, "bob@example.com")
    answer = client.post(f"{PREFIX}/api/portal/payments/{world.b_payment}/refund", json={},
                         headers={"X-CSRFToken": csrf})
    assert answer.status_code == 202, answer.get_json()
    world.b_ticket = answer.get_json()["request"]["ticket_id"]
    with app.app_context():
        world.email_id = db.session.execute(select(OutboxEmail.id).limit(1)).scalar_one()
        # A credit note each: an agent refunds 1.00 of A's payment and of B's one-time purchase.
        from plugin.invoices.documents import CreditNote
        from plugin.ledger.models import Payment
        from plugin.workflows.service import agent_refund

        for payment_id, attr in ((world.a_payment, "a_note"), ("PAY-B2", "b_note")):
            payment = db.session.execute(select(Payment).where(Payment.payment_id == payment_id)).scalar_one()
            agent_refund(payment, DEMO_AGENT_EMAIL, "1.00")
            setattr(world, attr, db.session.execute(select(CreditNote.number).order_by(CreditNote.id.desc())
                                                    .limit(1)).scalar_one())
    return world


@pytest.fixture
def host(database_url, tmp_path) -> Iterator[Flask]:
    app = host_app(database_url, tmp_path, SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS="8 per 15 minutes",
                   SELF_BILLING_LOGIN_LINK_LIMIT_PER_EMAIL="100 per hour",
                   SELF_BILLING_ORDER_LOOKUP_LIMIT_PER_EMAIL="100 per hour")
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


@pytest.fixture
def world(host) -> World:
    return build_world(host)


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the plugin, in primary-key order."""
    with app.app_context():
        with db.engine.connect() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables
            }


#: Rate-limit counters change on refused requests too (that is their job); they hold no one's data.
COUNTERS = {"sb_rate_limits"}


def changed_tables(before: dict[str, list], after: dict[str, list]) -> list[str]:
    return [name for name in before if name not in COUNTERS and before[name] != after.get(name)]


_CSRF_VALUE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]*|(value=")[^"]*("[^>]*name="csrf_token")')


def normalized(answer: Any) -> str:
    """The body with per-request values (CSRF tokens) blanked, so two answers can be compared."""
    body = answer.get_data(as_text=True)
    return _CSRF_VALUE.sub(lambda m: (m.group(1) or m.group(2)) + "*" + (m.group(3) or ""), body)


def is_error_form(answer: Any) -> bool:
    body = answer.get_json(silent=True)
    return (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"].get("code"), str)
            and isinstance(body["error"].get("message"), str) and body["error"]["message"])


# -- what each route is sent (a valid request but for the thing under test) ---------------------

JSON_BODIES: dict[str, Any] = {
    # portal
    "cancel": {"reason": "too expensive"},
    "refund": {"reason": "did not use it"},
    "billing_address": address(name="Mallory", line1="6 Evil Way"),
    "login": {"order_id": "ORD-A1", "email": "ann@example.com"},
    # agent
    "post_event": {"event": "refund_full", "message": "done"},
    "post_reply": {"message": "Hello"},
    "cancel_purchase": {"when": "now"},
    "refund_payment": {"amount": "1.00"},
    # merchant
    "put_settings": {"enabled": False},
    "put_price_point": {"product": "Pro", "amount": "1.00", "currency": "USD", "interval": "month"},
    "put_order": {"email": "eve@example.com", "price_point": "pro-monthly", "purchased_at": "2026-11-01T00:00:00Z",
                  "billing_address": address(), "payment_method": {"type": "paypal", "payer_email": "e@example.com"}},
    "post_payment": {"payment_id": "PAY-EVE", "paid_at": "2026-11-02T00:00:00Z"},
    "put_faults": {"refund": 3},
    "put_email_template": {"subject": "Hi {order_id}", "body": "Body"},
}

FORM_FIELDS: dict[str, dict[str, str]] = {
    "cancel": {"reason": "too expensive"},
    "refund": {"reason": "did not use it"},
    "address": {k: v for k, v in address(name="Mallory", line1="6 Evil Way").items()},
    "ticket_event": {"event": "refund_full", "message": "done"},
    "ticket_reply": {"message": "Hello"},
    "order_cancel": {"when": "now"},
    "payment_refund": {"amount": "1.00"},
    "login": {"order_id": "ORD-A1", "email": "ann@example.com"},
}


def send(client: Any, rule: Rule, method: str, path: str, *, csrf: str | None = None, form: bool | None = None,
         headers: dict[str, str] | None = None, extra_form: dict[str, str] | None = None,
         bodies: dict[str, Any] | None = None) -> Any:
    """Send ``method`` to ``path`` the way the route expects: JSON for the APIs, a form for pages."""
    view = view_of(rule.endpoint)
    headers = dict(headers or {})
    if method == "GET":
        return client.get(path, headers=headers)
    api = "/api/" in rule.rule or rule.endpoint == "self_billing_sandbox.tokens"
    if form is None:
        form = not api
    if form:
        data = dict(FORM_FIELDS.get(view, {}))
        data.update(extra_form or {})
        if csrf is not None:
            data["csrf_token"] = csrf
        return client.open(path, method=method, data=data, headers=headers)
    if csrf is not None:
        headers["X-CSRFToken"] = csrf
    body = {**JSON_BODIES, **(bodies or {})}.get(view)
    if method == "DELETE" and body is None:
        return client.open(path, method=method, headers=headers)
    return client.open(path, method=method, json=body if body is not None else {}, headers=headers)


# -- every route has a category -------------------------------------------------------------------


def test_every_route_is_in_a_category(host):
    uncategorized = [f"{sorted(r.methods - {'HEAD', 'OPTIONS'})} {r.rule} ({r.endpoint})"
                     for r in host.url_map.iter_rules() if category(host, r) is None]
    assert uncategorized == [], "routes no security check covers: give each a category in category()"
    found = {category(host, r) for r in host.url_map.iter_rules()}
    assert {"portal_api", "portal_pages", "customer_invoice", "agent_api", "desk", "merchant"} <= found
    # The My Orders tab and the host's desk mount are walked too, not only the plugin's own prefix.
    rules = {r.rule for r in host.url_map.iter_rules()}
    assert "/help/my-orders/purchases/<order_id>/cards" in rules and "/desk/tickets/<int:ticket_id>" in rules


# -- ownership --------------------------------------------------------------------------------------


def ownership_cases(world: World, rule: Rule) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(what, B's values, unknown values) for a route with id arguments."""
    ids = [name for name in ID_ARGS if name in rule.arguments]
    victim = {"order_id": world.b_order, "payment_id": world.b_payment, "method_id": world.b_cards[-1],
              "number": world.b_note}
    unknown = {"order_id": "ORD-NOPE", "payment_id": "PAY-NOPE", "method_id": 987654, "number": "CN-NOPE"}
    yield ("all of B's", world.values(**{k: victim[k] for k in ids}), world.values(**{k: unknown[k] for k in ids}))
    if len(ids) > 1:
        for name in ids:  # A's own order with B's card, and so on
            yield (f"B's {name} on A's own", world.values(**{name: victim[name]}),
                   world.values(**{name: unknown[name]}))


def test_another_leads_ids_answer_404_like_unknown_ones_and_write_nothing(world):
    app = world.app
    client = app.test_client()
    csrf = portal_login(client, world.a_order, "ann@example.com")
    # A's own, valid card token: so an add-card request would succeed if the order were A's.
    token = card_token(client)
    checked = []
    for rule, method in routes(app, *CUSTOMER_CATEGORIES):
        if not set(ID_ARGS) & set(rule.arguments):
            continue
        for what, theirs, unknown in ownership_cases(world, rule):
            before = snapshot(app)
            extra = {"form": {"token": token}, "bodies": {"add_payment_method": {"token": token}}}
            answer = send(client, rule, method, fill(rule, theirs), csrf=csrf, extra_form=extra["form"],
                          bodies=extra["bodies"])
            reference = send(client, rule, method, fill(rule, unknown), csrf=csrf, extra_form=extra["form"],
                             bodies=extra["bodies"])
            label = f"{method} {fill(rule, theirs)} ({what})"
            assert answer.status_code == 404, (label, answer.status_code, answer.get_data(as_text=True)[:300])
            assert reference.status_code == 404, (label, reference.status_code)
            assert normalized(answer) == normalized(reference), label
            if answer.is_json:
                assert is_error_form(answer), label
            assert changed_tables(before, snapshot(app)) == [], label
            checked.append(label)
    # Every customer route with an id was walked: JSON, standalone pages, the tab and the invoice.
    assert any("/api/portal/purchases/ORD-B1/payment-methods/" in c for c in checked)
    assert any(c.startswith("POST /help/my-orders/purchases/ORD-A1/cards/") for c in checked)
    assert any("/portal/payments/PAY-B1/invoice.pdf" in c for c in checked)


def test_routes_without_ids_show_a_only_what_is_hers(world):
    app = world.app
    client = app.test_client()
    csrf = portal_login(client, world.a_order, "ann@example.com")
    for rule, method in routes(app, *CUSTOMER_CATEGORIES):
        if rule.arguments or method != "GET":
            continue
        answer = client.get(fill(rule, {}))
        body = answer.get_data(as_text=True)
        assert answer.status_code == 200, (rule.rule, answer.status_code)
        for secret in (world.b_order, world.b_payment, world.b_one_time, "bob@example.com", "Bob Roe"):
            assert secret not in body, (rule.rule, secret)
    assert csrf


def test_portal_routes_need_a_portal_session(world):
    app = world.app
    client = app.test_client()
    # A valid CSRF token without a session (the login page's): so each JSON request reaches the session
    # check (the check without the token is test_every_state_changing_route_without_its_csrf_token_is_refused).
    login_page = client.get(f"{PREFIX}/portal/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
    for rule, method in routes(app, *CUSTOMER_CATEGORIES):
        if view_of(rule.endpoint) in LOGINS | LOGIN_LINKS | ORDER_LOOKUPS | LOGOUTS:
            continue  # these need no session (tests/test_portal_api.py walks the links)
        if not rule.arguments and method == "GET" and category(app, rule) == "portal_pages":
            continue  # the login page itself
        before = snapshot(app)
        json_route = category(app, rule) != "portal_pages"
        answer = send(client, rule, method, fill(rule, world.values()), csrf=csrf if json_route else None)
        label = f"{method} {rule.rule}"
        if not json_route:  # pages send to the login form of their own door
            door = rule.rule.split("/purchases/")[0].split("/payments/")[0]
            assert answer.status_code == 302, (label, answer.status_code)
            # a GET comes back to where it was after the login; a posted form to My Orders (no 405)
            expected = door + "/?next=" if method == "GET" else door + "/"
            location = answer.headers["Location"]
            assert location.startswith(expected) if method == "GET" else location == expected, (label, location)
        else:  # JSON, the invoice download too: 401 not_logged_in, whatever the method
            assert answer.status_code == 401 and is_error_form(answer), (label, answer.status_code)
            assert answer.get_json()["error"]["code"] == "not_logged_in", label
            assert world.a_order not in answer.get_data(as_text=True), label
        assert changed_tables(before, snapshot(app)) == [], label


# -- credentials --------------------------------------------------------------------------------------


def desk_sign_in(client: Any) -> None:
    page = client.get("/desk/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = client.post("/desk/login", data={"csrf_token": csrf, "email": DEMO_AGENT_EMAIL,
                                              "password": DEMO_AGENT_PASSWORD, "next": ""})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]


def expect_no_agent(app: Flask, rule: Rule, answer: Any, label: str) -> None:
    login_url = app.extensions["self_billing"].desk_mounts.get(
        blueprint_of(rule.endpoint), {}).get("login_url")
    if login_url:  # the host's desk mount sends to the host's login (documented)
        assert answer.status_code == 302, (label, answer.status_code)
        assert answer.headers["Location"].startswith(login_url + "?next="), label
        return
    assert answer.status_code == 401, (label, answer.status_code, answer.get_data(as_text=True)[:200])
    if category(app, rule) == "agent_api":
        assert is_error_form(answer), label


def test_agent_and_merchant_routes_need_credentials_and_a_portal_session_is_none(world):
    app = world.app
    nobody = app.test_client()
    customer = app.test_client()
    csrf = portal_login(customer, world.a_order, "ann@example.com")
    wrong = {"Authorization": "Bearer not-a-real-token-at-all"}
    walked = set()
    for rule, method in routes(app, "agent_api", "desk", "merchant"):
        path = fill(rule, world.values(order_id=world.b_order, payment_id=world.b_payment))
        label = f"{method} {path}"
        for who, client, headers in (("nobody", nobody, {}), ("customer", customer, {"X-CSRFToken": csrf}),
                                     ("wrong token", nobody, wrong)):
            before = snapshot(app)
            answer = send(client, rule, method, path, headers=headers, form=False if "/api/" in rule.rule else None,
                          extra_form={"csrf_token": csrf} if who == "customer" else None)
            if category(app, rule) == "merchant":
                assert answer.status_code == 401, (label, who, answer.status_code)
                assert is_error_form(answer) and answer.headers["WWW-Authenticate"].startswith("Bearer"), label
            else:
                expect_no_agent(app, rule, answer, f"{label} as {who}")
            body = answer.get_data(as_text=True).replace(path, "").replace(quote(path, safe=""), "")
            assert "bob@example.com" not in body and world.b_order not in body, (label, who)
            assert changed_tables(before, snapshot(app)) == [], (label, who)
        walked.add(category(app, rule))
    assert walked == {"agent_api", "desk", "merchant"}


def test_merchant_routes_are_404_while_the_token_is_unset(database_url, tmp_path):
    app = host_app(database_url, tmp_path, SELF_BILLING_ADMIN_TOKEN=None)
    client = app.test_client()
    before = snapshot(app)
    count = 0
    for rule, method in routes(app, "merchant"):
        answer = send(client, rule, method, fill(rule, {"order_id": "ORD-1", "code": "pro", "kind": "refund_done",
                                                      "email_id": 1}),
                      headers={"Authorization": "Bearer anything"})
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "merchant_api_off", rule.rule
        count += 1
    assert count > 5
    assert changed_tables(before, snapshot(app)) == []
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()


# -- CSRF -----------------------------------------------------------------------------------------------


def csrf_kind(app: Flask, rule: Rule) -> str:
    """How a state-changing route proves a request is not cross-site."""
    cat, view = category(app, rule), view_of(rule.endpoint)
    if cat == "portal_api":
        return "json_only" if view in LOGINS | LOGIN_LINKS | ORDER_LOOKUPS else "header"
    if cat in ("portal_pages", "desk") or rule.endpoint.startswith("helpdesk_desk."):
        return "form_redirect" if view in LOGOUTS else "form"
    if cat == "agent_api":
        return "json_only"  # a cross-site form cannot send application/json (documented in plugin.api.agent)
    if cat == "merchant":
        return "bearer"  # no cookie ever authenticates it (see the credentials test)
    if cat == "processor":
        return "no_session"  # the processor's token endpoint takes no session at all
    if cat == "processor_webhook":
        return "signature"  # an HMAC of the body with the webhook secret, which no cross-site form has
    raise AssertionError(f"{rule.rule}: a state-changing route with no CSRF story")


def test_every_state_changing_route_without_its_csrf_token_is_refused(world):
    app = world.app
    customer = app.test_client()
    portal_login(customer, world.a_order, "ann@example.com")
    agent = app.test_client()
    desk_sign_in(agent)  # a cookie session: what a cross-site request would ride on
    kinds = set()
    for rule, method in routes(app, *{category(app, r) for r in app.url_map.iter_rules()}):
        if method not in UNSAFE:
            continue
        kind = csrf_kind(app, rule)
        kinds.add(kind)
        if kind in ("bearer", "no_session"):
            continue
        client = agent if category(app, rule) in ("desk", "agent_api") or rule.endpoint.startswith(
            "helpdesk_desk.") else customer
        path = fill(rule, world.values())
        for forged in (None, "forged-token"):
            label = f"{method} {path} csrf={forged}"
            before = snapshot(app)
            if kind == "header":
                answer = send(client, rule, method, path, csrf=forged)
                assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "csrf_failed", label
            elif kind == "json_only":
                answer = send(client, rule, method, path, form=True, extra_form={"csrf_token": forged or ""})
                assert answer.status_code == 415 and is_error_form(answer), (label, answer.status_code)
            elif kind == "form":
                answer = send(client, rule, method, path, csrf=forged)
                assert answer.status_code == 400, (label, answer.status_code)
            elif kind == "signature":  # 400 bad signature (404 where no webhook secret is configured)
                answer = send(client, rule, method, path, csrf=forged)
                assert answer.status_code in (400, 404) and is_error_form(answer), (label, answer.status_code)
            else:  # form_redirect: a logout form; the session must survive it
                answer = send(client, rule, method, path, csrf=forged)
                assert answer.status_code == 302, label
            assert changed_tables(before, snapshot(app)) == [], label
        # the sessions are intact: a refused logout logged nobody out
        assert customer.get(f"{PREFIX}/api/portal/session").status_code == 200, rule.rule
        assert agent.get(f"{PREFIX}/api/agent/tickets").status_code == 200, rule.rule
    assert {"header", "json_only", "form", "form_redirect", "bearer", "no_session"} <= kinds


def test_the_json_login_refuses_a_cross_site_form(world):
    client = world.app.test_client()
    answer = client.post(f"{PREFIX}/api/portal/login",
                         data={"order_id": world.a_order, "email": "ann@example.com"})
    assert answer.status_code == 415 and is_error_form(answer)
    assert client.get(f"{PREFIX}/api/portal/session").status_code == 401


# -- bodies that are no acceptable JSON -------------------------------------------------------------------

#: A 2 KB body of a thousand nested brackets: Python's parser recurses once per bracket.
NESTED = b"[" * 1000 + b"]" * 1000


def test_deeply_nested_json_is_a_400_on_every_json_route_and_writes_nothing(world):
    app = world.app
    customer = app.test_client()
    csrf = portal_login(customer, world.a_order, "ann@example.com")
    credentials = {"portal_api": {"X-CSRFToken": csrf}, "agent_api": AGENT_BEARER,
                   "merchant": {"Authorization": f"Bearer {ADMIN_TOKEN}"}, "processor": {}}
    tried = set()
    for rule, method in routes(app, *credentials):
        view = view_of(rule.endpoint)
        if method not in UNSAFE or (view not in JSON_BODIES and rule.endpoint != "self_billing_sandbox.tokens"):
            continue  # routes that read no body
        path = fill(rule, world.values())
        for body in (NESTED, b'{"email": ' + b"[" * 40 + b"]" * 40 + b"}"):
            before = snapshot(app)
            answer = customer.open(path, method=method, data=body, content_type="application/json",
                                   headers=credentials[category(app, rule)])
            label = f"{method} {path} ({len(body)} bytes)"
            assert answer.status_code == 400 and is_error_form(answer), (label, answer.status_code)
            assert answer.get_json()["error"]["code"] == "malformed_json", label
            assert changed_tables(before, snapshot(app)) == [], label
        tried.add(view)
    assert {"login", "refund", "post_event", "put_settings"} <= tried
    # Brackets inside a string are text, not nesting: the login goes through.
    answer = app.test_client().post(f"{PREFIX}/api/portal/login", json={
        "order_id": world.a_order, "email": "ann@example.com", "note": "[" * 1000})
    assert answer.status_code in (200, 400) and answer.get_json().get("error", {}).get("code") != "malformed_json"


# -- login brute force ------------------------------------------------------------------------------------


def login_routes(app: Flask) -> list[Rule]:
    return [rule for rule, method in routes(app, *{category(app, r) for r in app.url_map.iter_rules()})
            if method == "POST" and view_of(rule.endpoint) in LOGINS]


def login_attempt(client: Any, rule: Rule, identity: str, secret: str, address_: str) -> Any:
    environ = {"REMOTE_ADDR": address_}
    if "/api/" in rule.rule:
        return client.post(rule.rule, json={"order_id": secret, "email": identity}, environ_base=environ)
    blueprint = blueprint_of(rule.endpoint)
    page = client.get(rule.rule.rsplit("/", 1)[0] + ("/" if blueprint != "helpdesk_desk" else "/login"),
                      environ_base=environ).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    if blueprint == "helpdesk_desk":
        data = {"email": identity, "password": secret, "next": ""}
    else:
        data = {"order_id": secret, "email": identity}
    return client.post(rule.rule, data={"csrf_token": csrf, **data}, environ_base=environ)


def assert_too_many(answer: Any, label: str) -> None:
    assert answer.status_code == 429, (label, answer.status_code)
    retry_after = answer.headers.get("Retry-After", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, (label, retry_after)


def test_login_brute_force_meets_429_with_retry_after_per_email_and_per_address(world):
    app = world.app
    ledger = Ledger(app)
    rules = login_routes(app)
    assert {r.rule for r in rules} >= {f"{PREFIX}/api/portal/login", f"{PREFIX}/portal/login",
                                       "/help/my-orders/login", "/desk/login"}
    for index, rule in enumerate(rules):
        agent_login = blueprint_of(rule.endpoint) == "helpdesk_desk"
        # per email (or per agent account): guesses from many addresses, then even the right pair is refused
        if agent_login:
            email, right = DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
        else:
            email, right = f"brute{index}@example.com", f"ORD-BRUTE-{index}"
            ledger.order(right, email=email)
        client = app.test_client()
        refused = None
        for attempt in range(30):
            answer = login_attempt(client, rule, email, "wrong-guess", f"10.{index}.1.{attempt + 1}")
            if answer.status_code == 429:
                refused = attempt
                break
            assert answer.status_code == 401, (rule.rule, answer.status_code)  # a wrong pair, every login alike
        assert refused is not None and refused <= 10, f"{rule.rule}: no per-email limit"
        assert_too_many(answer, f"{rule.rule} per email")
        assert_too_many(login_attempt(client, rule, email, right, f"10.{index}.2.1"), f"{rule.rule} right pair")
        # per address: many emails guessed from one address, then even the right pair from it is refused
        where = f"10.{index}.3.1"
        for attempt in range(30):
            answer = login_attempt(client, rule, f"guess{attempt}.{index}@example.com", "wrong-guess", where)
            if answer.status_code == 429:
                break
        assert_too_many(answer, f"{rule.rule} per address")
        if agent_login:
            answer = login_attempt(client, rule, DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD, where)
        else:
            answer = login_attempt(client, rule, "ann@example.com", world.a_order, where)
        assert_too_many(answer, f"{rule.rule} per address, right pair")


# -- card numbers ---------------------------------------------------------------------------------------


class LiveServer:
    """The app behind werkzeug's real server on 127.0.0.1, so its access log is written."""

    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.bodies: list[bytes] = []

    def call(self, method: str, path: str, *, json_body: Any = None, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        data = None
        headers = dict(headers or {})
        if json_body is not None:
            data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            from urllib.parse import urlencode

            data, headers["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request) as answer:
                status, body, answer_headers = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as err:
            status, body, answer_headers = err.code, err.read(), dict(err.headers)
        self.bodies.append(body)
        self.bodies.append(json.dumps(answer_headers).encode())
        return status, body, answer_headers

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join()


def number_forms(number: str) -> list[bytes]:
    grouped = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    return [number.encode(), grouped.encode(), number.encode("utf-16-le")]


def database_bytes(app: Flask) -> bytes:
    """What the database holds: the SQLite file and its WAL, plus every row as text (any database)."""
    chunks = []
    with app.app_context():
        url = db.engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            for suffix in ("", "-wal", "-journal"):
                path = Path(url.database + suffix)
                if path.exists():
                    chunks.append(path.read_bytes())
        with db.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    chunks.append(repr(tuple(row)).encode())
    return b"\n".join(chunks)


def test_no_full_card_number_is_kept_logged_or_answered(world, caplog):
    app = world.app
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQL with its parameters
    caplog.set_level(logging.INFO, logger="werkzeug")  # the access log
    server = LiveServer(app)
    try:
        tokens = {}
        for year, number in enumerate((GOOD_CARD, DECLINED_CARD, "4242 4242 4242 4242"), start=2035):
            status, body, _ = server.call("POST", f"{PREFIX}/sandbox/tokens",
                                          json_body={"number": number, "exp_month": 12, "exp_year": year,
                                                     "cvc": "123"})
            assert status == 201, body
            tokens[number] = json.loads(body)["token"]
        for bad in ({"number": "4242424242424241", "exp_month": 12, "exp_year": 2035, "cvc": "123"},
                    {"number": GOOD_CARD, "exp_month": 13, "exp_year": 2035, "cvc": "123"},
                    {"number": GOOD_CARD, "exp_month": 1, "exp_year": 2001, "cvc": "123"},
                    {"number": GOOD_CARD + "0", "exp_month": 1, "exp_year": 2035, "cvc": "12"},
                    {"number": int(GOOD_CARD), "exp_month": 1, "exp_year": 2035, "cvc": "123"},
                    {"number": GOOD_CARD, "exp_month": 1, "exp_year": 2035, "cvc": "123", "extra": GOOD_CARD}):
            status, body, _ = server.call("POST", f"{PREFIX}/sandbox/tokens", json_body=bad)
            assert status == 400, body
        status, body, _ = server.call("POST", f"{PREFIX}/api/portal/login",
                                      json_body={"order_id": world.a_order, "email": "ann@example.com"})
        csrf = json.loads(body)["csrf_token"]
        api = f"{PREFIX}/api/portal/purchases/{world.a_order}/payment-methods"
        auth = {"X-CSRFToken": csrf}
        status, body, _ = server.call("POST", api, json_body={"token": tokens[GOOD_CARD]}, headers=auth)
        assert status == 201, body
        new_card = json.loads(body)["id"]
        status, body, _ = server.call("POST", api, json_body={"token": tokens[DECLINED_CARD]}, headers=auth)
        assert status == 402 and json.loads(body)["error"]["code"] == "card_declined", body
        # Card details sent to the portal instead of the processor are refused, never stored.
        status, body, _ = server.call("POST", api, json_body={"number": GOOD_CARD, "cvc": "123"}, headers=auth)
        assert status == 400, body
        status, body, _ = server.call("POST", api, json_body={"token": GOOD_CARD}, headers=auth)
        assert status == 400, body
        status, body, _ = server.call("POST", f"{api}/{new_card}/default", json_body={}, headers=auth)
        assert status == 200, body
        status, body, _ = server.call("DELETE", f"{api}/{world.a_cards[0]}", headers=auth)
        assert status == 200, body
        # The pages: add (the spaced number's token), make default, remove; a number in the token field.
        pages = f"{PREFIX}/portal/purchases/{world.a_order}/cards"
        status, body, _ = server.call("GET", pages + "/new")
        assert status == 200, body
        form_csrf = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1).decode()
        status, body, _ = server.call("POST", pages, form={"csrf_token": form_csrf, "token": GOOD_CARD})
        assert status == 400, body
        status, body, _ = server.call("POST", pages, form={"csrf_token": form_csrf,
                                                           "token": tokens["4242 4242 4242 4242"]})
        assert status in (200, 302), body
        cards = json.loads(server.call("GET", api)[1])["payment_methods"]
        third = next(c["id"] for c in cards if not c["default"] and c["id"] != world.a_cards[1])
        assert server.call("POST", f"{pages}/{third}/default", form={"csrf_token": form_csrf})[0] in (200, 302)
        assert server.call("POST", f"{pages}/{new_card}/remove", form={"csrf_token": form_csrf})[0] in (200, 302)
        for path in (pages, f"{PREFIX}/portal/", f"{PREFIX}/api/portal/purchases", "/help/my-orders/"):
            assert server.call("GET", path)[0] == 200, path
        status, body, _ = server.call("GET", f"{PREFIX}/api/admin/orders/{world.a_order}",
                                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert status == 200 and b'"last4": "4242"' in body or b'"last4":"4242"' in body, body
    finally:
        server.close()
    assert any(r.name == "werkzeug" and "/sandbox/tokens" in r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)
    logs = "\n".join([caplog.text] + [r.getMessage() for r in caplog.records]).encode()
    stored = database_bytes(app)
    for number in (GOOD_CARD, DECLINED_CARD, "4242424242424241"):
        for form in number_forms(number):
            assert form not in stored, f"the database holds {form!r}"
            assert form not in logs, f"the logs hold {form!r}"
            for body in server.bodies:
                assert form not in body, f"a response holds {form!r}: {body[:200]!r}"


# -- invoice injection ---------------------------------------------------------------------------------


def test_customer_markup_in_the_invoice_is_inert(world):
    need_wkhtmltopdf()
    app = world.app
    listener = ListeningSocket()
    try:
        script = "<script>document.write('INJECTED')</script>"
        iframe = "<iframe src=file:///etc/passwd>"
        img = f"<img src=http://127.0.0.1:{listener.port}/pixel>"
        client = app.test_client()
        csrf = portal_login(client, world.a_order, "ann@example.com")
        answer = client.put(f"{PREFIX}/api/portal/purchases/{world.a_order}/billing-address",
                            json=address(name=script, line1=iframe, line2=img), headers={"X-CSRFToken": csrf})
        assert answer.status_code == 200, answer.get_json()
        merchant = app.test_client()
        answer = merchant.post(f"{PREFIX}/api/admin/orders/{world.a_order}/payments",
                               json={"payment_id": "PAY-A2", "paid_at": "2026-11-25T10:00:00Z"},
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert answer.status_code == 201, answer.get_json()
        answer = client.get(f"{PREFIX}/portal/payments/PAY-A2/invoice.pdf")
        assert answer.status_code == 200 and answer.mimetype == "application/pdf"
        text_ = pdf_text(answer.data)
        agent_copy = app.test_client().get(f"{PREFIX}/api/agent/payments/PAY-A2/invoice.pdf", headers=AGENT_BEARER)
        assert agent_copy.status_code == 200
        # The pages show the same text as text, never as markup.
        pages = [client.get(f"{PREFIX}/portal/").get_data(as_text=True),
                 client.get("/help/my-orders/").get_data(as_text=True),
                 client.get(f"{PREFIX}/portal/purchases/{world.a_order}/address").get_data(as_text=True)]
    finally:
        connections = listener.close()
    assert connections == []
    for literal in (script, iframe, img):
        assert literal in text_, literal
    assert "root:x:0:0" not in text_ and "INJECTED" not in text_.replace(script, "")
    assert "root:x:0:0" not in pdf_text(agent_copy.data)
    for page in pages:
        assert "<script>document.write" not in page and "<iframe src=file" not in page and "<img src=http" not in page
        assert "&lt;script&gt;" in page or "&lt;iframe" in page

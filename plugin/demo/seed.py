"""``flask self-billing seed-demo``: a small, realistic data set to try the portal and the desk with.

It switches the merchant's settings to automatic cancellations and refunds, so it refuses a
database that holds any order that is not one of the demo's own (:class:`NotADemoDatabase`):
pointed at a real shop by mistake, it changes nothing.

Everything goes through the plugin's public Python APIs (``plugin.ledger.service``
for settings, price points, orders and payments; ``plugin.workflows.service``
for the agent's cancellations and refunds), exactly as a merchant's own sync
would. Running it twice changes nothing: orders that exist are left as they
are, payments have fixed IDs (``<order>-<YYYYMMDD>``, the same IDs ``tick``
gives renewals), and cancellations and refunds are made only once.

Dates are relative to the moment the data was first loaded (kept as the first
order's purchase date): subscriptions carry a year of payments up to now, so
their next payment is in the future. A later run records only the payments that
fell due since, as ``tick`` would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from ..db import db, utcnow
from ..ledger import service
from ..ledger.models import Lead, Payment, Purchase
from ..ledger.schemas import OrderIn, PaymentIn, PricePointIn, SettingsIn
from ..money import format_amount, format_money
from ..workflows.service import agent_cancel, agent_refund
from .settings import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD, DEMO_AGENTS

#: The agent recorded on the demo's cancellations and refunds.
SEED_AGENT = DEMO_AGENT_EMAIL
FIRST_ORDER = "DEMO-1001"
#: The first order was bought this long before the data set's anchor time.
FIRST_ORDER_AGE = timedelta(days=368)


def local_url() -> str:
    """Where `flask run` serves the demo (it reads FLASK_RUN_HOST and FLASK_RUN_PORT too)."""
    return f"http://{os.environ.get('FLASK_RUN_HOST', '127.0.0.1')}:{os.environ.get('FLASK_RUN_PORT', '5000')}"


PRICE_POINTS: dict[str, dict[str, Any]] = {
    "pro-monthly": {"product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month",
                    "cancellation": "instant", "refund_window_days": 30},
    "starter-monthly": {"product": "Starter Plan", "amount": "19.00", "currency": "USD", "interval": "month",
                        "cancellation": "instant", "refund_window_days": 14},
    "team-yearly": {"product": "Team Plan", "amount": "490.00", "currency": "USD", "interval": "year",
                    "cancellation": "delayed", "refund_window_days": 30},
    "pro-monthly-eur": {"product": "Pro Plan", "amount": "45.00", "currency": "EUR", "interval": "month",
                        "cancellation": "delayed", "refund_window_days": 30,
                        # German VAT, in the price: its invoices show net, VAT and gross (docs/invoices.md)
                        "tax": {"name": "VAT", "rate": "19.00", "inclusive": True}},
    "email-course": {"product": "Email Marketing Course", "amount": "199.00", "currency": "USD", "interval": None,
                     "refund_window_days": 30},
    "onboarding-session": {"product": "Onboarding Session", "amount": "99.00", "currency": "USD", "interval": None,
                           "refund_window_days": 14},
    "templates-pack": {"product": "Design Templates Pack", "amount": "59.00", "currency": "USD", "interval": None,
                       "refund_window_days": 30},
}

LEADS: dict[str, dict[str, Any]] = {
    "ann@example.com": {"first_name": "Ann", "last_name": "Lee", "address": {
        "name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "region": "IL", "postal_code": "62701",
        "country": "US"}},
    "bob@example.com": {"first_name": "Bob", "last_name": "Stone", "address": {
        "name": "Stone & Co", "line1": "200 Market St", "line2": "Suite 4", "city": "San Francisco",
        "region": "CA", "postal_code": "94105", "country": "US"}},
    "carla@example.com": {"first_name": "Carla", "last_name": "Diaz", "address": {
        "name": "Carla Diaz", "line1": "55 Ocean Ave", "city": "Miami", "region": "FL", "postal_code": "33139",
        "country": "US"}},
    "dev@example.com": {"first_name": "Dev", "last_name": "Patel", "address": {
        "name": "Dev Patel", "line1": "9 King St", "city": "Toronto", "region": "ON", "postal_code": "M5H 1A1",
        "country": "CA"}},
    "erin@example.com": {"first_name": "Erin", "last_name": "Wu", "address": {
        "name": "Erin Wu", "line1": "12 Harbour Rd", "city": "Seattle", "region": "WA", "postal_code": "98101",
        "country": "US"}},
    "frank@example.com": {"first_name": "Frank", "last_name": "Meyer", "address": {
        "name": "Frank Meyer", "line1": "Hauptstrasse 5", "city": "Berlin", "postal_code": "10115",
        "country": "DE"}},
}


@dataclass(frozen=True)
class DemoOrder:
    order_id: str
    email: str
    price_point: str
    #: How long before the anchor time it was bought.
    age: timedelta
    shows: str
    card: dict[str, Any] | None = field(default=None)
    paypal: str | None = None
    #: "cancel_now", "cancel_at_period_end", "refund_full", "refund_partial:<amount>" or None
    agent_action: str | None = None


VISA = {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}
MASTERCARD = {"type": "card", "brand": "mastercard", "last4": "4444", "exp_month": 8, "exp_year": 2029}

ORDERS: tuple[DemoOrder, ...] = (
    DemoOrder(FIRST_ORDER, "ann@example.com", "pro-monthly", FIRST_ORDER_AGE,
              "monthly subscription by card, a year of payments; cancel (instant) or refund the latest", VISA),
    DemoOrder("DEMO-1002", "ann@example.com", "email-course", timedelta(days=20),
              "one-time purchase within its refund window", VISA),
    DemoOrder("DEMO-1003", "bob@example.com", "team-yearly", timedelta(days=405),
              "yearly subscription, delayed cancellation (ends at the paid period's end)", MASTERCARD),
    DemoOrder("DEMO-1004", "bob@example.com", "onboarding-session", timedelta(days=200),
              "one-time purchase past its refund window (no refund icon)", MASTERCARD),
    DemoOrder("DEMO-1005", "carla@example.com", "pro-monthly", timedelta(days=190),
              "PayPal subscription: card changes point to PayPal", paypal="carla.paypal@example.com"),
    DemoOrder("DEMO-1006", "dev@example.com", "starter-monthly", timedelta(days=250),
              "cancelled subscription (cancelled by an agent)", VISA, agent_action="cancel_now"),
    DemoOrder("DEMO-1007", "dev@example.com", "templates-pack", timedelta(days=10),
              "refunded payment (refunded in full by an agent)", VISA, agent_action="refund_full"),
    DemoOrder("DEMO-1008", "erin@example.com", "team-yearly", timedelta(days=61),
              "yearly subscription with its cancellation scheduled", VISA, agent_action="cancel_at_period_end"),
    DemoOrder("DEMO-1009", "erin@example.com", "email-course", timedelta(days=15),
              "partially refunded payment (50.00 of 199.00)", VISA, agent_action="refund_partial:50.00"),
    DemoOrder("DEMO-1010", "frank@example.com", "pro-monthly-eur", timedelta(days=95),
              "monthly subscription in euros, German address, delayed cancellation", MASTERCARD),
)


DEMO_ORDER_IDS = frozenset(order.order_id for order in ORDERS)
#: How many of the orders found are named in the refusal.
_NAMED = 3


class NotADemoDatabase(Exception):
    """The database holds orders that are not the demo's: seeding would change a real shop."""


def refuse_a_real_shop() -> None:
    """Raise :class:`NotADemoDatabase` when any order in the database is not one of :data:`ORDERS`."""
    others = Purchase.order_id.not_in(DEMO_ORDER_IDS)
    count = db.session.execute(select(func.count(Purchase.id)).where(others)).scalar_one()
    if not count:
        return
    named = db.session.execute(
        select(Purchase.order_id).where(others).order_by(Purchase.id).limit(_NAMED)
    ).scalars().all()
    examples = ", ".join(named) + (", ..." if count > len(named) else "")
    where = db.engine.url.render_as_string(hide_password=True)
    raise NotADemoDatabase(
        f"Not seeding: the database {where} already holds {count} order{'s' if count != 1 else ''} "
        f"that {'are' if count != 1 else 'is'} not the demo's ({examples}). The demo data would switch "
        "this shop to automatic cancellations and refunds and add demo customers beside its own; nothing "
        "was changed. To try the demo, give it an empty database of its own: set "
        "FLASK_SQLALCHEMY_DATABASE_URI (or leave it unset for the demo's SQLite file), run "
        "`flask --app plugin.demo self-billing init-db`, then `flask --app plugin.demo self-billing seed-demo`."
    )


def _anchor(now: datetime) -> datetime:
    """The time the data set is laid out from: when it was first loaded (now, on the first run)."""
    first = db.session.execute(
        select(Purchase.purchased_at).where(Purchase.order_id == FIRST_ORDER)
    ).scalar_one_or_none()
    if first is not None:
        return first + FIRST_ORDER_AGE
    return now.replace(minute=0, second=0, microsecond=0)


def _ensure_order(order: DemoOrder, anchor: datetime) -> None:
    exists = db.session.execute(select(Purchase.id).where(Purchase.order_id == order.order_id)).first()
    if exists:
        return
    lead = LEADS[order.email]
    method = {"type": "paypal", "payer_email": order.paypal} if order.paypal else dict(order.card or VISA)
    service.upsert_order(order.order_id, OrderIn.model_validate({
        "email": order.email,
        "first_name": lead["first_name"],
        "last_name": lead["last_name"],
        "price_point": order.price_point,
        "purchased_at": anchor - order.age,
        "billing_address": lead["address"],
        "payment_method": method,
    }))


def _pay_until(order_id: str, now: datetime) -> None:
    """Record the payments that fell due by ``now``: one for a one-time purchase, each period's for a subscription."""
    for _ in range(500):
        purchase = db.session.execute(
            select(Purchase).where(Purchase.order_id == order_id).execution_options(populate_existing=True)
        ).scalar_one()
        paid = db.session.execute(
            select(func.count(Payment.id)).where(Payment.purchase_id == purchase.id)
        ).scalar_one()
        if purchase.kind == "one_time":
            due = purchase.purchased_at if paid == 0 else None
        elif purchase.status != "active":
            due = None
        else:
            due = purchase.purchased_at if paid == 0 else purchase.next_payment_at
        if due is None or due > now:
            return
        service.record_payment(order_id, PaymentIn(payment_id=f"{order_id}-{due:%Y%m%d}", paid_at=due),
                               notify=False)  # seeded history: no receipts


def _agent_action(order: DemoOrder) -> None:
    """The agent's cancellation or refund, made once (skipped when already done)."""
    if order.agent_action is None:
        return
    purchase = service.get_purchase(order.order_id)
    if order.agent_action.startswith("cancel"):
        if purchase.status == "active":
            when = "now" if order.agent_action == "cancel_now" else "period_end"
            agent_cancel(purchase, SEED_AGENT, when, message="Cancelled at the customer's request by phone.")
        return
    payment = db.session.execute(
        select(Payment).where(Payment.purchase_id == purchase.id).order_by(Payment.paid_at.desc()).limit(1)
    ).scalar_one()
    if payment.refunded_cents:
        return
    _, _, amount = order.agent_action.partition(":")
    refund_amount = amount or format_amount(payment.remaining_cents)
    agent_refund(payment, SEED_AGENT, refund_amount, message="Refund agreed with the customer by email.")


def _describe(order: DemoOrder) -> str:
    purchase = service.get_purchase(order.order_id)
    payments = db.session.execute(
        select(Payment).where(Payment.purchase_id == purchase.id).order_by(Payment.paid_at)
    ).scalars().all()
    state = f"{purchase.status.replace('_', ' ')}, {len(payments)} payment{'s' if len(payments) != 1 else ''}"
    if purchase.status == "active" and purchase.next_payment_at:
        state += f", next {purchase.next_payment_at:%Y-%m-%d}"
    if purchase.cancels_at and purchase.status == "cancel_scheduled":
        state += f", ends {purchase.cancels_at:%Y-%m-%d}"
    refunded = sum(p.refunded_cents for p in payments)
    if refunded:
        state += f", {format_money(refunded, purchase.currency)} refunded"
    return f"{purchase.product}: {order.shows} [{state}]"


def seed_demo(now: datetime | None = None) -> list[str]:
    """Load the demo data set (idempotent) and return the lines to print.

    :raises NotADemoDatabase: the database holds orders that are not the demo's (nothing is changed).
    """
    refuse_a_real_shop()
    now = now or utcnow()
    service.update_settings(SettingsIn.model_validate({
        "enabled": True, "portal": "both", "cancellation": {"mode": "automatic"},
        "refunds": {"mode": "automatic"}, "department": "Billing",
    }))
    for code, body in PRICE_POINTS.items():
        service.upsert_price_point(code, PricePointIn.model_validate({"interval_count": 1, **body}))
    anchor = _anchor(now)
    for order in ORDERS:
        _ensure_order(order, anchor)
        _pay_until(order.order_id, now)
        _agent_action(order)
    db.session.commit()
    return _report()


def _report() -> list[str]:
    config = current_app.config
    prefix = config.get("SELF_BILLING_URL_PREFIX", "/billing").rstrip("/")
    counts = {
        "leads": db.session.execute(select(func.count(Lead.id))).scalar_one(),
        "purchases": db.session.execute(select(func.count(Purchase.id))).scalar_one(),
        "payments": db.session.execute(select(func.count(Payment.id))).scalar_one(),
    }
    width = max(len(o.email) for o in ORDERS)
    lines = [
        f"Demo data ready: {counts['leads']} leads, {counts['purchases']} purchases, {counts['payments']} payments.",
        "Settings: self-service billing enabled; portal: both (help center tab and standalone);",
        "  cancellations: automatic (processed at once, per the price point: instant or delayed);",
        "  refunds: automatic (a customer's refund request is refunded at once through the sandbox processor).",
        "  Switch either to \"request\" (PUT {prefix}/api/admin/settings) to see requests become desk tickets."
        .replace("{prefix}", prefix),
        "",
        "Log in to My Orders with an Order ID and its email:",
        f"  {'Order ID':<10} {'Email':<{width}}  What it shows",
    ]
    for order in ORDERS:
        lines.append(f"  {order.order_id:<10} {order.email:<{width}}  {_describe(order)}")
    base = local_url()
    lines += [
        "",
        "Open (when served by `flask --app plugin.demo run`):",
        f"  Help center, My Orders tab:  {base}/help/my-orders",
        f"  Standalone billing portal:   {base}{prefix}/portal/",
    ]
    if "helpdesk_desk" in current_app.blueprints:
        agents = config.get("HELPDESK_AGENTS") or {}
        if agents.get(DEMO_AGENT_EMAIL) == DEMO_AGENTS[DEMO_AGENT_EMAIL]:
            login = f"{DEMO_AGENT_EMAIL} / {DEMO_AGENT_PASSWORD}"
        else:
            login = "an agent from HELPDESK_AGENTS"
        lines.append(f"  Agent desk:                  {base}/desk/  (sign in as {login})")
    lines += [
        "",
        "Sandbox test cards for Update credit card: 4242 4242 4242 4242 attaches, "
        "4000 0000 0000 0002 is declined; any future expiry and any CVC.",
    ]
    return lines


class SeedRefused(click.ClickException):
    """Exit status 3: refused, nothing changed (``./scripts/demo`` then serves the database as it is)."""

    exit_code = 3


@click.command("seed-demo")
@with_appcontext
def seed_command() -> None:
    """Load the demo data and print the logins to try it with (into an empty or demo database only).

    Refuses (exit status 3, nothing changed) a database holding orders that are not the demo's.
    """
    try:
        lines = seed_demo()
    except NotADemoDatabase as refusal:
        raise SeedRefused(str(refusal)) from None
    for line in lines:
        click.echo(line)

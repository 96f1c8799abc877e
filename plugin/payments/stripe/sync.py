"""Stripe objects as ledger rows: shared by the webhook (:mod:`.webhook`) and the import (:mod:`.importer`).

Every function is idempotent (the same object twice leaves the same rows) and reads what it needs
again from Stripe rather than trusting an event's snapshot, so events applied in any order, or
again, end in Stripe's current state. The ledger is written through its public functions
(:func:`plugin.ledger.service.upsert_order`, :func:`~plugin.ledger.service.record_payment`, ...)
and :mod:`.ledger_bridge` for what it has no function for yet.

Order IDs: a subscription's is its ``metadata.order_id``, else the subscription id; a one-time
purchase's is its PaymentIntent's ``metadata.order_id``, else the PaymentIntent id. Payment ids:
the invoice id (subscriptions) or the PaymentIntent id (one-time purchases).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from flask import current_app
from sqlalchemy import select

from ...db import db
from ...errors import BillingError, NotFound
from ...ledger import service
from ...ledger.models import Payment, PaymentMethod, Purchase
from . import ledger_bridge, links
from .client import sid
from .gateway import KEY_METADATA, StripeGateway

log = logging.getLogger(__name__)
NO_ADDRESS = "Not given"


def when(stamp: Any) -> datetime | None:
    return None if stamp in (None, "") else datetime.fromtimestamp(int(stamp), tz=timezone.utc)


def iso(stamp: Any) -> str:
    moment = when(stamp) or datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def amount_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def subscription_order_id(sub: dict[str, Any]) -> str:
    return str((sub.get("metadata") or {}).get("order_id") or sub["id"])


def payment_intent_order_id(pi: dict[str, Any]) -> str:
    return str((pi.get("metadata") or {}).get("order_id") or pi["id"])


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """The invoice's subscription, in the API's old shape and its new one (``parent``, 2025-03-31 on)."""
    details = ((invoice.get("parent") or {}).get("subscription_details") or {})
    return sid(invoice.get("subscription")) or sid(details.get("subscription"))


class Sync:
    """Applies Stripe objects to the ledger, reading through the app's Stripe gateway."""

    def __init__(self, gateway: StripeGateway, *, notify: bool = True) -> None:
        """``notify=False`` (the importer): payments are history, so no receipt is emailed for them;
        the webhook keeps the default, a payment just made in Stripe gets its receipt."""
        self.gateway = gateway
        self.api = gateway.api
        self.notify = notify
        self._customers: dict[str, dict[str, Any]] = {}

    def fetch(self, what: str, service_name: str, object_id: str) -> dict[str, Any]:
        return self.gateway._call(what, getattr(self.api, service_name).retrieve, object_id)

    def customer(self, customer_id: str, fresh: bool = False) -> dict[str, Any]:
        if fresh or customer_id not in self._customers:
            self._customers[customer_id] = self.fetch("reading the customer", "customers", customer_id)
        return self._customers[customer_id]

    # -- the parts of an order ----------------------------------------------------------------

    def _address(self, customer: dict[str, Any]) -> dict[str, str]:
        given = customer.get("address") or {}
        name = customer.get("name") or customer.get("email") or NO_ADDRESS
        return {"name": str(name)[:200], "line1": str(given.get("line1") or NO_ADDRESS)[:200],
                "line2": str(given.get("line2") or "")[:200], "city": str(given.get("city") or NO_ADDRESS)[:100],
                "region": str(given.get("state") or "")[:100], "postal_code": str(given.get("postal_code") or "")[:20],
                "country": str(given.get("country") or current_app.config["SELF_BILLING_STRIPE_DEFAULT_COUNTRY"]).upper()}

    def _card(self, method_ids: list[Any], customer_id: str | None) -> tuple[dict[str, Any], str | None]:
        """The order's card as the ledger takes it, and its PaymentMethod id."""
        for method_id in [sid(m) for m in method_ids if m]:
            if method_id and method_id.startswith("pm_"):
                method = self.fetch("reading the card", "payment_methods", method_id)
                card = method.get("card") or {}
                if card.get("last4"):
                    return ({"type": "card", "brand": str(card.get("brand") or "card"), "last4": card["last4"],
                             "exp_month": int(card.get("exp_month") or 12),
                             "exp_year": int(card.get("exp_year") or 2099)}, method_id)
        if customer_id:
            cards = self.gateway._list("listing the customer's cards", self.api.payment_methods,
                                       {"customer": customer_id, "type": "card"})
            if cards:
                return self._card([cards[0]["id"]], None)
        return {"type": "card", "brand": "card", "last4": "0000", "exp_month": 12, "exp_year": 2099}, None

    def _price_point(self, code: str, body: dict[str, Any]) -> str:
        """The price point ``code``, made when new (the merchant's own settings of it are kept)."""
        try:
            service.read_price_point(code)
        except NotFound:
            db.session.rollback()
            service.upsert_price_point(code, {
                "cancellation": current_app.config["SELF_BILLING_STRIPE_CANCELLATION"],
                "refund_window_days": int(current_app.config["SELF_BILLING_STRIPE_REFUND_WINDOW_DAYS"]), **body})
        return code

    def _plan_price_point(self, sub: dict[str, Any]) -> str:
        items = (sub.get("items") or {}).get("data") or []
        item = items[0] if items else {}
        price = item.get("price") or item.get("plan") or sub.get("plan") or {}
        recurring = price.get("recurring") or {}
        interval = recurring.get("interval") or price.get("interval") or "month"
        count = int(recurring.get("interval_count") or price.get("interval_count") or 1)
        cents = int(price.get("unit_amount") if price.get("unit_amount") is not None else price.get("amount") or 0)
        product = price.get("product")
        name = price.get("nickname") or ""
        if isinstance(product, dict):
            name = product.get("name") or name
        elif product:
            name = self.fetch("reading the product", "products", product).get("name") or name
        return self._price_point(f"stripe-{price.get('id') or 'plan'}"[:64], {
            "product": name or "Subscription", "amount": amount_text(cents),
            "currency": str(price.get("currency") or "usd").upper(), "interval": interval, "interval_count": count})

    def _order(self, order_id: str, code: str, customer_id: str, purchased_at: Any, method_ids: list[Any]) -> bool:
        customer = self.customer(customer_id)
        email = customer.get("email")
        if not email:
            log.warning("Stripe customer %s has no email: order %s is left out (it could not be logged in to)",
                        customer_id, order_id)
            return False
        first, _, last = str(customer.get("name") or "").partition(" ")
        card, method_id = self._card(method_ids, customer_id)
        service.upsert_order(order_id, {"email": email, "first_name": first[:200], "last_name": last[:200],
                                        "price_point": code, "purchased_at": iso(purchased_at),
                                        "billing_address": self._address(customer), "payment_method": card})
        links.put("customer", order_id, customer_id)
        if method_id:  # the ledger's row for this card carries its own token: link it to Stripe's
            for row in db.session.execute(select(PaymentMethod).join(Purchase).where(
                    Purchase.order_id == order_id, PaymentMethod.last4 == card["last4"],
                    PaymentMethod.exp_month == card["exp_month"], PaymentMethod.exp_year == card["exp_year"])).scalars():
                if row.processor_token != method_id:
                    links.put("card", row.processor_token, method_id)
        return True

    def _pay(self, order_id: str, payment_id: str, paid_at: Any, cents: int, refund_target: str | None) -> bool:
        try:
            _payment, created = service.record_payment(order_id, {"payment_id": payment_id, "paid_at": iso(paid_at),
                                                                  "amount": amount_text(cents)}, notify=self.notify)
        except BillingError as err:
            log.warning("Stripe payment %s of order %s not recorded: %s", payment_id, order_id, err.message)
            return False
        if refund_target:
            links.put("payment", payment_id, refund_target)
            db.session.commit()
        return created

    # -- Stripe objects ---------------------------------------------------------------------

    def subscription(self, sub: dict[str, Any], *, invoices: bool = False) -> str | None:
        """Create or update the subscription's purchase (and with ``invoices``, its paid invoices)."""
        order_id = subscription_order_id(sub)
        customer_id = str(sid(sub.get("customer")))
        customer = self.customer(customer_id)
        defaults = [sub.get("default_payment_method"),
                    (customer.get("invoice_settings") or {}).get("default_payment_method")]
        if not self._order(order_id, self._plan_price_point(sub), customer_id,
                           sub.get("start_date") or sub.get("created"), defaults):
            return None
        links.put("subscription", order_id, sub["id"])
        db.session.commit()
        if invoices:
            for invoice in self.gateway._list("listing the invoices", self.api.invoices, {"subscription": sub["id"]}):
                self.invoice(invoice, sub)
        self.subscription_state(sub)
        return order_id

    def subscription_state(self, sub: dict[str, Any]) -> str | None:
        items = (sub.get("items") or {}).get("data") or [{}]
        period_end = sub.get("current_period_end") or items[0].get("current_period_end")
        canceled = sub.get("status") in ("canceled", "incomplete_expired")
        cancels_at = sub.get("cancel_at") or (period_end if sub.get("cancel_at_period_end") else None)
        return ledger_bridge.set_subscription_state(
            subscription_order_id(sub), canceled_at=when(sub.get("ended_at") or sub.get("canceled_at")) if canceled
            else None, cancels_at=None if canceled else when(cancels_at), next_payment_at=when(period_end))

    def invoice(self, invoice: dict[str, Any], sub: dict[str, Any] | None = None) -> bool:
        """Record a paid invoice as a payment of its subscription (the purchase is made when new)."""
        if invoice.get("status") != "paid" or int(invoice.get("amount_paid") or 0) <= 0:
            return False
        sub_id = invoice_subscription_id(invoice)
        if not sub_id:
            return False  # an invoice of no subscription: not an order of the portal
        if sub is None:
            sub = self.fetch("reading the subscription", "subscriptions", sub_id)
            if self.subscription(sub) is None:
                return False
        order_id = subscription_order_id(sub)
        paid_at = (invoice.get("status_transitions") or {}).get("paid_at") or invoice.get("created")
        target = sid(invoice.get("charge")) or sid(invoice.get("payment_intent"))
        return self._pay(order_id, invoice["id"], paid_at, int(invoice["amount_paid"]), target)

    def payment_intent(self, pi: dict[str, Any]) -> str | None:
        """A succeeded one-time PaymentIntent as a one-time purchase with its payment."""
        if pi.get("status") != "succeeded" or pi.get("invoice") or not sid(pi.get("customer")):
            return None
        if "invoice" not in pi and self.gateway._list("reading the invoice payments", self.api.invoice_payments,
                                                      {"payment": {"type": "payment_intent", "payment_intent": pi["id"]}}):
            return None  # API versions from 2025-03-31 on: an invoice's PaymentIntent is the invoice's payment
        order_id = payment_intent_order_id(pi)
        cents = int(pi.get("amount_received") or pi.get("amount") or 0)
        currency = str(pi.get("currency") or "usd").upper()
        code = self._price_point(f"stripe-once-{currency.lower()}-{cents}", {
            "product": str(pi.get("description") or "One-time purchase")[:200], "amount": amount_text(cents),
            "currency": currency, "interval": None, "cancellation": "instant"})
        if not self._order(order_id, code, str(sid(pi.get("customer"))), pi.get("created"), [pi.get("payment_method")]):
            return None
        links.put("payment_intent", order_id, pi["id"])
        db.session.commit()
        self._pay(order_id, pi["id"], pi.get("created"), cents, pi["id"])
        return order_id

    def charge_refunds(self, charge: dict[str, Any]) -> int:
        """Record the charge's refunds made in Stripe (not ours) on its payment; how many were new."""
        payment_id = self._payment_of_charge(charge)
        if payment_id is None:
            return 0
        new = 0
        for refund in self.gateway._list("listing the charge's refunds", self.api.refunds, {"charge": charge["id"]}):
            if (refund.get("metadata") or {}).get(KEY_METADATA) or refund.get("status") != "succeeded":
                continue  # ours: the request that made it records it
            if ledger_bridge.record_external_refund(payment_id, int(refund["amount"]), refund["id"],
                                                    when(refund.get("created")) or datetime.now(timezone.utc)):
                new += 1
        return new

    def _payment_of_charge(self, charge: dict[str, Any]) -> str | None:
        for stripe_id in (charge.get("id"), sid(charge.get("payment_intent"))):
            if stripe_id:
                found = links.ours("payment", stripe_id)
                if found:
                    return found[0]
        for candidate in (sid(charge.get("invoice")), sid(charge.get("payment_intent"))):
            if candidate and db.session.execute(select(Payment.id).where(Payment.payment_id == candidate)).first():
                return candidate
        return None

    def customer_changed(self, customer_id: str) -> int:
        """Follow a customer's new email (and name, address) on every order of theirs; how many."""
        self.customer(customer_id, fresh=True)
        done = 0
        for order_id in links.ours("customer", customer_id):
            sub_id = links.get("subscription", order_id)
            pi_id = links.get("payment_intent", order_id)
            if sub_id:
                done += self.subscription(self.fetch("reading the subscription", "subscriptions", sub_id)) is not None
            elif pi_id:
                done += self.payment_intent(self.fetch("reading the PaymentIntent", "payment_intents", pi_id)) is not None
        return done

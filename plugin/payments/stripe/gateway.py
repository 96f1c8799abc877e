"""The Stripe adapter behind :class:`plugin.payments.interface.PaymentGateway`.

Money moves as Stripe refunds of the payment's charge or PaymentIntent and as subscription
cancellations, each sent with our request's key as Stripe's ``idempotency_key``. Before a refund
the payment's refunds at Stripe are listed: one already made with this key (an answer lost after
Stripe succeeded, or a retry after Stripe's 24 hours of idempotency) is answered, never made again,
and a refund over what remains at Stripe is refused. Our own guards (one open request per payment,
the purchase lock, the remaining-amount check) hold without these.

Which Stripe objects a purchase or payment is comes from :mod:`.links` (written by the webhook and
the import); an Order ID or payment id that is itself a Stripe id (``sub_``, ``pi_``, ``in_``,
``ch_``) needs no link.
"""
from __future__ import annotations

from typing import Any

from flask import current_app

from ..interface import (
    CancelOrder,
    CancelResult,
    CardDetails,
    CardRef,
    GatewayError,
    InvalidToken,
    PayPalManaged,
    PurchaseRef,
    RefundOrder,
    RefundResult,
    ResumeOrder,
    ResumeResult,
)
from . import client as stripe_client
from . import links
from .client import plain, services, sid, translate

#: Metadata key of every refund we make: how a refund made by us is told from one made in Stripe.
KEY_METADATA = "self_billing_key"
LIVE_REFUND_STATES = ("succeeded", "pending", "requires_action")


class StripeGateway:
    """Stripe as the payment processor. One instance per app; its client is built at first use."""

    name = "stripe"

    def __init__(self, secret_key: str | None = None, api_base: str | None = None,
                 timeout: float | None = None, max_network_retries: int | None = None) -> None:
        self._settings = {"secret_key": secret_key, "api_base": api_base, "timeout": timeout,
                          "max_network_retries": max_network_retries}
        self._client: Any = None

    # -- the client -------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The v1 services of this gateway's own ``StripeClient``."""
        if self._client is None:
            config = current_app.config
            key = self._settings["secret_key"] or config.get("SELF_BILLING_STRIPE_SECRET_KEY")
            if not key:
                raise GatewayError("SELF_BILLING_STRIPE_SECRET_KEY is not set: the Stripe gateway has no API key.")
            self._client = stripe_client.make_client(
                key,
                self._settings["api_base"] or config.get("SELF_BILLING_STRIPE_API_BASE"),
                float(self._settings["timeout"] or config.get("SELF_BILLING_STRIPE_TIMEOUT_SECONDS", 20)),
                int(self._settings["max_network_retries"] if self._settings["max_network_retries"] is not None
                    else config.get("SELF_BILLING_STRIPE_MAX_NETWORK_RETRIES", 1)),
            )
        return services(self._client)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return plain(fn(*args, **kwargs))
        except GatewayError:
            raise
        except Exception as exc:  # the library's exceptions, translated once
            raise translate(exc, what) from exc

    def _list(self, what: str, service: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return [plain(item) for item in service.list(params={"limit": 100, **params}).auto_paging_iter()]
        except Exception as exc:
            raise translate(exc, what) from exc

    # -- what a purchase and a payment are at Stripe -------------------------------------------

    def subscription_id(self, purchase: PurchaseRef) -> str:
        linked = links.lookup("subscription", purchase.order_id)
        if linked:
            return linked
        if purchase.order_id.startswith("sub_"):
            return purchase.order_id
        raise GatewayError(f"Order {purchase.order_id} is not linked to a Stripe subscription: it was not "
                           "imported from Stripe (flask self-billing stripe-import) nor announced by its webhook.")

    def customer_id(self, purchase: PurchaseRef) -> str:
        linked = links.lookup("customer", purchase.order_id)
        if linked:
            return linked
        if purchase.kind == "subscription":
            sub = self._call("reading the subscription", self.api.subscriptions.retrieve,
                             self.subscription_id(purchase))
            return str(sid(sub.get("customer")))
        raise GatewayError(f"Order {purchase.order_id} is not linked to a Stripe customer.")

    def refund_target(self, payment_id: str) -> dict[str, str]:
        """``{"charge": ...}`` or ``{"payment_intent": ...}``: what a refund of the payment returns."""
        linked = links.lookup("payment", payment_id) or payment_id
        if linked.startswith("ch_"):
            return {"charge": linked}
        if linked.startswith("pi_"):
            return {"payment_intent": linked}
        if linked.startswith("in_"):
            return self._invoice_target(linked)
        raise GatewayError(f"Payment {payment_id} is not linked to a Stripe charge, PaymentIntent or invoice.")

    def _invoice_target(self, invoice_id: str) -> dict[str, str]:
        invoice = self._call("reading the invoice", self.api.invoices.retrieve, invoice_id)
        for field in ("payment_intent", "charge"):  # API versions before 2025-03-31
            if sid(invoice.get(field)):
                return {field: str(sid(invoice.get(field)))}
        payments = self._list("reading the invoice's payments", self.api.invoice_payments,
                              {"invoice": invoice_id})
        for item in payments:  # API versions from 2025-03-31 on: InvoicePayment objects
            paid = item.get("payment") or {}
            if item.get("status") in (None, "paid"):
                for field in ("payment_intent", "charge"):
                    if sid(paid.get(field)):
                        return {field: str(sid(paid.get(field)))}
        raise GatewayError(f"Stripe's invoice {invoice_id} has no payment to refund.")

    # -- money ------------------------------------------------------------------------------

    def refund(self, order: RefundOrder) -> RefundResult:
        if order.amount_cents <= 0:
            raise GatewayError("A refund must be more than zero.")
        target = self.refund_target(order.payment_id)
        earlier = self._list("listing the payment's refunds", self.api.refunds, target)
        for refund in earlier:
            if (refund.get("metadata") or {}).get(KEY_METADATA) == order.idempotency_key:
                return RefundResult(refund["id"], int(refund["amount"]), order.currency, raw=refund)
        refunded = sum(int(r.get("amount") or 0) for r in earlier if r.get("status") in LIVE_REFUND_STATES)
        if refunded + order.amount_cents > order.paid_cents:
            raise GatewayError("The refund is more than what remains of the payment at Stripe "
                               f"({order.paid_cents - refunded} cents remain).")
        params = {**target, "amount": order.amount_cents,
                  "metadata": {KEY_METADATA: order.idempotency_key, "order_id": order.purchase.order_id,
                               "payment_id": order.payment_id}}
        refund = self._call("refunding the payment", self.api.refunds.create, params=params,
                            options={"idempotency_key": order.idempotency_key})
        if refund.get("status") == "failed":
            raise GatewayError(f"Stripe's refund {refund['id']} failed: {refund.get('failure_reason') or 'no reason'}.")
        return RefundResult(refund["id"], int(refund["amount"]), order.currency, raw=refund)

    def cancel_subscription(self, order: CancelOrder) -> CancelResult:
        sub_id = self.subscription_id(order.purchase)
        options = {"idempotency_key": order.idempotency_key}
        if order.at_period_end:
            sub = self._call("scheduling the cancellation", self.api.subscriptions.update, sub_id,
                             params={"cancel_at_period_end": True}, options=options)
            return CancelResult(sub["id"], True, raw=sub)
        try:
            sub = self._call("cancelling the subscription", self.api.subscriptions.cancel, sub_id, options=options)
        except GatewayError:
            sub = self._call("reading the subscription", self.api.subscriptions.retrieve, sub_id)
            if sub.get("status") != "canceled":  # not a repeat of a cancellation already made: a real refusal
                raise
        return CancelResult(sub["id"], False, raw=sub)

    def resume_subscription(self, order: ResumeOrder) -> ResumeResult:
        """Stripe's "Renew": ``cancel_at_period_end`` back to false (a repeat with the key changes nothing more)."""
        sub = self._call("keeping the subscription", self.api.subscriptions.update,
                         self.subscription_id(order.purchase), params={"cancel_at_period_end": False},
                         options={"idempotency_key": order.idempotency_key})
        if sub.get("status") == "canceled":
            raise GatewayError(f"Stripe's subscription {sub['id']} has already ended; it cannot be kept.")
        return ResumeResult(sub["id"], raw=sub)

    # -- cards ------------------------------------------------------------------------------

    @staticmethod
    def _refuse_paypal(purchase: PurchaseRef) -> None:
        if purchase.payment_type == "paypal":
            raise PayPalManaged("This purchase is paid with PayPal: change its payment method under "
                                "'Manage automatic payments' in your PayPal account.")

    @staticmethod
    def payment_method_id(card: CardRef) -> str | None:
        """The ``pm_...`` behind a saved card's token (imported cards are linked to theirs)."""
        token = card.processor_token
        linked = links.lookup("card", token)
        if linked:
            return linked
        return token if token.startswith(("pm_", "card_", "src_")) and not token.startswith("pm_import_") else None

    def attach_payment_method(self, purchase: PurchaseRef, token: str) -> CardDetails:
        self._refuse_paypal(purchase)
        if not token.startswith("pm_"):
            raise InvalidToken("Stripe's card form gives a PaymentMethod id (pm_...); this is not one.")
        customer = self.customer_id(purchase)
        try:
            method = plain(self.api.payment_methods.attach(token, params={"customer": customer}))
        except Exception as exc:
            error = translate(exc, "attaching the card")
            if error.__class__ is GatewayError and (getattr(exc, "http_status", None) == 404
                                                   or getattr(exc, "code", None) == "resource_missing"):
                raise InvalidToken("Stripe does not know this card (PaymentMethod); enter the card again.") from exc
            raise error from exc
        card = method.get("card") or {}
        found = self._call("reading the customer", self.api.customers.retrieve, customer)
        if not sid((found.get("invoice_settings") or {}).get("default_payment_method")):
            self._set_customer_default(customer, method["id"])  # the first card is the default, as here
        return CardDetails(method["id"], str(card.get("brand") or "card"), str(card.get("last4") or ""),
                           int(card.get("exp_month") or 0), int(card.get("exp_year") or 0))

    def _set_customer_default(self, customer: str, method_id: str) -> None:
        self._call("setting the default card", self.api.customers.update, customer,
                   params={"invoice_settings": {"default_payment_method": method_id}})

    def detach_payment_method(self, purchase: PurchaseRef, card: CardRef) -> None:
        self._refuse_paypal(purchase)
        method_id = self.payment_method_id(card)
        if method_id is None:
            return  # a card Stripe never had (no PaymentMethod behind it): nothing to detach there
        try:
            self._call("removing the card", self.api.payment_methods.detach, method_id)
        except GatewayError as err:
            if err.__class__ is not GatewayError:  # an outage: the caller tells the person
                raise
            # Already detached, or unknown to Stripe: the card is not on the customer either way.

    def set_default_payment_method(self, purchase: PurchaseRef, card: CardRef) -> None:
        self._refuse_paypal(purchase)
        method_id = self.payment_method_id(card)
        if method_id is None:
            raise InvalidToken("This card has no Stripe PaymentMethod behind it; add it again with the card form.")
        self._set_customer_default(self.customer_id(purchase), method_id)
        if purchase.kind == "subscription":
            sub_id = self.subscription_id(purchase)
            sub = self._call("reading the subscription", self.api.subscriptions.retrieve, sub_id)
            if sid(sub.get("default_payment_method")) not in (None, method_id):
                # The subscription's own default wins over the customer's at Stripe: change it too.
                self._call("setting the subscription's card", self.api.subscriptions.update, sub_id,
                           params={"default_payment_method": method_id})


def make_gateway() -> StripeGateway:
    """``SELF_BILLING_GATEWAY = "stripe"``: the gateway reads its ``SELF_BILLING_STRIPE_*`` keys at first use."""
    stripe_client.require_library()
    return StripeGateway()

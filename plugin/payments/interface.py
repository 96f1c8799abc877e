"""The interface every payment processor adapter implements: plain data in, typed results and errors out.

An adapter receives what the processor needs as frozen dataclasses (``PurchaseRef``,
``RefundOrder``, ``CancelOrder``, ``ResumeOrder``, ``CardRef``), never the plugin's database rows, and turns
processor answers into the results and errors below; callers never see a processor's raw
exceptions. Every money-moving call carries an idempotency key: the same key twice gives the
same result and moves money once. The plugin calls an adapter only through
:mod:`plugin.payments.processor`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class GatewayError(Exception):
    """A processor call that did not succeed. ``code`` is the contract's snake_case code."""

    code = "processor_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class CardDeclined(GatewayError):
    """The processor refused the card."""

    code = "card_declined"


class ProcessorOutage(GatewayError):
    """The processor could not be reached or failed; the call may be retried with the same key."""

    code = "processor_unavailable"


class PayPalManaged(GatewayError):
    """PayPal purchases keep their payment method in PayPal, not here."""

    code = "paypal_managed"
    manage_url = "https://www.paypal.com/myaccount/autopay/"


class InvalidToken(GatewayError):
    """The card token is unknown to the processor or already used."""

    code = "invalid_token"


@dataclass(frozen=True)
class PurchaseRef:
    """The purchase a call is about: its Order ID, what it is and how it is paid."""

    order_id: str
    kind: str
    payment_type: str
    currency: str


@dataclass(frozen=True)
class RefundOrder:
    """Return ``amount_cents`` of the payment ``payment_id`` (``paid_cents`` were paid)."""

    purchase: PurchaseRef
    payment_id: str
    paid_cents: int
    currency: str
    amount_cents: int
    idempotency_key: str


@dataclass(frozen=True)
class CancelOrder:
    """Stop the subscription's future charges now, or at the end of the paid period."""

    purchase: PurchaseRef
    at_period_end: bool
    idempotency_key: str


@dataclass(frozen=True)
class ResumeOrder:
    """Undo a cancellation scheduled for the period end: the subscription renews again."""

    purchase: PurchaseRef
    idempotency_key: str


@dataclass(frozen=True)
class CardRef:
    """A saved card as the processor knows it: its token, with brand and last four for messages."""

    processor_token: str
    brand: str = ""
    last4: str = ""


@dataclass(frozen=True)
class RefundResult:
    reference: str
    amount_cents: int
    currency: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelResult:
    reference: str
    at_period_end: bool
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResumeResult:
    reference: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CardDetails:
    """What the processor tells about an attached card: never the number."""

    processor_token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class PaymentGateway(Protocol):
    """A payment processor adapter."""

    name: str

    def refund(self, order: RefundOrder) -> RefundResult:
        """Return part or all of a payment to the customer. Raises GatewayError."""

    def cancel_subscription(self, order: CancelOrder) -> CancelResult:
        """Stop a subscription's future charges now or at the end of the paid period."""

    def resume_subscription(self, order: ResumeOrder) -> ResumeResult:
        """Keep a subscription whose cancellation at the period end is scheduled: it renews again."""

    def attach_payment_method(self, purchase: PurchaseRef, token: str) -> CardDetails:
        """Attach a card, given the processor's token. Raises CardDeclined, InvalidToken."""

    def detach_payment_method(self, purchase: PurchaseRef, card: CardRef) -> None:
        """Remove a card from the processor's customer."""

    def set_default_payment_method(self, purchase: PurchaseRef, card: CardRef) -> None:
        """Make a card the one future payments are charged to."""

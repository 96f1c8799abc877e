"""The one door to the payment processor: every call the plugin makes to it goes through here.

Callers hand over their rows; the gateway receives plain data (the dataclasses of
:mod:`.interface`), never a row. Every attempt is recorded in ``sb_processor_calls``
(:mod:`.records`: what, for which purchase, payment and request, the idempotency
key, the answer or error, how long it took), in its own short transaction on its own
connection, so the trail stays whatever the caller does next. Callers hold no
database transaction while the processor works.

An adapter that raises something other than a :class:`GatewayError` (a bug, a raw
library exception) is treated as an outage: the call may be retried with the same
key, which moves money at most once. :func:`user_error` is the one translation of a
processor's error into what a person reads.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from ..db import db, utcnow
from ..errors import BillingError, Conflict, InvalidInput, PaymentDeclined, Unavailable
from ..ledger.models import Payment, PaymentMethod, Purchase
from .interface import (
    CancelOrder,
    CancelResult,
    CardDeclined,
    CardDetails,
    CardRef,
    GatewayError,
    InvalidToken,
    PaymentGateway,
    PayPalManaged,
    ProcessorOutage,
    PurchaseRef,
    RefundOrder,
    RefundResult,
    ResumeOrder,
    ResumeResult,
)
from .records import ProcessorCall

log = logging.getLogger(__name__)
T = TypeVar("T")

PAYPAL_MESSAGE = (
    "This purchase is paid with PayPal, so its payment method is managed in PayPal: "
    "log in to your PayPal account and go to 'Manage automatic payments'."
)


def gateway() -> PaymentGateway:
    """The payment gateway configured for the current app (``SELF_BILLING_GATEWAY``)."""
    return current_app.extensions["self_billing"].gateway


def gateway_name() -> str:
    """The configured gateway's name, e.g. ``"sandbox"``."""
    return str(getattr(gateway(), "name", "custom"))


def purchase_ref(purchase: Purchase) -> PurchaseRef:
    return PurchaseRef(order_id=purchase.order_id, kind=purchase.kind, payment_type=purchase.payment_type,
                       currency=purchase.currency)


def card_ref(method: PaymentMethod) -> CardRef:
    return CardRef(processor_token=method.processor_token, brand=method.brand or "", last4=method.last4 or "")


# -- the calls ----------------------------------------------------------------------------------


def refund_order(purchase: Purchase, payment: Payment, amount_cents: int, idempotency_key: str) -> RefundOrder:
    """What the processor needs to refund ``amount_cents`` of ``payment`` (build it before committing)."""
    return RefundOrder(purchase=purchase_ref(purchase), payment_id=payment.payment_id,
                       paid_cents=payment.amount_cents, currency=payment.currency,
                       amount_cents=amount_cents, idempotency_key=idempotency_key)


def cancel_order(purchase: Purchase, at_period_end: bool, idempotency_key: str) -> CancelOrder:
    """What the processor needs to stop a subscription's charges (build it before committing)."""
    return CancelOrder(purchase=purchase_ref(purchase), at_period_end=at_period_end,
                       idempotency_key=idempotency_key)


def resume_order(purchase: Purchase, idempotency_key: str) -> ResumeOrder:
    """What the processor needs to undo a scheduled cancellation (build it before committing)."""
    return ResumeOrder(purchase=purchase_ref(purchase), idempotency_key=idempotency_key)


def refund(order: RefundOrder, *, purchase_id: int, payment_id: int, request_id: int | None = None) -> RefundResult:
    """Return ``order.amount_cents`` of the payment; the same key again answers with the first result."""
    return _call("refund", lambda: gateway().refund(order), purchase_id=purchase_id, payment_id=payment_id,
                 request_id=request_id, idempotency_key=order.idempotency_key, amount_cents=order.amount_cents,
                 currency=order.currency, reference=lambda result: result.reference)


def cancel_subscription(order: CancelOrder, *, purchase_id: int, request_id: int | None = None) -> CancelResult:
    """Stop the subscription's charges now or at the period end; the same key again is one cancellation."""
    return _call("cancel_subscription", lambda: gateway().cancel_subscription(order), purchase_id=purchase_id,
                 request_id=request_id, idempotency_key=order.idempotency_key,
                 reference=lambda result: result.reference)


def resume_subscription(order: ResumeOrder, *, purchase_id: int, request_id: int | None = None) -> ResumeResult:
    """Undo the subscription's scheduled cancellation; the same key again is one change."""
    return _call("resume_subscription", lambda: _resume(order), purchase_id=purchase_id, request_id=request_id,
                 idempotency_key=order.idempotency_key, reference=lambda result: result.reference)


def _resume(order: ResumeOrder) -> ResumeResult:
    resume = getattr(gateway(), "resume_subscription", None)
    if resume is None:  # a host's own adapter written before this operation existed
        raise GatewayError(f"The {gateway_name()} payment gateway cannot undo a scheduled cancellation "
                           "(its adapter has no resume_subscription).")
    return resume(order)


def attach_card(purchase: PurchaseRef, token: str, *, purchase_id: int) -> CardDetails:
    """Attach the card behind a processor token to the purchase's customer."""
    return _call("attach_card", lambda: gateway().attach_payment_method(purchase, token), purchase_id=purchase_id,
                 reference=lambda details: f"{details.brand} {details.last4}")


def detach_card(purchase: PurchaseRef, card: CardRef, *, purchase_id: int) -> None:
    """Remove a saved card at the processor."""
    _call("detach_card", lambda: gateway().detach_payment_method(purchase, card), purchase_id=purchase_id,
          reference=lambda _: f"{card.brand} {card.last4}")


def set_default_card(purchase: PurchaseRef, card: CardRef, *, purchase_id: int) -> None:
    """Make a saved card the one future payments are charged to, at the processor."""
    _call("set_default_card", lambda: gateway().set_default_payment_method(purchase, card),
          purchase_id=purchase_id, reference=lambda _: f"{card.brand} {card.last4}")


def _call(operation: str, call: Callable[[], T], *, purchase_id: int, reference: Callable[[T], str],
          **facts: Any) -> T:
    started = time.monotonic()
    try:
        result = call()
    except GatewayError as err:
        _record(operation, started, purchase_id, ok=False, error_code=err.code, error_message=err.message, **facts)
        raise
    except Exception as exc:
        log.exception("The %s gateway's %s raised %s instead of a GatewayError", gateway_name(), operation,
                      exc.__class__.__name__)
        outage = ProcessorOutage(f"The payment processor call failed unexpectedly ({exc.__class__.__name__}).")
        _record(operation, started, purchase_id, ok=False, error_code=outage.code, error_message=outage.message,
                **facts)
        raise outage from exc
    _record(operation, started, purchase_id, ok=True, reference=reference(result), **facts)
    return result


def _record(operation: str, started: float, purchase_id: int, **values: Any) -> None:
    """Write the attempt on its own connection; a database hiccup here is logged, never raised."""
    values["error_message"] = (values.get("error_message") or "")[:500]
    values["reference"] = (values.get("reference") or "")[:128]
    try:
        with db.engine.begin() as connection:
            connection.execute(insert(ProcessorCall).values(
                at=utcnow(), gateway=gateway_name(), operation=operation, purchase_id=purchase_id,
                duration_ms=int((time.monotonic() - started) * 1000), **values))
    except SQLAlchemyError as exc:
        log.warning("Could not record the processor's %s for purchase #%s: %s", operation, purchase_id, exc)


# -- what a person reads -------------------------------------------------------------------------


def user_error(err: GatewayError, *, nothing_done: str = "Nothing was changed", for_customer: bool = True
               ) -> BillingError:
    """The error a person reads for a processor's ``err``: its code, a status, and what to do.

    ``for_customer``: the processor's own words stay out (agents see them: they help an agent).
    """
    if isinstance(err, CardDeclined):
        return PaymentDeclined(f"Your card was declined by the payment processor. {nothing_done}; "
                               "try another card.", code="card_declined")
    if isinstance(err, InvalidToken):
        return InvalidInput("The payment processor does not know this card token. Enter the card details again.",
                            code="invalid_token", fields={"token": "unknown to the payment processor"})
    if isinstance(err, PayPalManaged):
        return Conflict(PAYPAL_MESSAGE, code="paypal_managed", manage_url=PayPalManaged.manage_url)
    if isinstance(err, ProcessorOutage):
        said = "" if for_customer else f" ({err.message})"
        return Unavailable(f"The payment processor is not answering right now{said}. {nothing_done}; "
                           "try again in a few minutes.", code="processor_unavailable")
    said = "could not do this" if for_customer else f"refused this: {err.message.rstrip('.')}"
    return Conflict(f"The payment processor {said}. {nothing_done}.", code=err.code)

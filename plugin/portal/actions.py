"""What a logged-in customer may do, as plain functions the portal's views call.

Every function takes the logged-in lead's id and an order or payment ID and
first finds it among THAT lead's purchases: another lead's order or payment is
reported exactly like one that does not exist (:class:`NotFound`, 404).
What is allowed follows the contract's ``actions`` of the purchase (computed by
:mod:`plugin.presenters` from the merchant's settings and the request
machines), so the server refuses exactly what the page does not offer.

Card changes go through the payment processor (``get_gateway()``): the
processor is called first, outside any lock (on SQLite the sandbox writes its
own records on another connection, see :mod:`plugin.locking`), then the
purchase's row lock is taken, the rules are checked again on fresh rows, and
the change and its customer email are committed together.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from ..api.common import MAX_ROW_ID
from ..db import db
from ..errors import Conflict, InvalidInput, NotAllowed, NotFound, PaymentDeclined, Unavailable
from ..ledger.models import Payment, PaymentMethod, Purchase
from ..ledger.schemas import Address
from ..ledger.service import get_settings
from ..locking import lock_purchase
from ..payments import get_gateway
from ..payments.interface import CardDeclined, GatewayError, InvalidToken, PayPalManaged, ProcessorOutage

ORDER_NOT_FOUND = "We could not find that order among your purchases. Check the Order ID and try again."
PAYMENT_NOT_FOUND = "We could not find that payment among your purchases. Check the link and try again."
CARD_NOT_FOUND = "We could not find that card on this purchase. Reload the page to see your saved cards."
PAYPAL_MESSAGE = (
    "This purchase is paid with PayPal, so its payment method is managed in PayPal: "
    "log in to your PayPal account and go to 'Manage automatic payments'."
)
LAST_CARD_MESSAGE = (
    "This is the only card on file for an active subscription, and at least one card must stay on file. "
    "Add another card first, then remove this one."
)
DEFAULT_CARD_MESSAGE = (
    "This card is the default card that future payments are charged to. "
    "Set another card as the default first, then remove this one."
)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
#: Twelve or more digits in a row (dashes between them allowed): a card number, never a processor token.
_CARD_NUMBER_RE = re.compile(r"\d(?:-?\d){11,}")


# -- finding what is yours ------------------------------------------------------------------


def own_purchase(lead_id: int, order_id: str) -> Purchase:
    """The lead's purchase ``order_id``; NotFound when it does not exist or is another lead's."""
    if not isinstance(order_id, str) or len(order_id) > 64:
        raise NotFound(ORDER_NOT_FOUND, code="order_not_found")
    purchase = db.session.execute(
        select(Purchase).where(Purchase.order_id == order_id, Purchase.lead_id == lead_id)
    ).scalar_one_or_none()
    if purchase is None:
        raise NotFound(ORDER_NOT_FOUND, code="order_not_found")
    return purchase


def own_payment(lead_id: int, payment_id: str) -> Payment:
    """The lead's payment ``payment_id``; NotFound when it does not exist or is another lead's."""
    if not isinstance(payment_id, str) or len(payment_id) > 64:
        raise NotFound(PAYMENT_NOT_FOUND, code="payment_not_found")
    payment = db.session.execute(
        select(Payment)
        .join(Purchase, Purchase.id == Payment.purchase_id)
        .where(Payment.payment_id == payment_id, Purchase.lead_id == lead_id)
    ).scalar_one_or_none()
    if payment is None:
        raise NotFound(PAYMENT_NOT_FOUND, code="payment_not_found")
    return payment


def purchase_actions(purchase: Purchase) -> dict[str, bool]:
    """The contract's ``actions`` of a purchase: what its page offers."""
    from ..presenters import purchase_to_dict

    return purchase_to_dict(purchase)["actions"]


def present(purchase: Purchase) -> dict[str, Any]:
    """The purchase as the customer's portal shows it."""
    from ..presenters import purchase_to_dict

    return purchase_to_dict(purchase, for_customer=True)


# -- cancellation and refund ----------------------------------------------------------------


def _reason(reason: Any) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise InvalidInput("The reason must be text.", fields={"reason": "must be a string"})
    reason = reason.strip()
    if len(reason) > 2000:
        raise InvalidInput("Keep the reason under 2,000 characters.", fields={"reason": "at most 2000 characters"})
    return reason


def refuse_cancel(purchase: Purchase) -> None:
    """Raise why "Cancel subscription" is not offered: 403 when the merchant turned it off, else 409."""
    if get_settings().cancellation_mode == "disabled":
        raise NotAllowed(
            "Self-service cancellation is turned off for this store. Contact support to cancel.",
            code="cancellation_disabled",
        )
    if _open_request_of(purchase, "cancellation") is not None:
        raise Conflict(
            "A cancellation request for this subscription is already open. We will email you when it is handled.",
            code="request_open",
        )
    raise Conflict(
        "This purchase cannot be cancelled here: it is not an active subscription, "
        "or it is already cancelled or scheduled to end. Contact support for help.",
        code="cancel_not_available",
    )


def refuse_refund(purchase: Purchase, payment: Payment) -> None:
    """Raise why "Request refund" is not offered: 403 when the merchant turned it off, else 409."""
    if get_settings().refund_mode == "disabled":
        raise NotAllowed(
            "Self-service refunds are turned off for this store. Contact support to ask for a refund.",
            code="refunds_disabled",
        )
    if _open_request_of(purchase, "refund", payment) is not None:
        raise Conflict(
            "A refund request for this payment is already open. We will email you when it is handled.",
            code="request_open",
        )
    raise Conflict(
        "This payment cannot be refunded here: its refund window has passed or it is already refunded. "
        "Contact support for help.",
        code="refund_not_available",
    )


def cancel_allowed(purchase: Purchase) -> bool:
    """True when the page offers "Cancel subscription" (the contract's purchase actions)."""
    return bool(purchase_actions(purchase)["cancel"])


def refund_allowed(purchase: Purchase, payment: Payment) -> bool:
    """True when the page offers "Request refund" for this payment (the contract's payment actions)."""
    from ..presenters import purchase_to_dict

    shown = purchase_to_dict(purchase)
    entry = next((p for p in shown["payments"] if p["payment_id"] == payment.payment_id), None)
    return bool(entry and entry["actions"]["refund"])


def cancel_purchase(lead_id: int, order_id: str, reason: Any = None) -> Any:
    """Ask to cancel the lead's subscription; returns the BillingRequest.

    Safe to repeat: while a request is open, a repeat answers with it.
    """
    from ..workflows.service import submit_cancellation

    purchase = own_purchase(lead_id, order_id)
    text = _reason(reason)
    if not cancel_allowed(purchase):
        open_request = _open_request_of(purchase, "cancellation")
        if open_request is not None:
            return open_request
        refuse_cancel(purchase)
    return submit_cancellation(purchase, actor="customer", reason=text)


def refund_payment(lead_id: int, payment_id: str, reason: Any = None) -> Any:
    """Ask for a refund of the full remaining amount of the lead's payment; returns the BillingRequest.

    Safe to repeat: while a request is open, a repeat answers with it.
    """
    from ..workflows.service import submit_refund

    payment = own_payment(lead_id, payment_id)
    text = _reason(reason)
    purchase = db.session.get(Purchase, payment.purchase_id)
    if not refund_allowed(purchase, payment):
        open_request = _open_request_of(purchase, "refund", payment)
        if open_request is not None:
            return open_request
        refuse_refund(purchase, payment)
    return submit_refund(payment, actor="customer", reason=text)


def _open_request_of(purchase: Purchase, request_type: str, payment: Payment | None = None) -> Any:
    """The open request of this kind (a retried submit answers with it, as the contract asks)."""
    from ..workflows.models import BillingRequest

    slot = f"refund:{payment.id}" if request_type == "refund" and payment else f"cancellation:{purchase.id}"
    return db.session.execute(
        select(BillingRequest).where(BillingRequest.open_slot == slot)
    ).scalar_one_or_none()


# -- billing address -------------------------------------------------------------------------


def update_billing_address(lead_id: int, order_id: str, address: Address) -> Purchase:
    """Set the bill-to address of future invoices; past invoices keep the address they were made with."""
    from ..notifications import enqueue

    purchase = own_purchase(lead_id, order_id)
    if not purchase_actions(purchase)["update_address"]:
        raise Conflict(
            "The billing address can be changed only for an active subscription, which has future invoices. "
            "Contact support if an invoice you already have needs a correction.",
            code="address_change_not_available",
        )
    purchase = lock_purchase(purchase.id)
    purchase.billing_address = address.model_dump()
    enqueue("address_changed", purchase)
    db.session.commit()
    return purchase


# -- cards ---------------------------------------------------------------------------------


def card_to_dict(method: PaymentMethod) -> dict[str, Any]:
    """A saved card as the contract shows it: brand and last four digits, never more."""
    return {
        "id": method.id,
        "type": method.type,
        "brand": method.brand,
        "last4": method.last4,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
        "default": bool(method.is_default),
    }


def _refuse_paypal(purchase: Purchase) -> None:
    if purchase.payment_type == "paypal":
        raise Conflict(PAYPAL_MESSAGE, code="paypal_managed", manage_url=PayPalManaged.manage_url)


def _require_card_changes(purchase: Purchase) -> None:
    _refuse_paypal(purchase)
    if not purchase_actions(purchase)["update_card"]:
        raise Conflict(
            "Cards can be changed only for an active subscription: this purchase has no future payments.",
            code="card_change_not_available",
        )


def _cards(purchase_id: int) -> list[PaymentMethod]:
    return list(
        db.session.execute(
            select(PaymentMethod)
            .where(PaymentMethod.purchase_id == purchase_id)
            .order_by(PaymentMethod.id)
            .execution_options(populate_existing=True)
        ).scalars()
    )


def list_cards(lead_id: int, order_id: str) -> tuple[Purchase, list[PaymentMethod]]:
    """The purchase and its saved cards (PayPal purchases: 409 paypal_managed)."""
    purchase = own_purchase(lead_id, order_id)
    _refuse_paypal(purchase)
    return purchase, _cards(purchase.id)


def _own_card(purchase_id: int, method_id: Any) -> PaymentMethod:
    if isinstance(method_id, bool) or not isinstance(method_id, int) or not 0 < method_id <= MAX_ROW_ID:
        raise NotFound(CARD_NOT_FOUND, code="payment_method_not_found")
    method = db.session.get(PaymentMethod, method_id, populate_existing=True)
    if method is None or method.purchase_id != purchase_id:
        raise NotFound(CARD_NOT_FOUND, code="payment_method_not_found")
    return method


def _gateway_error(err: GatewayError) -> Exception:
    if isinstance(err, CardDeclined):
        return PaymentDeclined(
            "Your card was declined by the payment processor. Nothing was changed; try another card.",
            code="card_declined",
        )
    if isinstance(err, InvalidToken):
        return InvalidInput(
            "The payment processor does not know this card token. Enter the card details again.",
            code="invalid_token",
            fields={"token": "unknown to the payment processor"},
        )
    if isinstance(err, PayPalManaged):
        return Conflict(PAYPAL_MESSAGE, code="paypal_managed", manage_url=PayPalManaged.manage_url)
    if isinstance(err, ProcessorOutage):
        return Unavailable(
            "The payment processor is not answering right now. Nothing was changed; try again in a few minutes.",
            code="processor_unavailable",
        )
    return Unavailable(
        "The payment processor could not make this change. Nothing was changed; try again later.",
        code="processor_error",
    )


def _card_changed(purchase: Purchase, change: str, method: PaymentMethod) -> None:
    from ..notifications import enqueue

    enqueue(
        "payment_method_changed",
        purchase,
        extra={"change": change, "brand": method.brand, "last4": method.last4},
    )


def add_card(lead_id: int, order_id: str, token: Any) -> tuple[PaymentMethod, bool]:
    """Attach the card behind a processor token; returns it and whether it is new.

    The first card of a purchase becomes its default; later ones wait for the
    customer's checkmark. The same token twice is the same card.
    """
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        raise InvalidInput(
            "Send the card token the payment processor gave you (letters, digits, - and _).",
            code="invalid_token",
            fields={"token": "missing or not a processor token"},
        )
    if _CARD_NUMBER_RE.search(token):
        # Refused before any lookup, so the number reaches no query (nor a SQL log) and no processor.
        raise InvalidInput(
            "This looks like a card number. Card details go to the payment processor only: "
            "enter the card in the card form, which sends us just the processor's token.",
            code="invalid_token",
            fields={"token": "a card number, not a processor token"},
        )
    purchase = own_purchase(lead_id, order_id)
    _require_card_changes(purchase)
    existing = db.session.execute(
        select(PaymentMethod).where(PaymentMethod.processor_token == token)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.purchase_id != purchase.id:
            raise InvalidInput(
                "This card token was already used. Enter the card details again to get a new one.",
                code="invalid_token",
                fields={"token": "already used"},
            )
        return existing, False
    db.session.commit()  # hold no transaction while the processor works
    try:
        details = get_gateway().attach_payment_method(purchase, token)
    except GatewayError as err:
        raise _gateway_error(err) from None
    purchase = lock_purchase(purchase.id)
    _require_card_changes(purchase)
    cards = _cards(purchase.id)
    same = next((c for c in cards if c.processor_token == details.processor_token), None)
    if same is not None:
        db.session.commit()
        return same, False
    method = PaymentMethod(
        purchase_id=purchase.id,
        type="card",
        processor_token=details.processor_token,
        brand=details.brand,
        last4=details.last4,
        exp_month=details.exp_month,
        exp_year=details.exp_year,
        is_default=not any(c.is_default for c in cards),
    )
    db.session.add(method)
    db.session.flush()
    _card_changed(purchase, "added", method)
    db.session.commit()
    return method, True


def set_default_card(lead_id: int, order_id: str, method_id: Any) -> PaymentMethod:
    """Make a saved card the one future payments of the subscription are charged to."""
    purchase = own_purchase(lead_id, order_id)
    _require_card_changes(purchase)
    method = _own_card(purchase.id, method_id)
    if method.is_default:
        return method
    db.session.commit()
    try:
        get_gateway().set_default_payment_method(purchase, method)
    except GatewayError as err:
        raise _gateway_error(err) from None
    purchase = lock_purchase(purchase.id)
    _require_card_changes(purchase)
    method = _own_card(purchase.id, method_id)
    for card in _cards(purchase.id):
        card.is_default = card.id == method.id
    _card_changed(purchase, "default", method)
    db.session.commit()
    return method


def _check_removable(purchase: Purchase, method: PaymentMethod, cards: list[PaymentMethod]) -> None:
    others = [c for c in cards if c.id != method.id]
    if not others and purchase.kind == "subscription" and purchase.status == "active":
        raise Conflict(LAST_CARD_MESSAGE, code="last_card")
    if method.is_default and others:
        raise Conflict(DEFAULT_CARD_MESSAGE, code="default_card")


def remove_card(lead_id: int, order_id: str, method_id: Any) -> PaymentMethod:
    """Remove a saved card; refused for the only card of an active subscription and for the default card."""
    purchase = own_purchase(lead_id, order_id)
    _require_card_changes(purchase)
    method = _own_card(purchase.id, method_id)
    _check_removable(purchase, method, _cards(purchase.id))
    db.session.commit()
    try:
        get_gateway().detach_payment_method(purchase, method)
    except GatewayError as err:
        raise _gateway_error(err) from None
    purchase = lock_purchase(purchase.id)
    method = _own_card(purchase.id, method_id)
    _check_removable(purchase, method, _cards(purchase.id))
    _card_changed(purchase, "removed", method)
    db.session.delete(method)
    db.session.commit()
    return method

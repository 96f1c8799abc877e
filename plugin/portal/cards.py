"""A customer's saved cards: list, add (by processor token), choose the default, remove.

Card changes go through the payment processor's one door
(:mod:`plugin.payments.processor`): the processor is called first, holding no
transaction (on SQLite the sandbox writes its own records on another connection,
see :mod:`plugin.locking`), then the purchase's row lock is taken, the rules are
checked again on fresh rows, and the change and its customer email are committed
together. Whether cards may change at all is the policy's answer
(:func:`plugin.workflows.policy.can_change_card`).
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import select

from ..db import db
from ..errors import Conflict, InvalidInput, NotFound
from ..ledger.models import PaymentMethod, Purchase
from ..ledger.settings import get_settings
from ..locking import lock_purchase
from ..notifications import enqueue
from ..payments import processor
from ..payments.interface import CardRef, GatewayError, PayPalManaged
from ..validation import is_row_id
from ..workflows import policy
from .display import brand
from .ownership import own_purchase

CARD_NOT_FOUND = "We could not find that card on this purchase. Reload the page to see your saved cards."
LAST_CARD_MESSAGE = (
    "This is the only card on file for an active subscription, and at least one card must stay on file. "
    "Add another card first, then remove this one."
)
DEFAULT_CARD_MESSAGE = (
    "This card is the default card that future payments are charged to. "
    "Set another card as the default first, then remove this one."
)
DUPLICATE_CARD_MESSAGE = ("This card is already saved ({card}), so it was not added again. "
                          "To pay with it, set it as the default card.")
T = TypeVar("T")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
#: Twelve or more digits in a row (dashes between them allowed): a card number, never a processor token.
_CARD_NUMBER_RE = re.compile(r"\d(?:-?\d){11,}")


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
        raise Conflict(processor.PAYPAL_MESSAGE, code="paypal_managed", manage_url=PayPalManaged.manage_url)


def _require_card_changes(purchase: Purchase) -> None:
    _refuse_paypal(purchase)
    if not policy.can_change_card(purchase, get_settings()):
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
    if not is_row_id(method_id):
        raise NotFound(CARD_NOT_FOUND, code="payment_method_not_found")
    method = db.session.get(PaymentMethod, method_id, populate_existing=True)
    if method is None or method.purchase_id != purchase_id:
        raise NotFound(CARD_NOT_FOUND, code="payment_method_not_found")
    return method


def _card_changed(purchase: Purchase, change: str, method: PaymentMethod) -> None:
    enqueue("payment_method_changed", purchase, extra={"change": change, "brand": method.brand, "last4": method.last4})


def _at_processor(call: Callable[[], T]) -> T:
    """Commit, then ``call`` the processor holding no transaction (what it sends was read before the
    commit); a refusal or outage as the customer reads it (:func:`plugin.payments.processor.user_error`)."""
    db.session.commit()
    try:
        return call()
    except GatewayError as err:
        raise processor.user_error(err) from None


def _check_token(token: Any) -> str:
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
    return token


def card_label(card: PaymentMethod | Mapping[str, Any], *, noun: bool = False) -> str:
    """A card as people name it, the one spelling of the portal's pages, notices and errors: "Visa ending
    in 4242"; with ``noun``, "Visa card ending in 4242" (as in "Your Visa card ending in 4242 was added").

    ``card`` is a saved card or its dict (``brand``, ``last4``: a purchase's ``payment_method``); templates
    spell it ``card|sb_card`` (``card|sb_card(noun=True)``). A card of no known brand is "Card ending in
    4242" ("card ending in 4242" with ``noun``)."""
    def field(name: str) -> Any:
        return card.get(name) if isinstance(card, Mapping) else getattr(card, name, None)

    name, last4 = field("brand"), field("last4")
    if noun:
        return f"{brand(name)} card ending in {last4}" if name else f"card ending in {last4}"
    return f"{brand(name)} ending in {last4}"


def _same_card(cards: list[PaymentMethod], details: Any) -> PaymentMethod | None:
    """A saved card that is the one just given: the same token, or the same brand, last four and expiry."""
    for card in cards:
        if card.processor_token == details.processor_token or (
            (card.brand, card.last4, card.exp_month, card.exp_year)
            == (details.brand, details.last4, details.exp_month, details.exp_year)
        ):
            return card
    return None


def add_card(lead_id: int, order_id: str, token: Any, make_default: bool = False) -> tuple[PaymentMethod, bool]:
    """Attach the card behind a processor token; returns it and whether it is new.

    The first card of a purchase becomes its default; a later one too when ``make_default``
    (the portal's form offers it, ticked), else it waits for the customer's checkmark. The same
    token twice is the same card; the same card under a new token (typed again) is refused with
    :data:`DUPLICATE_CARD_MESSAGE`, and the processor lets go of the new copy.
    """
    token = _check_token(token)
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
    ref, purchase_id = processor.purchase_ref(purchase), purchase.id
    details = _at_processor(lambda: processor.attach_card(ref, token, purchase_id=purchase_id))
    purchase = lock_purchase(purchase_id)
    _require_card_changes(purchase)
    cards = _cards(purchase.id)
    same = _same_card(cards, details)
    if same is not None and same.processor_token == details.processor_token:
        db.session.commit()
        return same, False
    if same is not None:
        card = CardRef(details.processor_token, details.brand, details.last4)
        db.session.commit()
        with contextlib.suppress(GatewayError):  # best effort: the copy is never used either way
            processor.detach_card(ref, card, purchase_id=purchase_id)
        raise Conflict(DUPLICATE_CARD_MESSAGE.format(card=card_label(same)), code="card_already_saved")
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
    if make_default and not method.is_default:
        method = set_default_card(lead_id, order_id, method.id)
    return method, True


def set_default_card(lead_id: int, order_id: str, method_id: Any) -> PaymentMethod:
    """Make a saved card the one future payments of the subscription are charged to."""
    purchase = own_purchase(lead_id, order_id)
    _require_card_changes(purchase)
    method = _own_card(purchase.id, method_id)
    if method.is_default:
        return method
    ref, card, purchase_id = processor.purchase_ref(purchase), processor.card_ref(method), purchase.id
    _at_processor(lambda: processor.set_default_card(ref, card, purchase_id=purchase_id))
    purchase = lock_purchase(purchase_id)
    _require_card_changes(purchase)
    method = _own_card(purchase.id, method_id)
    for saved in _cards(purchase.id):
        saved.is_default = saved.id == method.id
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
    ref, card, purchase_id = processor.purchase_ref(purchase), processor.card_ref(method), purchase.id
    _at_processor(lambda: processor.detach_card(ref, card, purchase_id=purchase_id))
    purchase = lock_purchase(purchase_id)
    method = _own_card(purchase.id, method_id)
    _check_removable(purchase, method, _cards(purchase.id))
    _card_changed(purchase, "removed", method)
    db.session.delete(method)
    db.session.commit()
    return method

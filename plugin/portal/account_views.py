"""The portal's billing address and card pages."""
from __future__ import annotations

from flask import current_app, redirect, request
from flask.blueprints import BlueprintSetupState
from pydantic import ValidationError

from ..errors import Conflict, InvalidInput, NotFound, PaymentDeclined, Unavailable
from ..ledger.models import Lead
from ..ledger.schemas import Address
from ..ledger.service import get_settings
from ..payments import processor
from ..payments.interface import PayPalManaged
from ..urls import endpoint_url
from ..workflows import policy
from . import actions
from .auth import require_lead
from .cards import card_label
from .forms import CSRF_MESSAGE, ActionForm, AddressForm, CardTokenForm
from .notices import notify
from .pages import bp, csrf_failed, page_url, render


@bp.record_once
def _card_filter(state: BlueprintSetupState) -> None:
    """``card|sb_card``: the card pages spell a card as :func:`.cards.card_label` does (a host's own filter
    of that name is kept)."""
    state.app.jinja_env.filters.setdefault("sb_card", card_label)


# -- billing address ----------------------------------------------------------------------------


@bp.route("/purchases/<order_id>/address", methods=["GET", "POST"])
def address(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    locale = current_app.config.get("SELF_BILLING_LOCALE", "en_US")
    if request.method == "GET":
        form = AddressForm(data=dict(purchase.billing_address or {}), locale=locale)
        return render("address.html", lead=lead, form=form, purchase=purchase)
    form = AddressForm(locale=locale)
    error = None
    if form.validate_on_submit():
        fields = {name: (getattr(form, name).data or "").strip() for name in form.rule_fields}
        try:
            new_address = Address.model_validate(fields)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                field = getattr(form, str(err["loc"][0]), None)
                if field is not None:
                    field.errors = list(field.errors) + [err["msg"].removeprefix("Value error, ")]
            error = "Some fields need attention; nothing was changed."
        else:
            actions.update_billing_address(lead.id, order_id, new_address)
            notify(f"Your billing address for {purchase.product} is updated. It will appear in the "
                  "“Bill to” section of your future invoices; past invoices keep their address.")
            return redirect(page_url("index"))
    else:
        error = CSRF_MESSAGE if csrf_failed(form) else "Some fields need attention; nothing was changed."
    return render("address.html", 400, lead=lead, form=form, purchase=purchase, error=error)


# -- cards --------------------------------------------------------------------------------------


def _token_url() -> str:
    """Where the card form sends the card details: the processor's token endpoint, never our server."""
    configured = current_app.config.get("SELF_BILLING_CARD_TOKEN_URL")
    if configured:
        return configured
    return endpoint_url("self_billing_sandbox.tokens", "/sandbox/tokens")


def _card_form() -> dict[str, str | None]:
    """What the card form needs: the sandbox's token endpoint, or Stripe.js and the publishable key
    (Stripe Elements collects the card in the browser and gives the page a PaymentMethod id)."""
    config = current_app.config
    if processor.gateway_name() == "stripe":
        return {"token_url": None, "stripe_js_url": config.get("SELF_BILLING_STRIPE_JS_URL"),
                "stripe_publishable_key": config.get("SELF_BILLING_STRIPE_PUBLISHABLE_KEY") or ""}
    return {"token_url": _token_url(), "stripe_js_url": None, "stripe_publishable_key": None}


def _cards_page(lead: Lead, order_id: str, status: int = 200, error: str | None = None):
    purchase = actions.own_purchase(lead.id, order_id)
    if purchase.payment_type == "paypal":
        return render("cards.html", status, lead=lead, purchase=purchase, paypal=True,
                      manage_url=PayPalManaged.manage_url, cards=[])
    _purchase, cards = actions.list_cards(lead.id, order_id)
    can_change = policy.can_change_card(purchase, get_settings())
    return render("cards.html", status, lead=lead, purchase=purchase, paypal=False, cards=cards,
                  can_change=can_change, action_form=ActionForm(), error=error)


@bp.get("/purchases/<order_id>/cards")
def cards(order_id: str):
    lead = require_lead()
    return _cards_page(lead, order_id)


@bp.get("/purchases/<order_id>/cards/new")
def new_card(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    if purchase.payment_type == "paypal":
        return redirect(page_url("cards", order_id=order_id))
    if not policy.can_change_card(purchase, get_settings()):
        raise Conflict("Cards can be changed only for an active subscription.",
                               code="card_change_not_available")
    return render("card_new.html", lead=lead, purchase=purchase, form=CardTokenForm(), **_card_form())


@bp.post("/purchases/<order_id>/cards")
def add_card(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    form = CardTokenForm()
    if not form.validate_on_submit():
        error = CSRF_MESSAGE if csrf_failed(form) else (
            "The card details did not reach the payment processor, so no card was added. "
            "Adding a card needs JavaScript: turn it on and try again.")
        # A fresh form (formdata=None): what was posted as the token is never echoed back, even when
        # someone pasted a card number into it; the card form asks the processor for a new token anyway.
        return render("card_new.html", 400, lead=lead, purchase=purchase, form=CardTokenForm(formdata=None),
                      **_card_form(), error=error)
    try:
        method, created = actions.add_card(lead.id, order_id, form.token.data, make_default=form.make_default.data)
    except (Conflict, InvalidInput, PaymentDeclined, Unavailable) as err:
        if err.code == "paypal_managed":
            raise
        return render("card_new.html", err.status, lead=lead, purchase=purchase,
                      form=CardTokenForm(formdata=None), **_card_form(), error=err.message)
    notify(f"Your {card_label(method, noun=True)} was added."
          + (" Future payments will be charged to it." if method.is_default
             else " Set it as the default card to charge future payments to it."))
    return redirect(page_url("cards", order_id=order_id))


def _card_action(order_id: str, method_id: int, verb: str):
    lead = require_lead()
    form = ActionForm()
    if not form.validate_on_submit():
        return _cards_page(lead, order_id, 400, error=CSRF_MESSAGE)
    try:
        if verb == "default":
            method = actions.set_default_card(lead.id, order_id, method_id)
            notify(f"Future payments will be charged to your {card_label(method, noun=True)}.")
        else:
            method = actions.remove_card(lead.id, order_id, method_id)
            notify(f"Your {card_label(method, noun=True)} was removed.")
    except (Conflict, Unavailable) as err:
        if err.code == "paypal_managed":
            raise
        return _cards_page(lead, order_id, err.status, error=err.message)
    return redirect(page_url("cards", order_id=order_id))


@bp.post("/purchases/<order_id>/cards/<int:method_id>/default")
def default_card(order_id: str, method_id: int):
    return _card_action(order_id, method_id, "default")


@bp.route("/purchases/<order_id>/cards/<int:method_id>/remove", methods=["GET", "POST"])
def remove_card(order_id: str, method_id: int):
    """GET asks "Remove Visa ending in 4242?"; the form's POST removes it."""
    if request.method == "POST":
        return _card_action(order_id, method_id, "remove")
    lead = require_lead()
    _purchase, cards = actions.list_cards(lead.id, order_id)
    method = next((card for card in cards if card.id == method_id), None)
    if method is None:
        raise NotFound(actions.CARD_NOT_FOUND, code="payment_method_not_found")
    return render("card_remove.html", lead=lead, purchase=_purchase, card=method, label=card_label(method),
                  form=ActionForm())

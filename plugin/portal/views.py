"""HTML pages of the customer portal: the Order-ID login and My Orders with its actions.

One blueprint serves both doors of the spec:

- the standalone portal, mounted by ``init_app`` at ``{prefix}/portal/`` in
  its own small layout (``self_billing/portal/standalone.html``);
- the helpdesk's My Orders tab: the same blueprint registered a second time by
  :func:`register_my_orders_tab` (``SelfBilling.register_my_orders_tab``) at a
  path of the host's choosing, its pages extending the host's
  ``base_template`` (they fill its ``content`` block).

The merchant's ``portal`` setting decides which door is open (the other
answers 404 with a message); with self-service billing disabled every page
answers 403 saying so and shows nothing else.

Views only translate HTTP: rules are in :mod:`.actions`, :mod:`.login`,
:mod:`.access`; forms (with CSRF tokens) in :mod:`.forms`; formatting in
:mod:`.display`.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from jinja2 import TemplateNotFound
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from pydantic import ValidationError

from ..db import db
from ..errors import (
    BillingError,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotLoggedIn,
    PaymentDeclined,
    Unavailable,
)
from ..ledger.models import Lead, Purchase
from ..ledger.schemas import Address
from ..ledger.service import get_settings
from ..money import format_amount
from ..payments.interface import PayPalManaged
from ..templating import TEMPLATE_FOLDER
from ..urls import endpoint_url
from . import actions
from .access import check_door
from .auth import current_lead_id, login_lead, logout, require_lead
from .display import FILTERS, brand, date, money
from .forms import CSRF_MESSAGE, ActionForm, AddressForm, CardTokenForm, LoginForm, ReasonForm
from .limits import limit_link_view, limit_login_view, mark_login_failed, retry_after_seconds, too_many_message
from .login_links import LINK_UNUSABLE_MESSAGE, send_login_link, sent_message, use_login_link
from .login import WRONG_PAIR_MESSAGE, authenticate
from .notices import ERROR, notify, pop_notices
from .security import apply_session_cookie_defaults

bp = Blueprint("self_billing_portal", __name__, template_folder=TEMPLATE_FOLDER)

#: Registration option naming the door a registration of this blueprint serves.
MODE_OPTION = "self_billing_mode"
STANDALONE_LAYOUT = "self_billing/portal/standalone.html"


# -- registration ----------------------------------------------------------------------------


def register_my_orders_tab(app: Flask, url_prefix: str, name: str = "self_billing_my_orders") -> None:
    """Serve the portal as the host helpdesk's My Orders tab at ``url_prefix``, inside its layout.

    The pages extend the ``base_template`` given to ``init_app`` (they fill its
    ``{% block content %}`` and ``{% block title %}``). Call after ``init_app``.
    """
    state = app.extensions.get("self_billing")
    if state is None:
        raise RuntimeError("Call SelfBilling.init_app(app) before register_my_orders_tab(app, ...).")
    if not state.base_template:
        raise RuntimeError(
            "The My Orders tab renders inside the host's layout: pass base_template='your/layout.html' "
            "to SelfBilling.init_app."
        )
    try:
        app.jinja_env.get_template(state.base_template)
    except TemplateNotFound:
        raise RuntimeError(
            f"base_template={state.base_template!r} is not among your app's templates, so the My Orders tab "
            "could not render: give the name your own pages extend (e.g. 'layout.html')."
        ) from None
    prefix = url_prefix.rstrip("/")
    taken = [rule for rule in app.url_map.iter_rules() if rule.rule in (prefix or "/", prefix + "/")]
    if taken:
        raise RuntimeError(
            f"Your app already has a route at {taken[0].rule} ({taken[0].endpoint}), where the My Orders tab "
            "would go; yours would win and the tab would never show. Remove that route, or mount the tab "
            "elsewhere: register_my_orders_tab(app, '/another/path')."
        )
    app.register_blueprint(bp, url_prefix=prefix, name=name, **{MODE_OPTION: "helpdesk"})


def _door() -> str:
    doors = current_app.extensions["self_billing"].extras.get("portal_blueprints", {})
    return doors.get(request.blueprint, "standalone")


def _layout() -> str:
    if _door() == "helpdesk":
        return current_app.extensions["self_billing"].base_template or STANDALONE_LAYOUT
    return STANDALONE_LAYOUT


def _url(endpoint: str, **values: Any) -> str:
    return url_for(f"{request.blueprint}.{endpoint}", **values)


#: Each page's title: the pages fill the layout's ``title`` block with it, and a host layout that
#: prints ``{{ title }}`` instead gets it as a variable.
PAGE_TITLES = {
    "address.html": "Update billing address",
    "card_new.html": "Add card",
    "cards.html": "Update credit card",
    "login.html": "My Orders – log in",
    "login_link.html": "My Orders – log in with your link",
    "login_link_request.html": "My Orders – email me a login link",
    "orders.html": "My Orders",
}


def render(template: str, status: int = 200, **context: Any):
    """Render a portal page in the layout of the door it came through."""
    context.setdefault("lead", None)
    if template == "confirm.html":
        context.setdefault("title", "Cancel subscription" if context.get("kind") == "cancel" else "Request refund")
    context.setdefault("title", PAGE_TITLES.get(template, "My Orders"))
    body = render_template(
        f"self_billing/portal/{template}",
        sb_layout=_layout(),
        sb_door=_door(),
        sb_url=_url,
        sb_messages=pop_notices(),
        sb_logout_form=ActionForm(prefix="logout") if context.get("lead") else None,
        **context,
    )
    return body, status


# -- guards and errors --------------------------------------------------------------------------


@bp.before_request
def _guard() -> None:
    check_door(_door())  # type: ignore[arg-type]


@bp.errorhandler(BillingError)
def _billing_error(err: BillingError):
    if isinstance(err, NotAllowed) and err.code == "portal_disabled":
        return render("message.html", 403, title="Self-service billing is not enabled", message=err.message,
                      show_home=False)
    if isinstance(err, NotLoggedIn):
        return redirect(_url("index"))
    return render("message.html", err.status, title=_error_title(err), message=err.message,
                  show_home=err.code != "portal_not_offered")


def _error_title(err: BillingError) -> str:
    if err.code == "portal_not_offered":
        return "Not offered here"
    return {404: "Not found", 409: "Not possible right now", 402: "Card declined", 503: "Please try again later",
            403: "Not allowed"}.get(err.status, "Something was not right")


@bp.errorhandler(CSRFError)
def _host_csrf_error(_err: CSRFError):
    """The host's own CSRFProtect refused a portal form (a stale token): our message, in our layout."""
    return render("message.html", 400, title="Please try again", message=CSRF_MESSAGE, show_home=True)


@bp.errorhandler(RateLimitExceeded)
def _too_many(_err: RateLimitExceeded):
    seconds = retry_after_seconds()
    if request.endpoint == f"{request.blueprint}.login_link":
        minutes = max(1, -(-seconds // 60))
        body, status = render("message.html", 429, title="Please wait a little", show_home=True,
                              message=f"Several login links were asked for already. Use the newest one in your "
                                      f"email, or ask again in {minutes} minute{'s' if minutes != 1 else ''}.")
    else:
        body, status = render("login.html", 429, form=LoginForm(), error=too_many_message(seconds), link_open=True)
    return body, status, {"Retry-After": str(seconds)}


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (never another host) is followed after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _csrf_failed(form: Any) -> bool:
    return "csrf_token" in form.errors


# -- login, My Orders, logout ------------------------------------------------------------------


@bp.get("/")
def index():
    lead_id = current_lead_id()
    lead = db.session.get(Lead, lead_id) if lead_id is not None else None
    if lead is None:
        return render("login.html", form=LoginForm(), next=_safe_next(request.args.get("next")))
    from ..presenters import purchases_for_lead

    return render("orders.html", lead=lead, purchases=purchases_for_lead(lead.id),
                  paypal_manage_url=PayPalManaged.manage_url)


@bp.post("/login")
def login():
    form = LoginForm()
    next_url = _safe_next(request.form.get("next"))
    if not form.validate_on_submit():
        error = CSRF_MESSAGE if _csrf_failed(form) else None
        return render("login.html", 400, form=form, error=error, next=next_url)
    try:
        lead = authenticate(form.order_id.data.strip(), form.email.data)
    except NotLoggedIn:
        mark_login_failed()
        return render("login.html", 401, form=form, error=WRONG_PAIR_MESSAGE, next=next_url)
    login_lead(lead)
    return redirect(next_url or _url("index"))


@bp.route("/login/link", methods=["GET", "POST"])
def login_link():
    """Ask for a one-time login link by email; the same answer whether or not the pair matches."""
    form = LoginForm()
    if request.method == "GET":
        return render("login_link_request.html", form=form)
    if not form.validate_on_submit():
        error = CSRF_MESSAGE if _csrf_failed(form) else None
        return render("login_link_request.html", 400, form=form, error=error)
    send_login_link(form.order_id.data, form.email.data,
                    lambda token: _url("use_link", token=token, _external=True))
    return render("message.html", title="Check your email", message=sent_message(), show_home=True, kind="success")


@bp.route("/login/link/<token>", methods=["GET", "POST"])
def use_link(token: str):
    """The emailed link: a button that logs in (only the POST uses the link, never a prefetch)."""
    form = ActionForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render("login_link.html", 400, form=form, token=token, error=CSRF_MESSAGE)
        lead = use_login_link(token)
        if lead is None:
            return render("message.html", 410, title="This link cannot be used", message=LINK_UNUSABLE_MESSAGE,
                          show_home=True)
        login_lead(lead)
        notify("You are logged in.")
        return redirect(_url("index"))
    return render("login_link.html", form=form, token=token)


@bp.post("/logout")
def logout_view():
    form = ActionForm(prefix="logout")
    if form.validate_on_submit():
        logout()
        notify("You are logged out.")
    else:
        notify(CSRF_MESSAGE, ERROR)
    return redirect(_url("index"))


# -- cancellation and refund --------------------------------------------------------------------


def _cancel_preview(purchase: Purchase) -> str:
    """What confirming will do, told before the customer confirms."""
    settings = get_settings()
    if settings.cancellation_mode == "automatic":
        if purchase.price_point.cancellation == "delayed" and purchase.next_payment_at is not None:
            return (f"Your subscription will stay active until {date(purchase.next_payment_at)} and then end. "
                    "You will not be charged again.")
        return "Your subscription will end right away. You will not be charged again."
    return ("Your request will be sent to our billing team, who will handle it and email you. "
            "Until then, your subscription stays as it is.")


def _cancel_outcome(purchase: Purchase, billing_request: Any) -> str:
    product = purchase.product
    if billing_request.outcome == "cancelled":
        return f"Your subscription to {product} is cancelled. You will not be charged again."
    if billing_request.outcome == "cancel_scheduled":
        return (f"Your subscription to {product} will end on {date(purchase.cancels_at)}. "
                "You will not be charged again.")
    if billing_request.outcome == "declined":
        return f"Your cancellation request for {product} was declined. Check your email for the reason."
    if billing_request.state == "ticketed":
        return (f"Your cancellation request for {product} was sent to our billing team as ticket "
                f"{billing_request.ticket_id}. We will email you when it is handled.")
    return f"Your cancellation request for {product} is being processed. Reload this page in a minute to see it."


def _refund_outcome(payment: Any, billing_request: Any) -> str:
    amount_cents = billing_request.amount_cents if billing_request.amount_cents is not None else payment.remaining_cents
    amount = money(format_amount(amount_cents), payment.currency)
    if billing_request.outcome in ("refunded", "partially_refunded"):
        return (f"Your payment was refunded: {amount} is on its way back to you. "
                "It can take a few days to show on your statement.")
    if billing_request.outcome == "declined":
        return "Your refund request was declined. Check your email for the reason."
    if billing_request.state == "ticketed":
        return (f"Your refund request was sent to our billing team as ticket {billing_request.ticket_id}. "
                "We will email you when it is handled.")
    return "Your refund request is being processed. Reload this page in a minute to see it."


@bp.route("/purchases/<order_id>/cancel", methods=["GET", "POST"])
def cancel(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    form = ReasonForm()
    if request.method == "POST":
        if form.validate_on_submit():
            billing_request = actions.cancel_purchase(lead.id, order_id, form.reason.data or "")
            purchase = actions.own_purchase(lead.id, order_id)
            notify(_cancel_outcome(purchase, billing_request))
            return redirect(_url("index"))
        status = 400
    else:
        status = 200
        if not actions.cancel_allowed(purchase):
            actions.refuse_cancel(purchase)
    return render(
        "confirm.html", status, lead=lead, form=form, kind="cancel", purchase=purchase,
        preview=_cancel_preview(purchase),
        error=CSRF_MESSAGE if _csrf_failed(form) else None,
    )


@bp.route("/payments/<payment_id>/refund", methods=["GET", "POST"])
def refund(payment_id: str):
    lead = require_lead()
    payment = actions.own_payment(lead.id, payment_id)
    purchase = db.session.get(Purchase, payment.purchase_id)
    form = ReasonForm()
    if request.method == "POST":
        if form.validate_on_submit():
            billing_request = actions.refund_payment(lead.id, payment_id, form.reason.data or "")
            payment = actions.own_payment(lead.id, payment_id)
            notify(_refund_outcome(payment, billing_request))
            return redirect(_url("index"))
        status = 400
    else:
        status = 200
        if not actions.refund_allowed(purchase, payment):
            actions.refuse_refund(purchase, payment)
    settings = get_settings()
    preview = ("The full remaining amount of this payment will be refunded to you right away."
               if settings.refund_mode == "automatic" else
               "Your request will be sent to our billing team, who will handle it and email you.")
    return render(
        "confirm.html", status, lead=lead, form=form, kind="refund", purchase=purchase, payment=payment,
        preview=preview, error=CSRF_MESSAGE if _csrf_failed(form) else None,
    )


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
        fields = {name: (getattr(form, name).data or "").strip()
                  for name in ("name", "line1", "line2", "city", "region", "postal_code", "country")}
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
            return redirect(_url("index"))
    else:
        error = CSRF_MESSAGE if _csrf_failed(form) else "Some fields need attention; nothing was changed."
    return render("address.html", 400, lead=lead, form=form, purchase=purchase, error=error)


# -- cards --------------------------------------------------------------------------------------


def _token_url() -> str:
    """Where the card form sends the card details: the processor's token endpoint, never our server."""
    configured = current_app.config.get("SELF_BILLING_CARD_TOKEN_URL")
    if configured:
        return configured
    return endpoint_url("self_billing_sandbox.tokens", "/sandbox/tokens")


def _cards_page(lead: Lead, order_id: str, status: int = 200, error: str | None = None):
    purchase = actions.own_purchase(lead.id, order_id)
    if purchase.payment_type == "paypal":
        return render("cards.html", status, lead=lead, purchase=purchase, paypal=True,
                      manage_url=PayPalManaged.manage_url, cards=[])
    _purchase, cards = actions.list_cards(lead.id, order_id)
    can_change = actions.purchase_actions(purchase)["update_card"]
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
        return redirect(_url("cards", order_id=order_id))
    if not actions.purchase_actions(purchase)["update_card"]:
        raise Conflict("Cards can be changed only for an active subscription.",
                               code="card_change_not_available")
    return render("card_new.html", lead=lead, purchase=purchase, form=CardTokenForm(), token_url=_token_url())


@bp.post("/purchases/<order_id>/cards")
def add_card(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    form = CardTokenForm()
    if not form.validate_on_submit():
        error = CSRF_MESSAGE if _csrf_failed(form) else (
            "The card details did not reach the payment processor, so no card was added. "
            "Adding a card needs JavaScript: turn it on and try again.")
        # A fresh form (formdata=None): what was posted as the token is never echoed back, even when
        # someone pasted a card number into it; the card form asks the processor for a new token anyway.
        return render("card_new.html", 400, lead=lead, purchase=purchase, form=CardTokenForm(formdata=None),
                      token_url=_token_url(), error=error)
    try:
        method, created = actions.add_card(lead.id, order_id, form.token.data)
    except (InvalidInput, PaymentDeclined, Unavailable) as err:
        return render("card_new.html", err.status, lead=lead, purchase=purchase,
                      form=CardTokenForm(formdata=None), token_url=_token_url(), error=err.message)
    notify(f"Your {brand(method.brand)} card ending in {method.last4} was added."
          + ("" if method.is_default else " Set it as the default card to charge future payments to it."))
    return redirect(_url("cards", order_id=order_id))


def _card_action(order_id: str, method_id: int, verb: str):
    lead = require_lead()
    form = ActionForm()
    if not form.validate_on_submit():
        return _cards_page(lead, order_id, 400, error=CSRF_MESSAGE)
    try:
        if verb == "default":
            method = actions.set_default_card(lead.id, order_id, method_id)
            notify(f"Future payments will be charged to your {brand(method.brand)} card ending in {method.last4}.")
        else:
            method = actions.remove_card(lead.id, order_id, method_id)
            notify(f"Your {brand(method.brand)} card ending in {method.last4} was removed.")
    except (Conflict, Unavailable) as err:
        if err.code == "paypal_managed":
            raise
        return _cards_page(lead, order_id, err.status, error=err.message)
    return redirect(_url("cards", order_id=order_id))


@bp.post("/purchases/<order_id>/cards/<int:method_id>/default")
def default_card(order_id: str, method_id: int):
    return _card_action(order_id, method_id, "default")


@bp.post("/purchases/<order_id>/cards/<int:method_id>/remove")
def remove_card(order_id: str, method_id: int):
    return _card_action(order_id, method_id, "remove")


# Registered last: the deferred route registrations above must have run first.
@bp.record
def _on_register(state: BlueprintSetupState) -> None:
    app = state.app
    name = f"{state.name_prefix}.{state.name}".lstrip(".")
    door = state.options.get(MODE_OPTION, "standalone")
    app.extensions["self_billing"].extras.setdefault("portal_blueprints", {})[name] = door
    for filter_name, function in FILTERS.items():
        app.jinja_env.filters.setdefault(filter_name, function)
    apply_session_cookie_defaults(app)
    limit_login_view(app, f"{name}.login")
    limit_link_view(app, f"{name}.login_link")

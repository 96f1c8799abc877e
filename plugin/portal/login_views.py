"""The portal's login pages and My Orders: Order ID + email, one-time login links, logout."""
from __future__ import annotations

from typing import Any, Callable

from flask import redirect, request

from ..db import db
from ..errors import NotLoggedIn
from ..ledger.models import Lead
from ..payments.interface import PayPalManaged
from .auth import current_lead_id, login_lead, logout
from .forms import CSRF_MESSAGE, ActionForm, LoginForm, OrderLookupForm
from .limits import mark_login_failed
from .login import WRONG_PAIR_MESSAGE, authenticate
from .login_links import (
    LINK_UNUSABLE_MESSAGE,
    send_login_link,
    sent_message,
    use_login_link,
)
from .notices import ERROR, notify
from .order_lookup import LOOKUP_SENT_MESSAGE, send_order_ids
from .pages import bp, csrf_failed, page_url, render, safe_next
from .purchase_pages import parse_page_number, purchase_page

# -- login, My Orders, logout ------------------------------------------------------------------


@bp.get("/")
def index():
    lead_id = current_lead_id()
    lead = db.session.get(Lead, lead_id) if lead_id is not None else None
    if lead is None:
        return render("login.html", form=LoginForm(), next=safe_next(request.args.get("next")))
    page = purchase_page(lead.id, parse_page_number(request.args.get("page")))
    return render("orders.html", lead=lead, purchases=page.purchases, page=page,
                  paypal_manage_url=PayPalManaged.manage_url)


@bp.post("/login")
def login():
    form = LoginForm()
    next_url = safe_next(request.form.get("next"))
    if not form.validate_on_submit():
        error = CSRF_MESSAGE if csrf_failed(form) else None
        return render("login.html", 400, form=form, error=error, next=next_url)
    try:
        lead = authenticate(form.order_id.data.strip(), form.email.data)
    except NotLoggedIn:
        mark_login_failed()
        return render("login.html", 401, form=form, error=WRONG_PAIR_MESSAGE, next=next_url)
    login_lead(lead)
    return redirect(next_url or page_url("index"))


def _email_request(template: str, form: LoginForm | OrderLookupForm, send: Callable[[Any], None],
                   message: Callable[[], str]):
    """A page whose form emails the customer (a login link, their Order IDs): a GET shows the form; a valid
    POST calls ``send(form)`` and answers ``message()``, the same whatever was found."""
    if request.method == "GET":
        return render(template, form=form)
    if not form.validate_on_submit():
        error = CSRF_MESSAGE if csrf_failed(form) else None
        return render(template, 400, form=form, error=error)
    send(form)
    return render("message.html", title="Check your email", message=message(), show_home=True, kind="success")


@bp.route("/login/link", methods=["GET", "POST"])
def login_link():
    """Ask for a one-time login link by email; the same answer whether or not the pair matches."""
    return _email_request("login_link_request.html", LoginForm(), lambda form: send_login_link(
        form.order_id.data, form.email.data, lambda token: page_url("use_link", token=token, _external=True)),
        sent_message)


@bp.route("/login/order-ids", methods=["GET", "POST"])
def order_lookup():
    """"Forgot your Order ID?": email the Order IDs of an address's purchases; the same answer either way."""
    return _email_request("order_lookup.html", OrderLookupForm(),
                          lambda form: send_order_ids(form.validated, page_url("index", _external=True)),
                          lambda: LOOKUP_SENT_MESSAGE)


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
        return redirect(page_url("index"))
    return render("login_link.html", form=form, token=token)


@bp.post("/logout")
def logout_view():
    form = ActionForm(prefix="logout")
    if form.validate_on_submit():
        logout()
        notify("You are logged out.")
    else:
        notify(CSRF_MESSAGE, ERROR)
    return redirect(page_url("index"))

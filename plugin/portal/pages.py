"""The portal blueprint and how its pages render: the door a page came through, its layout and title.

One blueprint serves both doors of the spec: the standalone portal at ``{prefix}/portal/``
in its own small layout, and the helpdesk's My Orders tab (:func:`register_my_orders_tab`),
the same pages inside the host's ``base_template``. Error pages (the plugin's errors, a
stale CSRF token, too many logins) render here too, in the layout of their door.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from jinja2 import TemplateNotFound

from ..errors import BillingError, NotAllowed, NotLoggedIn
from ..templating import TEMPLATE_FOLDER
from .access import check_door
from .forms import CSRF_MESSAGE, ActionForm, LoginForm
from .limits import order_lookup_wait_message, retry_after_seconds, too_many_message
from .notices import pop_notices
from .rows import PaymentRows

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
    doors = current_app.extensions["self_billing"].portal_doors
    return doors.get(request.blueprint, "standalone")


def _layout() -> str:
    if _door() == "helpdesk":
        return current_app.extensions["self_billing"].base_template or STANDALONE_LAYOUT
    return STANDALONE_LAYOUT


def page_url(endpoint: str, **values: Any) -> str:
    """The URL of a portal page of this door.

    Built from a template made once per request for each endpoint and set of argument names (each
    value a placeholder, then quoted into it): My Orders links each of many purchases to the same
    few pages. Anything but plain text values (``_external=True``) goes to ``url_for`` as it is.
    """
    if not all(isinstance(value, str) for value in values.values()):
        return url_for(f"{request.blueprint}.{endpoint}", **values)
    made = g.setdefault("_self_billing_page_urls", {})
    key = (request.blueprint, endpoint, *values)
    template = made.get(key)
    if template is None:
        template = made[key] = url_for(f"{request.blueprint}.{endpoint}",
                                       **{name: _placeholder(n) for n, name in enumerate(values)})
    for n, value in enumerate(values.values()):
        template = template.replace(_placeholder(n), quote(value, safe=""))
    return template


def _placeholder(n: int) -> str:
    return f"__self_billing_{n}__"


#: Each page's title: the pages fill the layout's ``title`` block with it, and a host layout that
#: prints ``{{ title }}`` instead gets it as a variable.
PAGE_TITLES = {
    "address.html": "Update billing address",
    "card_new.html": "Add card",
    "cards.html": "Update credit card",
    "card_remove.html": "Remove card",
    "login.html": "My Orders – log in",
    "login_link.html": "My Orders – log in with your link",
    "login_link_request.html": "My Orders – email me a login link",
    "order_lookup.html": "My Orders – forgot your Order ID",
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
        sb_url=page_url,
        sb_payment_rows=PaymentRows(page_url),
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
        return redirect(page_url("index"))
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
    elif request.endpoint == f"{request.blueprint}.order_lookup":
        body, status = render("message.html", 429, title="Please wait a little", show_home=True,
                              message=order_lookup_wait_message(seconds))
    else:
        body, status = render("login.html", 429, form=LoginForm(), error=too_many_message(seconds), link_open=True)
    return body, status, {"Retry-After": str(seconds)}


def safe_next(target: str | None) -> str | None:
    """Only a path on this site (never another host) is followed after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def csrf_failed(form: Any) -> bool:
    return "csrf_token" in form.errors

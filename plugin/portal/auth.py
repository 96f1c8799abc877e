"""Who the customer is: the portal's login session.

A customer logs in with an Order ID and the email of the same lead
(:mod:`plugin.portal.login`); from then on the session holds:

``self_billing_lead_id``
    the lead's id (int);
``self_billing_seen``
    when the session was last used (Unix seconds), for the idle expiry
    ``SELF_BILLING_SESSION_IDLE_MINUTES``;
``self_billing_nonce``
    a random value drawn at each login, so every login yields a new cookie
    even for the same lead.

The session is the host's own Flask session (one cookie for host and plugin):
logging in or out touches only these keys and Flask-WTF's CSRF token, never the
host's keys. :func:`login_lead` rotates them (old values dropped, new ones
drawn, and the host's session interface asked to ``regenerate`` when it has
such a method, as Flask-Session's server-side interfaces do).

Other parts of the plugin call :func:`current_lead_id` and :func:`require_lead`;
:func:`require_lead` raises :class:`plugin.errors.NotLoggedIn` (401 in the JSON
form) inside the JSON APIs, and redirects to the portal's login page elsewhere.
"""
from __future__ import annotations

import secrets
import time

from flask import abort, current_app, redirect, request, session, url_for

from ..db import db
from ..errors import NotLoggedIn
from ..ledger.models import Lead

LEAD_KEY = "self_billing_lead_id"
SEEN_KEY = "self_billing_seen"
NONCE_KEY = "self_billing_nonce"
#: Flask-WTF keeps its raw CSRF token under this session key; a login draws a new one.
CSRF_KEY = "csrf_token"
_OUR_KEYS = (LEAD_KEY, SEEN_KEY, NONCE_KEY)
#: Refresh ``self_billing_seen`` at most this often (seconds), so the cookie is not rewritten on every request.
_TOUCH_EVERY = 30

NOT_LOGGED_IN_MESSAGE = "You are not logged in, or your session has ended. Log in with your Order ID and email."


def _idle_seconds() -> float:
    return float(current_app.config["SELF_BILLING_SESSION_IDLE_MINUTES"]) * 60


def _forget() -> None:
    for key in _OUR_KEYS:
        session.pop(key, None)


def current_lead_id() -> int | None:
    """The logged-in lead's id, or None when nobody is logged in or the session sat idle too long.

    An expired session is ended here (its keys are removed). A live one is marked as seen.
    """
    lead_id = session.get(LEAD_KEY)
    if not isinstance(lead_id, int) or isinstance(lead_id, bool):
        if lead_id is not None:
            _forget()
        return None
    now = time.time()
    seen = session.get(SEEN_KEY)
    if not isinstance(seen, (int, float)) or now - seen > _idle_seconds() or seen > now + 60:
        _forget()
        return None
    if now - seen >= _TOUCH_EVERY:
        session[SEEN_KEY] = int(now)
    return lead_id


def _login_redirect_target() -> str:
    """The login page of the portal the request came through (the helpdesk tab or the standalone one)."""
    #: blueprint name -> "standalone" | "helpdesk", filled as the portal blueprint is registered
    tabs: dict[str, str] = current_app.extensions["self_billing"].extras.get("portal_blueprints", {})
    if request.blueprint in tabs:
        name: str | None = request.blueprint
    else:
        from .access import door_open

        name = next((n for n, door in tabs.items() if door_open(door)), next(iter(tabs), None))
    if name is None:
        return "/"
    if request.method not in ("GET", "HEAD"):  # a form posted after the session ended: back to My Orders
        return url_for(f"{name}.index")
    return url_for(f"{name}.index", next=request.full_path.rstrip("?"))


def _wants_json() -> bool:
    blueprint = request.blueprint or ""
    return blueprint.startswith("self_billing_api") or request.accept_mimetypes.best == "application/json"


def require_lead() -> Lead:
    """The logged-in lead, or: 401 (JSON APIs) / a redirect to the login page (HTML pages)."""
    lead_id = current_lead_id()
    lead = db.session.get(Lead, lead_id) if lead_id is not None else None
    if lead is None:
        _forget()
        if _wants_json():
            raise NotLoggedIn(NOT_LOGGED_IN_MESSAGE, code="not_logged_in")
        abort(redirect(_login_redirect_target()))
    return lead


def login_lead(lead: Lead) -> None:
    """Start a fresh portal session for ``lead``: old values dropped, a new nonce and CSRF token drawn."""
    _forget()
    session.pop(CSRF_KEY, None)
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if callable(regenerate):
        regenerate(session)
    session[LEAD_KEY] = lead.id
    session[SEEN_KEY] = int(time.time())
    session[NONCE_KEY] = secrets.token_urlsafe(16)


def logout() -> None:
    """End the portal session (the host's own session keys are left alone)."""
    _forget()
    session.pop(CSRF_KEY, None)

"""Who the customer is: the portal's login session.

A customer logs in with an Order ID and the email of the same lead
(:mod:`plugin.portal.login`). The session is kept server-side too, in
:class:`plugin.portal.models.PortalSession`; the host's Flask session holds

``self_billing_session``
    a random token drawn at each login; its SHA-256 names the session's row;
``self_billing_seen``
    when the session was last used (Unix seconds), for the idle expiry
    ``SELF_BILLING_SESSION_IDLE_MINUTES``.

A session is live while its row is not ended and began within
``SELF_BILLING_SESSION_MAX_HOURS``, and the cookie was used within the idle
time. Logging out ends the row, so a copy of the cookie taken before (a stolen
one) opens nothing afterwards, however often it is replayed.

The session is the host's own Flask session (one cookie for host and plugin):
logging in or out touches only this key and Flask-WTF's CSRF token, never the
host's keys (Flask-WTF's CSRF token, shared with the host, is kept). :func:`login_lead` rotates them (old values dropped, new ones
drawn, and the host's session interface asked to ``regenerate`` when it has
such a method, as Flask-Session's server-side interfaces do).

Other parts of the plugin call :func:`current_lead_id` and :func:`require_lead`;
:func:`require_lead` raises :class:`plugin.errors.NotLoggedIn` (401 in the JSON
form) inside the JSON APIs, and redirects to the portal's login page elsewhere.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import bindparam, delete, or_, select, update

from ..db import db, utcnow
from ..errors import NotLoggedIn
from ..ledger.models import Lead
from ..tokens import digest, new_token
from .access import door_open
from .models import PortalSession

TOKEN_KEY = "self_billing_session"
SEEN_KEY = "self_billing_seen"
#: Keys of earlier versions (a lead id in the cookie): dropped wherever they are found.
_OLD_KEYS = ("self_billing_lead_id", "self_billing_nonce")
_OUR_KEYS = (TOKEN_KEY, SEEN_KEY, *_OLD_KEYS)
#: Refresh ``self_billing_seen`` at most this often (seconds), so the cookie is not rewritten on every request.
_TOUCH_EVERY = 30
#: ``g`` attribute caching this request's answer (the session row is read once per request).
_CHECKED = "_self_billing_lead_id"

NOT_LOGGED_IN_MESSAGE = "You are not logged in, or your session has ended. Log in with your Order ID and email."


def _lifetime() -> timedelta:
    return timedelta(hours=float(current_app.config["SELF_BILLING_SESSION_MAX_HOURS"]))


def _idle_seconds() -> float:
    return float(current_app.config["SELF_BILLING_SESSION_IDLE_MINUTES"]) * 60


def _forget() -> None:
    for key in _OUR_KEYS:
        session.pop(key, None)


#: What a request reads of its portal session: a plain row, not an ORM object (every customer request reads it).
_SESSION_ROW = select(PortalSession.lead_id, PortalSession.created_at, PortalSession.ended_at).where(
    PortalSession.token_hash == bindparam("token_hash"))


def _lead_of(token: str) -> int | None:
    row = db.session.execute(_SESSION_ROW, {"token_hash": digest(token)}).first()
    if row is None or row.ended_at is not None or utcnow() - row.created_at > _lifetime():
        return None
    return row.lead_id


def current_lead_id() -> int | None:
    """The logged-in lead's id, or None when nobody is logged in or the session has ended.

    An ended, expired or idle session's keys are removed from the cookie. A live one is marked as seen.
    """
    if _CHECKED in g:
        return g.get(_CHECKED)
    token, seen, now = session.get(TOKEN_KEY), session.get(SEEN_KEY), time.time()
    lead_id = None
    if (isinstance(token, str) and token and isinstance(seen, (int, float)) and not isinstance(seen, bool)
            and now - _idle_seconds() <= seen <= now + 60):
        lead_id = _lead_of(token)
    if lead_id is None:
        if any(key in session for key in _OUR_KEYS):
            _forget()
    elif now - seen >= _TOUCH_EVERY:
        session[SEEN_KEY] = int(now)
    setattr(g, _CHECKED, lead_id)
    return lead_id


def portal_blueprint() -> str | None:
    """The portal registration (the helpdesk tab or the standalone one) for this request: the one it
    came through, else the first whose door is open, else any; None when no portal is mounted."""
    #: blueprint name -> "standalone" | "helpdesk", filled as the portal blueprint is registered
    tabs: dict[str, str] = current_app.extensions["self_billing"].portal_doors
    if request.blueprint in tabs:
        return request.blueprint
    return next((n for n, door in tabs.items() if door_open(door)), next(iter(tabs), None))


def _login_redirect_target() -> str:
    """The login page of the portal the request came through (the helpdesk tab or the standalone one)."""
    name = portal_blueprint()
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
    """Start a fresh portal session for ``lead``: the old one ended, a new session token drawn.

    Flask-WTF's CSRF token is the host's as much as ours, so it is kept (the host's forms in other
    tabs keep working); the session's own token is what a login rotates.
    """
    _end_current()
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if callable(regenerate):
        regenerate(session)
    token = new_token()
    db.session.add(PortalSession(token_hash=digest(token), lead_id=lead.id, created_at=utcnow()))
    db.session.commit()
    session[TOKEN_KEY] = token
    session[SEEN_KEY] = int(time.time())
    setattr(g, _CHECKED, lead.id)


def _end_current() -> None:
    token = session.get(TOKEN_KEY)
    if isinstance(token, str) and token:
        db.session.execute(update(PortalSession).where(PortalSession.token_hash == digest(token),
                                                       PortalSession.ended_at.is_(None)).values(ended_at=utcnow()))
        db.session.commit()
    _forget()
    setattr(g, _CHECKED, None)


def logout() -> None:
    """End the portal session, server-side too: a copy of the cookie opens nothing afterwards.

    The host's own session keys are left alone, Flask-WTF's CSRF token among them (it is the host's
    too: forms of the host open in other tabs keep working).
    """
    _end_current()


def prune_sessions(now: datetime) -> int:
    """Delete session rows that can no longer be live (ended, or past their lifetime); how many."""
    result = db.session.execute(delete(PortalSession).where(or_(
        PortalSession.ended_at.is_not(None), PortalSession.created_at < now - _lifetime())))
    db.session.commit()
    return result.rowcount or 0

"""The portal's browser-facing protections: the session cookie's flags and CSRF for JSON clients.

Session cookie
    The portal shares the host's Flask session cookie. When the plugin is
    mounted (and ``SELF_BILLING_SESSION_COOKIE_DEFAULTS`` is true, the
    default) it applies safe defaults the host has not chosen itself:
    ``SESSION_COOKIE_HTTPONLY`` stays True (Flask's default);
    ``SESSION_COOKIE_SAMESITE`` becomes ``"Lax"`` when it is unset (Flask's
    default None); and when ``SESSION_COOKIE_SECURE`` is False and the app uses
    Flask's own cookie session, the cookie is marked ``Secure`` on every
    request that came over https (``request.is_secure``; behind a TLS-ending
    proxy, use werkzeug's ``ProxyFix``). A host that set these keys keeps its
    values; ``SELF_BILLING_SESSION_COOKIE_DEFAULTS = False`` leaves all of
    them alone.

CSRF
    HTML forms are Flask-WTF ``FlaskForm``\\ s with a ``csrf_token`` field. The
    JSON API proves a request is not cross-site with Flask-WTF's header: the
    login answer carries ``csrf_token``, and every state-changing request
    (POST, PUT, PATCH, DELETE, except the login itself) sends it back as
    ``X-CSRFToken``; :func:`check_json_csrf` refuses the others with 400
    ``csrf_failed``. The plugin does not enable ``CSRFProtect`` app-wide, so
    the host's own forms behave as before. ``WTF_CSRF_ENABLED = False`` turns
    the check off here too (as it does for the forms).
"""
from __future__ import annotations

from flask import Flask, current_app, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import ValidationError, validate_csrf

from ..errors import BillingError

CSRF_HEADER = "X-CSRFToken"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SecureOverHttpsSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, with the cookie marked Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if super().get_cookie_secure(app):
            return True
        return has_request_context() and request.is_secure


def apply_session_cookie_defaults(app: Flask) -> None:
    """Safe session-cookie defaults, each only where the host has not chosen a value."""
    if not app.config.get("SELF_BILLING_SESSION_COOKIE_DEFAULTS", False):
        return
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if not app.config.get("SESSION_COOKIE_SECURE") and type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = SecureOverHttpsSessionInterface()


def check_json_csrf() -> None:
    """Refuse a state-changing JSON request without a valid ``X-CSRFToken`` header (400 csrf_failed)."""
    if request.method not in UNSAFE_METHODS or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    token = request.headers.get(CSRF_HEADER, "")
    if not token:
        raise BillingError(
            f"This request is missing its {CSRF_HEADER} header. Send the csrf_token you received "
            "when you logged in, or log in again.",
            code="csrf_failed",
            status=400,
        )
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise BillingError(
            f"The {CSRF_HEADER} header is not valid ({exc.args[0] if exc.args else 'unknown reason'}). "
            "Log in again to get a fresh csrf_token.",
            code="csrf_failed",
            status=400,
        ) from None

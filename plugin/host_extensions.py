"""Living with the host's own extensions: Flask-WTF's ``CSRFProtect`` and Flask-Limiter's defaults.

A host that turns on ``CSRFProtect(app)`` protects every POST of the app with the form token. The
plugin's JSON routes protect themselves in other ways (the merchant and agent APIs by bearer token,
the portal API by its ``X-CSRFToken`` header check, the sandbox's token endpoint by holding no
session), so the host's check would refuse every one of them with a bare 400. The plugin exempts
exactly those blueprints on the host's ``CSRFProtect``, whenever the host creates it: at
``init_app`` when it already exists, else at the first request (an app-level ``before_request``
registered at ``init_app``, so it runs before a ``CSRFProtect`` initialised later). Its HTML forms
carry Flask-WTF tokens, which the host's check accepts; a stale one on a plugin page gets the
plugin's own message inside its layout (see the portal's and the desk's ``CSRFError`` handlers).

A host's Flask-Migrate would see the plugin's ``sb_`` tables (they are not on the host's metadata)
and autogenerate a ``drop_table`` for each: the plugin adds its ``include_name`` filter to
Flask-Migrate's ``configure_args`` (combined with the host's own filter, if any), which the stock
``env.py`` passes to Alembic; set up before or after the plugin, it is found when the first app
context is pushed (every ``flask db`` command runs in one).

A host ``Limiter`` with default limits limits every route of the app, the plugin's health check
too, which a load balancer polls: ``{prefix}/healthz`` is exempted on every host ``Limiter`` the same
way (the plugin's own login limits are its own Limiter's and stay).
"""
from __future__ import annotations

from typing import Any

from flask import Flask, appcontext_pushed

from .schema import host_include_name

#: Blueprints whose routes check their callers themselves (token, header, or no session at all).
SELF_PROTECTED = ("self_billing_api_admin", "self_billing_api_admin_emails", "self_billing_api_portal",
                  "self_billing_api_agent", "self_billing_invoices_agent", "self_billing_sandbox",
                  "self_billing_health", "self_billing_stripe_webhooks")


HEALTH_ENDPOINT = "self_billing_health.healthz"


def _exempt_from_host_limiters(app: Flask) -> None:
    ours = app.extensions["self_billing"].login_limiter
    view = app.view_functions.get(HEALTH_ENDPOINT)
    for limiter in app.extensions.get("limiter", ()) or ():
        if limiter is not ours and view is not None:
            limiter.exempt(view)


def exempt_from_host_extensions(app: Flask) -> bool:
    """Exempt the self-protected blueprints on the host's CSRFProtect and the health check on its
    Limiters; True once the host's CSRFProtect was found (nothing more to wait for)."""
    state = app.extensions["self_billing"]
    _exempt_from_host_limiters(app)
    if state.host_csrf_exempted:
        return True
    csrf = app.extensions.get("csrf")
    if csrf is None:
        return False
    for name in SELF_PROTECTED:
        if name in app.blueprints:
            csrf.exempt(app.blueprints[name])
    state.host_csrf_exempted = True
    return True


def _leave_our_tables_out_of_host_migrations(app: Flask) -> bool:
    """Add the plugin's filter to the host's Flask-Migrate; True once done (False: no Flask-Migrate yet)."""
    migrate = app.extensions.get("migrate")
    if migrate is None:
        return False
    args = migrate.configure_args
    theirs = args.get("include_name")
    if getattr(theirs, "self_billing", False):
        return True

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return host_include_name(name, type_, parent_names) and (theirs is None or theirs(name, type_, parent_names))

    include_name.self_billing = True  # type: ignore[attr-defined]
    args["include_name"] = include_name
    return True


def _watch_for_host_migrate(app: Flask) -> None:
    if _leave_our_tables_out_of_host_migrations(app):
        return

    def on_context(sender: Flask, **_extra: Any) -> None:
        if _leave_our_tables_out_of_host_migrations(sender):
            appcontext_pushed.disconnect(on_context, sender)

    app.extensions["self_billing"].migrate_watch = on_context  # blinker keeps weak references
    appcontext_pushed.connect(on_context, app)


def init_app(app: Flask) -> None:
    """Exempt now what the host has already, and once more at the first request for what it set up
    after ``init_app`` (extensions cannot be set up once an app has served a request)."""
    exempt_from_host_extensions(app)
    _watch_for_host_migrate(app)
    state = app.extensions["self_billing"]

    @app.before_request
    def _exempt_from_host_extensions() -> None:
        if not state.host_extensions_checked:
            exempt_from_host_extensions(app)
            state.host_extensions_checked = True

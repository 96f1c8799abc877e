"""The Flask extension object, :class:`SelfBilling`.

It follows the Pallets extensions' habits: ``init_app`` keeps nothing of the app
on ``self``, stores per-app state in ``app.extensions["self_billing"]``, applies
config defaults with ``setdefault``, and does nothing at import time.
"""
from __future__ import annotations

import importlib
from typing import Any

from flask import Flask

from . import models  # noqa: F401  (the complete metadata)
from .blueprints import register_blueprints
from .cli import cli_group
from .config import DEFAULTS
from .database_binding import bind
from .host_extensions import init_app as init_host_extensions
from .invoices.numbering import check_number_formats
from .notifications import init_app as init_notifications
from .notifications.after_commit import install as install_send_after_commit
from .payments.interface import PaymentGateway
from .payments.sandbox import SandboxGateway
from .payments.stripe import make_gateway as make_stripe_gateway
from .portal.auth import logout
from .portal.views import register_my_orders_tab
from .state import AgentLoader, SelfBillingState
from .tickets.adapter import load_adapter
from .tickets.desk import bp as desk_bp


def _load_gateway(spec: str | PaymentGateway) -> PaymentGateway:
    if not isinstance(spec, str):
        return spec
    if spec == "sandbox":
        return SandboxGateway()
    if spec == "stripe":
        return make_stripe_gateway()
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise RuntimeError(
            f"SELF_BILLING_GATEWAY={spec!r} is not understood: use 'sandbox', 'stripe' or 'package.module:factory'."
        )
    factory = getattr(importlib.import_module(module_name), attr)
    return factory()


class SelfBilling:
    """The Self-Billing extension.

    ``SelfBilling(app)`` or ``SelfBilling()`` then ``init_app(app, ...)``.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        if app is not None:
            self.init_app(app, **options)

    def init_app(
        self,
        app: Flask,
        agent_loader: AgentLoader | None = None,
        base_template: str | None = None,
        *,
        db: Any = None,
    ) -> None:
        """Mount the plugin on ``app``.

        :param agent_loader: returns the signed-in agent's email (or None); agent
            routes answer 401 without one.
        :param base_template: the host's layout template the My Orders tab extends.
        :param db: the host's Flask-SQLAlchemy instance, when ``init_app`` runs before the host's
            ``db.init_app(app)``. Without it, the app's instance is used whichever of the two
            ``init_app`` calls comes first; with none by the app's first app context, the plugin
            creates its own from ``SQLALCHEMY_DATABASE_URI`` (see :mod:`plugin.database_binding`).
        """
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        prefix = "/" + app.config["SELF_BILLING_URL_PREFIX"].strip("/")
        prefix = "" if prefix == "/" else prefix
        app.config["SELF_BILLING_URL_PREFIX"] = prefix or "/"
        check_number_formats(app.config)

        state = SelfBillingState(
            gateway=_load_gateway(app.config["SELF_BILLING_GATEWAY"]),
            url_prefix=prefix,
            agent_loader=agent_loader,
            base_template=base_template,
        )
        app.extensions["self_billing"] = state


        register_blueprints(app, prefix)

        # The host's own CSRFProtect and Limiter defaults leave the self-protected APIs and healthz alone.
        init_host_extensions(app)
        init_notifications(app)  # Flask-Mail, unless the host has it

        # The host's Flask-SQLAlchemy whatever the order it is initialised in, else the plugin's own.
        bind(app, db, state, lambda sqlalchemy: install_send_after_commit(sqlalchemy.session))
        app.cli.add_command(cli_group)

        # Fails fast on a helpdesk adapter that cannot be loaded (docs/helpdesk-adapter.md).
        state.helpdesk_adapter = load_adapter(app.config["SELF_BILLING_HELPDESK_ADAPTER"])

    @staticmethod
    def logout_customer() -> None:
        """End the customer's portal session, server-side too (call it from your own logout view).

        Only the plugin's session keys go; yours are left as they are. Needs a request context.
        """
        logout()

    def register_agent_desk(
        self, app: Flask, url_prefix: str = "/desk", *, name: str = "agent_desk", login_url: str | None = None
    ) -> None:
        """Serve the agent desk at ``url_prefix`` of the host too (it is always at ``{prefix}/desk/``).

        The desk's pages need an agent from ``agent_loader``; without one they
        redirect to ``login_url`` (with ``?next=``) when given, else answer 401.
        Endpoints are ``{name}.queue``, ``{name}.ticket``, ``{name}.leads``, ...
        """
        state = app.extensions["self_billing"]
        state.desk_mounts[name] = {"login_url": login_url}
        app.register_blueprint(desk_bp, name=name, url_prefix=url_prefix.rstrip("/") or None)

    def register_my_orders_tab(self, app: Flask, url_prefix: str, *, name: str = "self_billing_my_orders") -> None:
        """Serve the customer portal as the host helpdesk's My Orders tab at ``url_prefix``.

        The same pages as the standalone ``{prefix}/portal/``, rendered inside the
        ``base_template`` given to ``init_app`` (they fill its ``title`` and
        ``content`` blocks). The merchant's ``portal`` setting (helpdesk,
        standalone or both) decides which of the two answers. Endpoints are
        ``{name}.index``, ``{name}.login``, ...
        """
        register_my_orders_tab(app, url_prefix, name=name)

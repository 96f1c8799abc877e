"""The demo host helpdesk: a small but real Flask helpdesk that mounts Self-Billing.

``flask --app plugin.demo run`` serves a customer help center (``/help/``, with a
"My Orders" tab at ``/help/my-orders``) and an agent desk (``/desk/``, with a
login). It mounts the plugin only through the public :class:`plugin.SelfBilling`
API, as a third-party helpdesk would: ``init_app`` with an ``agent_loader``
(:func:`plugin.demo.agents.load_agent`) and ``base_template`` (the help center's
own layout).

Configuration, in this order: safe defaults (:mod:`plugin.demo.settings`), then
``FLASK_*`` environment variables (``app.config.from_prefixed_env()``, values
parsed as JSON where they parse), then ``test_config``.
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask, redirect, url_for

from plugin import SelfBilling

from . import agents, desk, help_center, serve, settings

#: The layout every page of the help center and the desk extends; the plugin's pages extend it too.
LAYOUT = "helpdesk/layout.html"

#: The extension object, as a host keeps it at module level.
self_billing = SelfBilling()


def create_app(test_config: Mapping[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    """Build the demo helpdesk app.

    :param test_config: config applied last (tests pass a database and a secret here).
    :param instance_path: where the SQLite file and generated secret key live
        (Flask's default instance folder when not given).
    """
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.from_mapping(settings.defaults(app))
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.from_mapping(test_config)
    settings.finish(app)

    self_billing.init_app(app, agent_loader=agents.load_agent, base_template=LAYOUT)
    # The customer portal as this help center's My Orders tab, inside LAYOUT.
    self_billing.register_my_orders_tab(app, "/help/my-orders")
    app.register_blueprint(help_center.bp, url_prefix="/help")
    desk.init_app(app, self_billing)
    agents.helpdesk_cli.add_command(serve.serve_command)
    app.cli.add_command(agents.helpdesk_cli)
    app.after_request(settings.security_headers)

    @app.get("/")
    def index():
        return redirect(url_for("help_center.home"))

    @app.context_processor
    def helpdesk_context() -> dict[str, Any]:
        return {
            "helpdesk_name": app.config["HELPDESK_NAME"],
            "billing_prefix": app.config["SELF_BILLING_URL_PREFIX"],
            "signed_in_agent": agents.session_agent(),
        }

    return app

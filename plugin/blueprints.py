"""Which blueprints the plugin mounts, and where under ``SELF_BILLING_URL_PREFIX``."""
from __future__ import annotations

import importlib

from flask import Flask

from .api.common import refuse_nul_characters

#: (module holding ``bp``, path under the prefix)
BLUEPRINTS: tuple[tuple[str, str], ...] = (
    ("plugin.health", ""),
    ("plugin.api.admin", "/api/admin"),
    ("plugin.api.admin_emails", "/api/admin"),
    ("plugin.api.portal", "/api/portal"),
    ("plugin.api.agent", "/api/agent"),
    ("plugin.payments.sandbox_views", "/sandbox"),
    ("plugin.payments.stripe.webhook", "/webhooks"),
    ("plugin.portal.views", "/portal"),
    ("plugin.invoices.views", "/portal"),
    ("plugin.invoices.agent_views", "/api/agent"),
    ("plugin.tickets.desk", "/desk"),
)


def register_blueprints(app: Flask, prefix: str) -> None:
    for module_name, path in BLUEPRINTS:
        module = importlib.import_module(module_name)
        app.register_blueprint(module.bp, url_prefix=prefix + path)
    app.before_request(refuse_nul_characters)  # for every plugin view, wherever it is mounted

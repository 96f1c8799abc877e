"""Configuration keys of Self-Billing with their defaults.

``SelfBilling.init_app`` applies each default with ``app.config.setdefault``;
the README documents every key.
"""
from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Where the plugin's pages and APIs are mounted.
    "SELF_BILLING_URL_PREFIX": "/billing",
    # Bearer token of the merchant API; None turns the merchant API off.
    "SELF_BILLING_ADMIN_TOKEN": None,
    # Failed portal logins allowed per email, and per client address (Flask-Limiter strings).
    "SELF_BILLING_LOGIN_LIMIT_PER_EMAIL": "5 per 15 minutes",
    "SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS": "100 per 15 minutes",
    # Flask-Limiter storage; share one (redis://...) between several app servers.
    "SELF_BILLING_RATELIMIT_STORAGE_URI": "memory://",
    # Minutes of inactivity after which a portal session ends.
    "SELF_BILLING_SESSION_IDLE_MINUTES": 30,
    # The payment processor: "sandbox" or "package.module:factory" returning a PaymentGateway.
    "SELF_BILLING_GATEWAY": "sandbox",
    # Largest JSON body the APIs accept, in bytes (larger: 413).
    "SELF_BILLING_MAX_BODY_BYTES": 64 * 1024,
    # Locale used by Babel for amounts and dates shown to people.
    "SELF_BILLING_LOCALE": "en_US",
    # Where tickets of requests handled by hand go: "builtin" (the plugin's own store, which the
    # agent desk shows) or "package.module:factory" returning a HelpdeskAdapter (docs/helpdesk-adapter.md).
    "SELF_BILLING_HELPDESK_ADAPTER": "builtin",
}

"""What Self-Billing keeps per app, in ``app.extensions["self_billing"]``: one typed object.

Set up by :meth:`plugin.SelfBilling.init_app`; each field says which module fills it. Nothing
else of the app is kept anywhere (the extension object itself holds nothing of the app).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import current_app

#: Returns the signed-in agent's email, or None. Supplied by the host helpdesk.
AgentLoader = Callable[[], "str | None"]


@dataclass
class SelfBillingState:
    """The plugin's state on one app."""

    #: The payment gateway (``SELF_BILLING_GATEWAY``), called only through :mod:`plugin.payments.processor`.
    gateway: Any
    #: Where the plugin is mounted, normalised ("" at the root).
    url_prefix: str
    agent_loader: AgentLoader | None = None
    #: The host's layout the My Orders tab renders in.
    base_template: str | None = None
    #: The host's Flask-SQLAlchemy given as ``init_app(app, db=...)`` (:mod:`plugin.database_binding`).
    host_db: Any = None
    #: True when the plugin created the app's Flask-SQLAlchemy itself (and tuned only that engine).
    own_db: bool = False
    #: The helpdesk adapter (``SELF_BILLING_HELPDESK_ADAPTER``, :mod:`plugin.tickets.adapter`).
    helpdesk_adapter: Any = None
    #: Blueprint name -> the door it serves ("standalone" or "helpdesk"), per portal registration.
    portal_doors: dict[str, str] = field(default_factory=dict)
    #: Blueprint name -> {"login_url": ...} for each place the agent desk is mounted.
    desk_mounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The plugin's own Flask-Limiter for logins (:mod:`plugin.portal.limits`).
    login_limiter: Any = None
    #: Invoice cache keys already known to be on disk (:mod:`plugin.invoices.service`), bounded.
    invoice_keys: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    #: The host's CSRFProtect and Limiters have been told about the plugin's routes (:mod:`plugin.host_extensions`).
    host_csrf_exempted: bool = False
    host_extensions_checked: bool = False
    #: The appcontext signal receiver that finds the host's Flask-Migrate (kept: blinker holds it weakly).
    migrate_watch: Any = None


def current_state() -> SelfBillingState:
    """The plugin's state on the current app."""
    return current_app.extensions["self_billing"]

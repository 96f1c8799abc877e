"""HTML pages of the customer portal: the Order-ID login and My Orders with its actions.

One blueprint serves both doors of the spec:

- the standalone portal, mounted by ``init_app`` at ``{prefix}/portal/`` in
  its own small layout (``self_billing/portal/standalone.html``);
- the helpdesk's My Orders tab: the same blueprint registered a second time by
  :func:`register_my_orders_tab` (``SelfBilling.register_my_orders_tab``) at a
  path of the host's choosing, its pages extending the host's
  ``base_template`` (they fill its ``content`` block).

The merchant's ``portal`` setting decides which door is open (the other
answers 404 with a message); with self-service billing disabled every page
answers 403 saying so and shows nothing else.

Views only translate HTTP: what may happen is the policy's
(:mod:`plugin.workflows.policy`), what a customer does is in :mod:`.actions`,
:mod:`.login`, :mod:`.access`; forms (with CSRF tokens) in :mod:`.forms`;
formatting in :mod:`.display`. The pages are in :mod:`.login_views`,
:mod:`.request_views`, :mod:`.resume_views`, :mod:`.account_views` and :mod:`.history_views`, on the blueprint of
:mod:`.pages`; this module puts them together.
"""
from __future__ import annotations

from flask.blueprints import BlueprintSetupState

from . import account_views, history_views, login_views, request_views, resume_views  # noqa: F401  (routes on bp)
from .display import FILTERS
from .limits import limit_link_view, limit_login_view, limit_lookup_view
from .pages import MODE_OPTION, bp, register_my_orders_tab
from .security import apply_session_cookie_defaults

__all__ = ["bp", "register_my_orders_tab"]


# Registered last: the deferred route registrations above must have run first.
@bp.record
def _on_register(state: BlueprintSetupState) -> None:
    app = state.app
    name = f"{state.name_prefix}.{state.name}".lstrip(".")
    door = state.options.get(MODE_OPTION, "standalone")
    app.extensions["self_billing"].portal_doors[name] = door
    for filter_name, function in FILTERS.items():
        app.jinja_env.filters.setdefault(filter_name, function)
    apply_session_cookie_defaults(app)
    limit_login_view(app, f"{name}.login")
    limit_link_view(app, f"{name}.login_link")
    limit_lookup_view(app, f"{name}.order_lookup")

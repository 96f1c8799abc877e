"""Self-Billing: a self-service billing portal for Flask helpdesks.

Mount it on a host app::

    from plugin import SelfBilling
    self_billing = SelfBilling()
    self_billing.init_app(app, agent_loader=load_agent, base_template="layout.html")
"""
from .extension import SelfBilling, SelfBillingState

__all__ = ["SelfBilling", "SelfBillingState"]

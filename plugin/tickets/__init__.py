"""Helpdesk tickets for requests handled by hand, and the adapter a host helpdesk implements.

A host that plugs in its own helpdesk (``SELF_BILLING_HELPDESK_ADAPTER``) calls
:func:`agent_replied` when one of its agents answers a Self-Billing ticket::

    from plugin import tickets as self_billing_tickets
    self_billing_tickets.agent_replied(external_ref, "agent@example.com", "We refunded you.")

(:func:`plugin.tickets.service.agent_replied`: records the reply on the plugin's ticket and commits.)
"""
from __future__ import annotations

from .service import agent_replied

__all__ = ["agent_replied"]

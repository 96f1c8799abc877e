"""Helpdesk tickets for requests handled by hand, and the adapter a host helpdesk implements.

A host that plugs in its own helpdesk (``SELF_BILLING_HELPDESK_ADAPTER``) calls
:func:`agent_replied` when one of its agents answers a Self-Billing ticket::

    from plugin import tickets as self_billing_tickets
    self_billing_tickets.agent_replied(external_ref, "agent@example.com", "We refunded you.")
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Ticket


def agent_replied(external_ref: str, agent_email: str, body: str, *,
                  notify_customer: bool = False) -> "Ticket":
    """Record a reply an agent wrote in the host's helpdesk (see :func:`.service.agent_replied`)."""
    from .service import agent_replied as _agent_replied

    return _agent_replied(external_ref, agent_email, body, notify_customer=notify_customer)


__all__ = ["agent_replied"]

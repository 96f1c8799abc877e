"""Plain rules about purchases and payments, shared by the machines' conditions and the policy.

Each takes only the values it reads, so the request machines
(:class:`~plugin.workflows.context.RequestContext`), the policy the doors ask
(:mod:`plugin.workflows.policy`) and the presenters all answer from the same line.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

#: The purchase states in which a subscription still has a future: it may be changed or cancelled.
LIVE_STATUSES = ("active", "cancel_scheduled")


def refundable_until(paid_at: datetime, refund_window_days: int) -> datetime:
    """The last moment a customer may ask for a refund of a payment made at ``paid_at``."""
    return paid_at + timedelta(days=refund_window_days)


def is_live_subscription(purchase: Any) -> bool:
    """A subscription that is active or scheduled to end: it still has an open billing relationship."""
    return purchase.kind == "subscription" and purchase.status in LIVE_STATUSES


def address_changes_allowed(purchase: Any, settings: Any) -> bool:
    """A billing address may change where future invoices are still to come, with self-service on."""
    return bool(settings.enabled) and is_live_subscription(purchase)


def card_changes_allowed(purchase: Any, settings: Any) -> bool:
    """Cards may change on a live card-paid subscription, with self-service on (PayPal keeps its own)."""
    return address_changes_allowed(purchase, settings) and purchase.payment_type == "card"

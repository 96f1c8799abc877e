"""The agent desk's words for the codes the data holds: states, events, outcomes, statuses, processor calls.

One mapping for every desk page (the queue, a ticket with its request history, the lead lookup, an
order), so an agent reads "Waiting for an agent" and "Ticket opened" where the rows hold
``ticketed`` and ``open_ticket``. The JSON APIs keep the codes: these words are for people.
A code with no word here (a newer state, a host's own) is shown with its underscores as spaces,
never as a blank.
"""
from __future__ import annotations

from datetime import datetime

from ..money import format_money, to_cents

#: What a request is waiting for, by its machine's state.
REQUEST_STATES = {
    "new": "New",
    "requested": "Received",
    "auto_processed": "Being processed automatically",
    "ticketed": "Waiting for an agent",
    "resolved": "Resolved",
}

#: How a request ended (its outcome); a purchase's and a payment's status use the same words.
OUTCOMES = {
    "cancelled": "Cancelled",
    "cancel_scheduled": "Cancellation scheduled",
    "resumed": "Kept: cancellation undone",
    "refunded": "Refunded in full",
    "partially_refunded": "Partially refunded",
    "declined": "Declined",
    "failed": "Closed as failed",
}

#: A purchase's or a payment's status.
STATUSES = {
    "active": "Active",
    "paid": "Paid",
    **OUTCOMES,
    "refunded": "Refunded",
}

#: A ticket's own status.
TICKET_STATUSES = {"open": "Open", "closed": "Closed"}

#: Each event an agent sends: its button, what the history says it did, the notice once it is done.
_AGENT_EVENTS = {
    "cancel_now": ("Cancel now", "Cancelled now", "The subscription was cancelled now."),
    "cancel_at_period_end": ("Cancel at the end of the paid period", "Set to end with the paid period",
                             "The subscription will end at the end of its paid period."),
    "refund_full": ("Refund in full", "Refunded in full", "The payment was refunded in full."),
    "refund_partial": ("Refund part", "Refunded in part", "The payment was refunded in part."),
    "decline": ("Decline the request", "Declined", "The request was declined."),
    "fail": ("Close as failed", "Closed as failed", "The request was closed as failed."),
}
#: The buttons an agent presses: one per event the machine accepts now.
ACTIONS = {event: words[0] for event, words in _AGENT_EVENTS.items()}
#: What the notice says once an action is done.
DONE = {event: words[2] for event, words in _AGENT_EVENTS.items()}

#: What happened, in a request's history (the machine's events).
EVENTS = {
    "submit": "Request received",
    "open_by_agent": "Opened by an agent",
    "auto_process": "Sent for automatic processing",
    "open_ticket": "Ticket opened",
    "complete": "Completed by the payment processor",
    "schedule": "Cancellation scheduled",
    "processor_failed": "Payment processor failed: ticket opened",
    "processor_error": "Payment processor failed",
    "period_end": "Paid period ended",
    "resume": "Cancellation undone by the customer (Keep my subscription)",
    "resumed_at_processor": "Cancellation undone at the payment processor",
    **{event: words[1] for event, words in _AGENT_EVENTS.items()},
}

REQUEST_TYPES = {"cancellation": "Cancellation", "refund": "Refund"}

#: Who acted: the customer, the plugin itself, or an agent (their email, shown as it is).
ACTORS = {"customer": "Customer", "system": "Automatic"}

#: What the plugin asked the payment processor (``sb_processor_calls.operation``).
OPERATIONS = {
    "refund": "Refund",
    "cancel_subscription": "Cancel the subscription",
    "resume_subscription": "Undo the scheduled cancellation",
    "attach_card": "Add a card",
    "detach_card": "Remove a card",
    "set_default_card": "Set the default card",
}

#: Why a processor call failed (``sb_processor_calls.error_code``).
ERRORS = {
    "processor_unavailable": "Processor not answering",
    "processor_error": "Refused by the processor",
    "card_declined": "Card declined",
    "invalid_token": "Unknown card token",
    "paypal_managed": "Managed in PayPal",
}

BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "discover": "Discover"}

_TABLES = {
    "state": REQUEST_STATES, "outcome": OUTCOMES, "status": STATUSES, "ticket": TICKET_STATUSES,
    "event": EVENTS, "action": ACTIONS, "done": DONE, "type": REQUEST_TYPES, "actor": ACTORS,
    "operation": OPERATIONS, "error": ERRORS, "brand": BRANDS,
}
KINDS = frozenset(_TABLES)


def say(code: str | None, kind: str) -> str:
    """``code`` in words, from the table of ``kind`` (one of :data:`KINDS`); an unknown code readably."""
    if not code:
        return ""
    if kind == "actor" and code not in ACTORS:
        return code  # an agent: their email
    return _TABLES[kind].get(code) or code.replace("_", " ").capitalize()


def money(amount: str | None, currency: str | None) -> str:
    """``"49.00", "USD"`` -> ``$49.00`` (the desk's locale is English)."""
    if amount is None or not currency:
        return amount or ""
    return format_money(to_cents(amount), currency, "en_US")


def when(value: str | datetime | None) -> str:
    """An ISO 8601 UTC time (or an aware datetime) as agents read it: ``2026-11-26 10:00 UTC``."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value[:16].replace("T", " ") + " UTC" if len(value) >= 16 else value


def day(value: str | datetime | None) -> str:
    """The date part only: ``2026-11-26``."""
    return when(value)[:10]


def card(method: dict | None) -> str:
    """A payment method as a person names it: "Visa ending in 4242", "PayPal (ann@paypal.example)"."""
    if not method:
        return ""
    if method.get("type") == "paypal":
        return f"PayPal ({method['payer_email']})" if method.get("payer_email") else "PayPal"
    if method.get("last4"):
        return f"{say(method.get('brand'), 'brand')} ending in {method['last4']}"
    return ""

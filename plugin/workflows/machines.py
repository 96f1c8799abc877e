"""The request state machines, declared as data.

One table per request type. Each row is a `transitions` transition: the event
(trigger), where it may start, where it ends, the conditions that must hold and,
in order, the effects it has (``after``). Conditions and effects are names of
:class:`~plugin.workflows.context.RequestContext` methods; every transition also
writes its audit row (the machine's one ``after_state_change``, ``write_history``).
The effects a reader meets in the tables:

- ``queue_*``: what the processor is to do (the request's ``pending_event``);
- ``cancel_purchase_now``, ``schedule_purchase_cancellation``, ``end_scheduled_purchase``,
  ``resume_purchase``, ``record_refund``: the ledger change the processor confirmed;
- ``open_ticket``, ``open_ticket_after_failure``: a helpdesk ticket for an agent;
- ``settle_outcome``: how the request ends (``OUTCOMES``; a refund's by the amount left);
- ``close_request``: resolved, its open slot released, its ticket closed;
- ``email_*``: the customer's email about it.

``AGENT_EVENTS`` are the events agents may send (contract section 5).

The machines are built once, with no model attached (the pattern transitions'
FAQ gives for many model objects): :func:`plugin.workflows.engine.fire` triggers
``MACHINES[type].events[name].trigger(context, ...)``, which costs nothing per
request and keeps no request alive. Conditions and effects get the trigger's
keyword arguments (``send_event=False``). The diagrams in ``docs/workflows.md`` are
generated from these tables (``plugin.workflows.diagrams``).
"""
from __future__ import annotations

from typing import Any

from transitions import Machine

#: Who acts when no agent does: the customer asking, the system carrying a step out.
CUSTOMER, SYSTEM = "customer", "system"


def is_agent(actor: str) -> bool:
    """Whether ``actor`` is an agent (their email), not the customer or the system."""
    return bool(actor) and actor not in (CUSTOMER, SYSTEM)

#: ``new`` is where a request is before it is saved; it is never stored.
STATES = ["new", "requested", "auto_processed", "ticketed", "resolved"]
OPEN_STATES = ("requested", "auto_processed", "ticketed")

_SUBMIT = "self_service_on"

#: Resolving effects, in order: how the request ends, then it is closed (slot, ticket).
_RESOLVE = ["settle_outcome", "close_request"]

CANCELLATION: list[dict[str, Any]] = [
    {"trigger": "submit", "source": "new", "dest": "requested",
     "conditions": [_SUBMIT, "cancellation_offered", "is_subscription", "is_active"]},
    {"trigger": "open_by_agent", "source": "new", "dest": "requested",
     "conditions": ["by_agent", "is_subscription", "not_cancelled"]},
    {"trigger": "auto_process", "source": "requested", "dest": "auto_processed",
     "conditions": ["by_customer", "cancellation_automatic"], "after": ["queue_cancellation"]},
    {"trigger": "open_ticket", "source": "requested", "dest": "ticketed",
     "conditions": ["by_customer", "cancellation_by_request"], "after": ["open_ticket", "email_ticketed"]},
    {"trigger": "complete", "source": "auto_processed", "dest": "resolved",
     "conditions": ["cancels_instantly"], "after": ["cancel_purchase_now", *_RESOLVE, "email_outcome"]},
    {"trigger": "schedule", "source": "auto_processed", "dest": "auto_processed",
     "conditions": ["cancels_at_period_end"], "after": ["schedule_purchase_cancellation", "settle_outcome",
                                                         "email_outcome"]},
    {"trigger": "processor_failed", "source": ["requested", "auto_processed"], "dest": "ticketed",
     "after": ["open_ticket_after_failure", "email_ticketed"]},
    {"trigger": "cancel_now", "source": ["requested", "ticketed", "auto_processed"], "dest": "resolved",
     "conditions": ["by_agent", "not_cancelled"], "after": ["cancel_purchase_now", *_RESOLVE, "email_outcome"]},
    {"trigger": "cancel_at_period_end", "source": ["requested", "ticketed"], "dest": "resolved",
     "conditions": ["by_agent", "is_active", "has_next_payment"],
     "after": ["schedule_purchase_cancellation", *_RESOLVE, "email_outcome"]},
    {"trigger": "decline", "source": "ticketed", "dest": "resolved", "conditions": ["by_agent"],
     "after": [*_RESOLVE, "email_outcome"]},
    {"trigger": "fail", "source": "ticketed", "dest": "resolved", "conditions": ["by_agent", "has_processor_error"],
     "after": [*_RESOLVE, "email_outcome"]},
    {"trigger": "period_end", "source": "auto_processed", "dest": "resolved",
     "conditions": ["is_scheduled", "schedule_due"], "after": ["end_scheduled_purchase", *_RESOLVE, "email_outcome"]},
    # An agent's "cancel at period end" resolved the request already; the date still ends the purchase.
    {"trigger": "period_end", "source": "resolved", "dest": "resolved",
     "conditions": ["is_scheduled", "schedule_due"], "after": ["end_scheduled_purchase", "settle_outcome",
                                                                "email_outcome"]},
    # "Keep my subscription": the customer undoes a scheduled cancellation before its date.
    {"trigger": "resume", "source": "auto_processed", "dest": "resolved",
     "conditions": [_SUBMIT, "is_scheduled", "schedule_not_due"], "after": ["resume_purchase", *_RESOLVE,
                                                                           "email_outcome"]},
    {"trigger": "resume", "source": "resolved", "dest": "resolved",
     "conditions": [_SUBMIT, "is_scheduled", "schedule_not_due"], "after": ["resume_purchase", "settle_outcome",
                                                                           "email_outcome"]},
    # The processor reports the scheduled end undone there (Stripe's own portal or dashboard, "Renew"):
    # the request that scheduled it ends as the customer's own "keep" does, with no step of ours to take.
    {"trigger": "resumed_at_processor", "source": "auto_processed", "dest": "resolved",
     "conditions": ["is_scheduled"], "after": ["resume_purchase", *_RESOLVE, "email_outcome"]},
    {"trigger": "resumed_at_processor", "source": "resolved", "dest": "resolved",
     "conditions": ["is_scheduled"], "after": ["resume_purchase", "settle_outcome", "email_outcome"]},
]

REFUND: list[dict[str, Any]] = [
    {"trigger": "submit", "source": "new", "dest": "requested",
     "conditions": [_SUBMIT, "refunds_offered", "has_remaining", "within_refund_window"]},
    {"trigger": "open_by_agent", "source": "new", "dest": "requested",
     "conditions": ["by_agent", "has_remaining"]},
    {"trigger": "auto_process", "source": "requested", "dest": "auto_processed",
     "conditions": ["by_customer", "refunds_automatic", "within_refund_window"], "after": ["queue_full_refund"]},
    {"trigger": "open_ticket", "source": "requested", "dest": "ticketed",
     "conditions": ["by_customer", "refunds_by_request"], "after": ["open_ticket", "email_ticketed"]},
    {"trigger": "complete", "source": "auto_processed", "dest": "resolved",
     "after": ["record_refund", *_RESOLVE, "email_outcome"]},
    {"trigger": "processor_failed", "source": ["requested", "auto_processed"], "dest": "ticketed",
     "after": ["open_ticket_after_failure", "email_ticketed"]},
    {"trigger": "refund_full", "source": ["requested", "ticketed"], "dest": "resolved",
     "conditions": ["by_agent", "has_remaining"], "after": ["record_refund", *_RESOLVE, "email_outcome"]},
    {"trigger": "refund_partial", "source": ["requested", "ticketed"], "dest": "resolved",
     "conditions": ["by_agent", "partial_amount_valid"], "after": ["record_refund", *_RESOLVE, "email_outcome"]},
    {"trigger": "decline", "source": "ticketed", "dest": "resolved", "conditions": ["by_agent"],
     "after": [*_RESOLVE, "email_outcome"]},
    {"trigger": "fail", "source": "ticketed", "dest": "resolved", "conditions": ["by_agent", "has_processor_error"],
     "after": [*_RESOLVE, "email_outcome"]},
]

DEFINITIONS: dict[str, list[dict[str, Any]]] = {"cancellation": CANCELLATION, "refund": REFUND}

#: How a request ends when an event settles it (a refund's: by what remains of the payment).
OUTCOMES: dict[str, dict[str, str]] = {
    "cancellation": {
        "complete": "cancelled", "schedule": "cancel_scheduled", "cancel_now": "cancelled",
        "cancel_at_period_end": "cancel_scheduled", "period_end": "cancelled",
        "decline": "declined", "fail": "failed", "resume": "resumed", "resumed_at_processor": "resumed",
    },
    "refund": {
        "complete": "refunded", "refund_full": "refunded", "refund_partial": "partially_refunded",
        "decline": "declined", "fail": "failed",
    },
}

#: Events an agent may send, per request type (contract section 5, plus ``fail``).
AGENT_EVENTS: dict[str, tuple[str, ...]] = {
    "cancellation": ("cancel_now", "cancel_at_period_end", "decline", "fail"),
    "refund": ("refund_full", "refund_partial", "decline", "fail"),
}

#: Events whose work is a processor call: fired only once the processor has answered.
PROCESSOR_EVENTS = frozenset({"complete", "schedule", "cancel_now", "cancel_at_period_end", "resume",
                              "refund_full", "refund_partial"})


def build_machine(request_type: str) -> Machine:
    """One machine for a request type, with no model attached."""
    return Machine(
        model=None,
        states=STATES,
        transitions=DEFINITIONS[request_type],
        initial=None,
        auto_transitions=False,
        send_event=False,
        model_attribute="state",
        after_state_change="write_history",
        name=request_type,
    )


MACHINES: dict[str, Machine] = {name: build_machine(name) for name in DEFINITIONS}


def rows(request_type: str, event: str, state: str) -> list[dict[str, Any]]:
    """The table's rows for ``event`` from ``state`` (read from the tables, not from the machine)."""
    return [row for row in DEFINITIONS[request_type]
            if row["trigger"] == event and state in as_list(row["source"])]


def as_list(value: str | list[str] | None) -> list[str]:
    """A row's ``source``, ``conditions`` or ``after`` as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]

"""Firing machine events on a request, and explaining why one is refused.

``fire`` triggers an event through the request type's shared machine;
``refusal`` says, for an event the machine would not take now, which rule
stood in the way, as the error a person reads (``REFUSALS``).
"""
from __future__ import annotations

from functools import cache
from typing import Any, Callable

from ..errors import BillingError, Conflict, InvalidInput, NotAllowed
from ..money import format_money
from .context import RequestContext
from .machines import AGENT_EVENTS, CUSTOMER, MACHINES, as_list, rows

#: condition -> (error class, code, message) told when the condition does not hold.
REFUSALS: dict[str, tuple[type[BillingError], str, str]] = {
    "self_service_on": (NotAllowed, "self_service_disabled",
                        "Self-service billing is not enabled. Please contact support."),
    "cancellation_offered": (NotAllowed, "cancellation_disabled",
                             "Subscriptions cannot be cancelled online. Please contact support to cancel."),
    "refunds_offered": (NotAllowed, "refunds_disabled",
                        "Refunds cannot be requested online. Please contact support."),
    "is_subscription": (Conflict, "not_a_subscription",
                        "This is a one-time purchase: there is no subscription to cancel."),
    "is_active": (Conflict, "not_active",
                  "This subscription is not active: it is already cancelled or scheduled to end."),
    "not_cancelled": (Conflict, "already_cancelled", "This subscription is already cancelled."),
    "has_next_payment": (Conflict, "no_next_payment",
                         "This subscription has no next payment, so there is no period end to cancel at."),
    "has_remaining": (Conflict, "already_refunded", "This payment has already been refunded in full."),
    "within_refund_window": (Conflict, "refund_window_closed",
                             "The refund period for this payment has ended, so a refund cannot be requested."),
    "partial_amount_valid": (InvalidInput, "invalid_amount",
                             "A partial refund must be more than 0 and less than what remains ({remaining}); "
                             "use refund_full to refund all of it."),
    "has_processor_error": (Conflict, "no_processor_error",
                            "Only a request whose processing failed can be closed as failed."),
    "by_agent": (Conflict, "agent_only", "Only an agent can do this."),
    "by_customer": (Conflict, "customer_only", "This step is for customer requests only."),
    "is_scheduled": (Conflict, "not_scheduled", "This request has no scheduled cancellation."),
    "schedule_due": (Conflict, "not_due", "The scheduled cancellation date has not been reached."),
    "schedule_not_due": (Conflict, "cancellation_effective",
                         "The scheduled cancellation has already taken effect, so it cannot be undone."),
}


@cache
def _guards(request_type: str, event: str, state: str) -> tuple[tuple[str, ...], ...] | None:
    """The conditions of each transition ``event`` may take from ``state``; None when there is none.

    Read once from the tables themselves (:func:`.machines.rows`), so checking a condition is one
    plain call (a customer's My Orders asks this for every payment shown).
    """
    candidates = rows(request_type, event, state)
    if not candidates:
        return None
    return tuple(tuple(as_list(row.get("conditions"))) for row in candidates)


def failing_condition(ctx: RequestContext, event: str, **kwargs: Any) -> str | None:
    """None when ``event`` would be taken now; else the first condition that blocks it.

    ``"no_transition"`` when the event does not start from the request's state at all.
    The conditions are the tables' own (see :func:`_guards`), called as the machine calls
    them, with the trigger's keyword arguments; ``fire`` then lets the machine check them
    again as it takes the transition.
    """
    guards = _guards(ctx.request.type, event, ctx.state)
    if guards is None:
        return "no_transition"
    first_failure = None
    for conditions in guards:
        failing = next((name for name in conditions if not getattr(ctx, name)(**kwargs)), None)
        if failing is None:
            return None
        first_failure = first_failure or failing
    return first_failure


def acceptor(ctx: RequestContext, event: str) -> Callable[..., bool]:
    """:func:`accepts` for ``event`` on ``ctx``, its conditions looked up and bound once: for asking one
    question many times on one context whose ``payment`` changes (My Orders asks it for every payment
    shown). ``acceptor(ctx, event)(**kwargs)`` is ``accepts(ctx, event, **kwargs)`` for the context's
    state at the time of the call to ``acceptor``."""
    rows = tuple(tuple(getattr(ctx, name) for name in conditions)
                 for conditions in _guards(ctx.request.type, event, ctx.state) or ())

    def accepted(**kwargs: Any) -> bool:
        return any(all(condition(**kwargs) for condition in row) for row in rows)

    return accepted


def accepts(ctx: RequestContext, event: str, **kwargs: Any) -> bool:
    return failing_condition(ctx, event, **kwargs) is None


def agent_events_accepted(ctx: RequestContext, agent: str) -> list[str]:
    """The agent events the request's machine takes now."""
    if ctx.request.pending_event:
        return []
    return [e for e in AGENT_EVENTS[ctx.request.type] if accepts(ctx, e, actor=agent)]


def refusal(ctx: RequestContext, event: str, **kwargs: Any) -> BillingError | None:
    """The error to give for ``event`` now, or None when the machine takes it."""
    failing = failing_condition(ctx, event, **kwargs)
    if failing is None:
        return None
    if failing == "no_transition":
        return Conflict(
            f"This {ctx.request.type} request is {ctx.state.replace('_', ' ')}; '{event}' does not apply to it now.",
            code="event_not_accepted",
        )
    error_class, code, message = REFUSALS.get(
        failing, (Conflict, "not_allowed_now", "This cannot be done in the request's current state.")
    )
    if "{remaining}" in message:
        payment = ctx.payment
        remaining = format_money(payment.remaining_cents, payment.currency) if payment else "nothing"
        message = message.format(remaining=remaining)
    return error_class(message, code=code)


def fire(ctx: RequestContext, event: str, *, actor: str = CUSTOMER, **kwargs: Any) -> None:
    """Trigger ``event`` on the request; raises the refusal when the machine does not take it."""
    error = refusal(ctx, event, actor=actor, **kwargs)
    if error is not None:
        raise error
    taken = MACHINES[ctx.request.type].events[event].trigger(ctx, event=event, source=ctx.state, actor=actor, **kwargs)
    if not taken:  # pragma: no cover - refusal() has checked the same conditions
        raise Conflict(f"'{event}' was not taken.", code="event_not_accepted")

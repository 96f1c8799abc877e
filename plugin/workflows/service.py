"""The public verbs of cancellation and refund requests.

Customers submit (``submit_cancellation``, ``submit_refund``), agents act
(``apply_agent_event``, ``agent_cancel``, ``agent_refund``), the scheduler
resumes (``resume_pending``). Each is made of the steps of :mod:`.steps`: a
short locked transaction that saves the request and what the processor is to
do, the processor call, and a short locked transaction that records its answer.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from ..db import db, utcnow
from ..errors import BillingError, Conflict, InvalidInput, NotLoggedIn
from ..ledger.models import Payment, Purchase
from ..ledger.settings import cancellation_reasons, get_settings
from ..locking import lock_purchase
from ..money import format_amount, format_money
from ..validation import MAX_MESSAGE_CHARS, free_text, parse_amount
from .context import RequestContext
from .engine import accepts, agent_events_accepted, fire, refusal
from .machines import AGENT_EVENTS, CUSTOMER, PROCESSOR_EVENTS, SYSTEM, is_agent
from .models import BillingRequest, open_slot
from .steps import (
    context_for,
    get_request,
    new_request,
    open_request,
    reload,
    resume_pending,
    run_pending,
    scheduled_request,
    transaction,
)

__all__ = ["agent_cancel", "agent_refund", "apply_agent_event", "available_events", "get_request",
           "keep_subscription", "resume_pending", "run_pending", "submit_cancellation", "submit_refund"]

# -- customers ----------------------------------------------------------------------------


#: Turns the machine's refusal of a customer's ``submit`` into the error the caller's door gives.
Explain = Callable[[BillingError], BillingError]


def submit_cancellation(purchase: Purchase, actor: str = CUSTOMER, reason: str = "", *,
                        reason_choice: str | None = None, explain: Explain | None = None) -> BillingRequest:
    """A customer asks to cancel a subscription. Returns the request (a repeat returns the open one).

    ``reason_choice`` is one of the merchant's reasons (:func:`plugin.ledger.settings.cancellation_reasons`),
    kept on the request and counted by the cancellations report; anything else is a 400.
    """
    if reason_choice is not None and reason_choice not in cancellation_reasons():
        raise InvalidInput("Pick one of the reasons offered, or leave the choice empty.",
                           fields={"reason_choice": "not one of the merchant's cancellation reasons"})
    return _submit("cancellation", purchase.id, None, reason, explain, reason_choice)


def submit_refund(payment: Payment, actor: str = CUSTOMER, reason: str = "", *,
                  explain: Explain | None = None) -> BillingRequest:
    """A customer asks for a refund of a payment's full remaining amount."""
    return _submit("refund", payment.purchase_id, payment.id, reason, explain)


def _submit(request_type: str, purchase_id: int, payment_id: int | None, reason: str,
            explain: Explain | None, reason_choice: str | None = None) -> BillingRequest:
    """Under the purchase's lock: the open request of this kind if there is one, else a new one that the
    machine takes through ``submit`` and on (processed automatically, or a ticket: the machine's choice)."""
    reason = free_text(reason, "reason")
    settings = get_settings()
    slot = open_slot(request_type, purchase_id, payment_id)
    try:
        purchase = lock_purchase(purchase_id)
        existing = open_request(slot)
        if existing is not None:
            db.session.commit()
            return existing
        payment = reload(Payment, payment_id)
        request = new_request(request_type, purchase, payment, CUSTOMER, reason)
        request.reason_choice = reason_choice
        ctx = RequestContext(request, purchase, payment, settings, utcnow())
        error = refusal(ctx, "submit", actor=CUSTOMER)
        if error is not None:
            raise explain(error) if explain else error
        fire(ctx, "submit", actor=CUSTOMER, note=request.reason)
        fire(ctx, "auto_process" if accepts(ctx, "auto_process", actor=SYSTEM) else "open_ticket", actor=SYSTEM)
        db.session.commit()
    except IntegrityError:  # another submission took the slot first: answer with its request
        db.session.rollback()
        existing = open_request(slot)
        if existing is None:
            raise
        return existing
    except BaseException:
        db.session.rollback()
        raise
    if request.pending_event:
        return run_pending(request.id)
    return request


#: Why "Keep my subscription" is refused, given the purchase, its scheduling request (or None) and the
#: machine's refusal (None while a step is in flight): the caller's door words it.
ExplainResume = Callable[[Purchase, BillingRequest | None, BillingError | None], BillingError]


def keep_subscription(purchase: Purchase, explain: ExplainResume | None = None) -> BillingRequest:
    """The customer undoes a scheduled cancellation before its date ("Keep my subscription").

    Under the purchase's lock the request that scheduled it must take ``resume`` (the machine's
    conditions); its processor step is saved, then carried out with ``<request>:resume`` as the key.
    A second resume while one is in flight, or once it is done, is refused (409): one processor
    call, one email. A processor failure leaves the schedule as it was and raises what to tell.
    """
    with transaction():
        purchase = lock_purchase(purchase.id)
        request = scheduled_request(purchase.id)
        ctx = context_for(request, purchase) if request is not None else None
        error = refusal(ctx, "resume", actor=CUSTOMER) if ctx is not None else None
        if ctx is None or ctx.request.pending_event or error is not None:
            raise (explain or _no_resume)(purchase, request, error)
        ctx.queue_step("resume", CUSTOMER)
    return run_pending(ctx.request.id)


def _no_resume(_purchase: Purchase, _request: BillingRequest | None, error: BillingError | None) -> BillingError:
    return error or Conflict("There is no scheduled cancellation to undo now.", code="nothing_to_resume")


# -- agents ---------------------------------------------------------------------------------


def available_events(request: BillingRequest, agent: str = "agent") -> list[str]:
    """The agent events the request's machine accepts now."""
    purchase = reload(Purchase, request.purchase_id)
    return agent_events_accepted(context_for(request, purchase), agent)


def apply_agent_event(
    request: BillingRequest, event: str, agent: str, amount: Any = None, message: str | None = None
) -> BillingRequest:
    """An agent sends ``event`` to a request (contract section 5)."""
    if not is_agent(agent):
        raise NotLoggedIn("An agent must be signed in.")
    message = free_text(message, "message", max_chars=MAX_MESSAGE_CHARS) or None
    amount_cents = parse_amount(amount) if amount is not None else None
    if event == "refund_partial" and amount_cents is None:
        raise InvalidInput("A partial refund needs an amount.", code="invalid_amount",
                           fields={"amount": "required for refund_partial"})
    with transaction():
        purchase = lock_purchase(request.purchase_id)
        request = reload(BillingRequest, request.id)
        _agent_event_locked(request, purchase, event, agent, amount_cents, message)
    return run_pending(request.id) if request.pending_event else request


def _agent_event_locked(request: BillingRequest, purchase: Purchase, event: str, agent: str,
                        amount_cents: int | None, message: str | None) -> None:
    if request.pending_event:
        raise Conflict("The processor is still working on this request; reload it in a moment.",
                       code="request_busy", accepted=[])
    ctx = context_for(request, purchase)
    accepted = agent_events_accepted(ctx, agent)
    if event not in AGENT_EVENTS[request.type] or event not in accepted:
        listed = ", ".join(accepted) if accepted else "none"
        raise Conflict(f"'{event}' cannot be applied to this request now. Accepted now: {listed}.",
                       code="event_not_accepted", accepted=accepted)
    kwargs: dict[str, Any] = {}
    if event == "refund_partial":
        kwargs["amount_cents"] = amount_cents
    error = refusal(ctx, event, actor=agent, **kwargs)
    if error is not None:
        raise error
    if event in PROCESSOR_EVENTS:
        if event == "refund_full":
            amount_cents = ctx.payment.remaining_cents
        request.pending_event = event
        request.pending_amount_cents = amount_cents if request.type == "refund" else None
        request.pending_actor = agent
        request.pending_message = message
        request.pending_since = utcnow()
    else:
        fire(ctx, event, actor=agent, message=message, note=message or "")


def _refund_event_for(payment: Payment, amount_cents: int) -> str:
    """Under the purchase lock: the event that refunds exactly ``amount_cents``, or a 409.

    Decided here, not before the lock: a refund that finished in between (another agent's, an
    automatic one) has lowered what remains, and the amount the agent asked for is the amount
    refunded or nothing is.
    """
    remaining = payment.remaining_cents
    if amount_cents > remaining:
        raise Conflict(
            f"{format_money(amount_cents, payment.currency)} no longer fits payment {payment.payment_id}: another "
            f"refund finished first and {format_money(remaining, payment.currency)} remains. Nothing was refunded; "
            "check the payment and send the amount again.",
            code="amount_exceeds_remaining", remaining=format_amount(remaining), currency=payment.currency)
    return "refund_full" if amount_cents == remaining else "refund_partial"


def _agent_direct(request_type: str, purchase_id: int, payment_id: int | None, agent: str, event: str | None,
                  amount_cents: int | None, message: str | None) -> BillingRequest:
    """An agent's manual action outside any customer request, through the same machine.

    ``event`` None: a refund of exactly ``amount_cents``, full or partial as it turns out under the lock.
    """
    if not is_agent(agent):
        raise NotLoggedIn("An agent must be signed in.")
    message = free_text(message, "message", max_chars=MAX_MESSAGE_CHARS) or None
    with transaction():
        purchase = lock_purchase(purchase_id)
        if event is None:
            event = _refund_event_for(reload(Payment, payment_id), amount_cents)
        slot = open_slot(request_type, purchase_id, payment_id)
        request = open_request(slot)
        if request is None:
            payment = reload(Payment, payment_id)
            request = new_request(request_type, purchase, payment, agent, message or "")
            fire(RequestContext(request, purchase, payment, get_settings(), utcnow()),
                 "open_by_agent", actor=agent, note=message or "")
        _agent_event_locked(request, purchase, event, agent, amount_cents, message)
    return run_pending(request.id) if request.pending_event else request


def agent_cancel(purchase: Purchase, agent: str, when: str, message: str | None = None) -> BillingRequest:
    """An agent cancels a subscription now or at the end of its paid period, whatever the portal settings."""
    if when not in ("now", "period_end"):
        raise InvalidInput('"when" must be "now" or "period_end".', fields={"when": "must be now or period_end"})
    event = "cancel_now" if when == "now" else "cancel_at_period_end"
    return _agent_direct("cancellation", purchase.id, None, agent, event, None, message)


def agent_refund(payment: Payment, agent: str, amount: Any, message: str | None = None) -> BillingRequest:
    """An agent refunds all or part of a payment, whatever the portal settings."""
    amount_cents = parse_amount(amount)
    fresh = reload(Payment, payment.id)
    if amount_cents > fresh.remaining_cents:
        raise InvalidInput("The amount is more than what remains of this payment.", code="invalid_amount",
                           fields={"amount": "more than what remains"})
    return _agent_direct("refund", payment.purchase_id, payment.id, agent, None, amount_cents, message)


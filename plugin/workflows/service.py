"""The public verbs of cancellation and refund requests.

Customers submit (``submit_cancellation``, ``submit_refund``), agents act
(``apply_agent_event``, ``agent_cancel``, ``agent_refund``), the scheduler
resumes (``run_pending``). Every step runs in two short transactions around the
processor call, each starting with the purchase's row lock:

1. lock, check the rules through the machine, save the request and what the
   processor is to do (``pending_event``), commit;
2. call the processor with the request's public id as idempotency key;
3. lock, fire the pending event with the processor's answer (ledger rows,
   audit row, ticket, email), commit.

A crash between 2 and 3 leaves ``pending_event`` set; running it again calls
the processor with the same key, which answers with the first result, so money
moves once. A processor failure moves the request to a ticket with the error.
"""
from __future__ import annotations

import logging
import secrets
import time
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..cardmask import mask_card_numbers
from ..db import db, utcnow
from ..errors import BillingError, Conflict, InvalidInput, NotLoggedIn, Unavailable
from ..ledger.models import Payment, Purchase
from ..ledger.service import get_settings
from ..locking import lock_purchase
from ..money import format_amount, format_money, to_cents
from ..payments import get_gateway
from ..payments.interface import GatewayError, ProcessorOutage
from .context import CUSTOMER, SYSTEM, RequestContext
from .engine import agent_events_accepted, fire, refusal
from .machines import AGENT_EVENTS, PROCESSOR_EVENTS
from .models import BillingRequest, RequestEvent

log = logging.getLogger(__name__)


@contextmanager
def _step() -> Iterator[None]:
    """One transaction of a step: committed when the block ends, rolled back on any error."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def _slot(request_type: str, purchase_id: int, payment_id: int | None) -> str:
    return f"refund:{payment_id}" if request_type == "refund" else f"cancellation:{purchase_id}"


def _open_request(slot: str) -> BillingRequest | None:
    return db.session.execute(
        select(BillingRequest).where(BillingRequest.open_slot == slot).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _reload(model: Any, ident: int | None) -> Any:
    if ident is None:
        return None
    return db.session.get(model, ident, populate_existing=True)


def _context(request: BillingRequest, purchase: Purchase, now: datetime | None = None) -> RequestContext:
    payment = _reload(Payment, request.payment_id)
    return RequestContext(request, purchase, payment, get_settings(), now or utcnow())


def _new_request(request_type: str, purchase: Purchase, payment: Payment | None, actor: str, reason: str) -> BillingRequest:
    request = BillingRequest(
        public_id="req_" + secrets.token_hex(12),
        type=request_type,
        lead_id=purchase.lead_id,
        purchase_id=purchase.id,
        payment_id=payment.id if payment else None,
        state="new",
        open_slot=_slot(request_type, purchase.id, payment.id if payment else None),
        created_by=actor,
        reason=(reason or "").strip()[:2000],
        # What a refund request asks for: what remains of the payment (an agent may refund less).
        amount_cents=payment.remaining_cents if payment else None,
        currency=payment.currency if payment else purchase.currency,
        created_at=utcnow(),
    )
    db.session.add(request)
    return request


def _free_text(value: str | None, field: str) -> str | None:
    """Free text as it is kept: card numbers masked (:mod:`plugin.cardmask`), a NUL character refused.

    Every reason and agent message enters here before it is stored, emailed or logged. NUL is
    refused because PostgreSQL text cannot hold it.
    """
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput("Text may not contain NUL characters (U+0000); remove them and send it again.",
                           fields={field: "contains a NUL character"})
    return mask_card_numbers(value) if isinstance(value, str) else value


def _is_agent(actor: str) -> bool:
    return bool(actor) and actor not in (CUSTOMER, SYSTEM)


# -- customers ----------------------------------------------------------------------------


def submit_cancellation(purchase: Purchase, actor: str = CUSTOMER, reason: str = "") -> BillingRequest:
    """A customer asks to cancel a subscription. Returns the request (a repeat returns the open one)."""
    return _submit("cancellation", purchase.id, None, reason)


def submit_refund(payment: Payment, actor: str = CUSTOMER, reason: str = "") -> BillingRequest:
    """A customer asks for a refund of a payment's full remaining amount."""
    return _submit("refund", payment.purchase_id, payment.id, reason)


def _submit(request_type: str, purchase_id: int, payment_id: int | None, reason: str) -> BillingRequest:
    reason = _free_text(reason, "reason")
    settings = get_settings()
    slot = _slot(request_type, purchase_id, payment_id)
    try:
        purchase = lock_purchase(purchase_id)
        existing = _open_request(slot)
        if existing is not None:
            db.session.commit()
            return existing
        payment = _reload(Payment, payment_id)
        request = _new_request(request_type, purchase, payment, CUSTOMER, reason)
        ctx = RequestContext(request, purchase, payment, settings, utcnow())
        fire(ctx, "submit", actor=CUSTOMER, note=request.reason)
        mode = settings.refund_mode if request_type == "refund" else settings.cancellation_mode
        fire(ctx, "auto_process" if mode == "automatic" else "open_ticket", actor=SYSTEM)
        db.session.commit()
    except IntegrityError:  # another submission took the slot first: answer with its request
        db.session.rollback()
        existing = _open_request(slot)
        if existing is None:
            raise
        return existing
    except BaseException:
        db.session.rollback()
        raise
    if request.pending_event:
        return run_pending(request.id)
    return request


# -- the processor step ---------------------------------------------------------------------


def idempotency_key(request: BillingRequest, event: str) -> str:
    """The processor's idempotency key of a request's step: the request's public id, so a repeated
    step (a crash, a lost answer) is one call at the processor.

    A cancellation may take two different steps: scheduled at the period end (automatically), then
    ended now by an agent. The immediate one has its own key, or the processor would answer it with
    the schedule's result and end nothing now.
    """
    if request.type == "cancellation" and event in ("complete", "cancel_now"):
        return f"{request.public_id}:now"
    return request.public_id


def run_pending(request_id: int) -> BillingRequest:
    """Carry out a request's pending processor step and fire its event. Safe to repeat."""
    request = _reload(BillingRequest, request_id)
    event = request.pending_event
    if not event:
        return request
    purchase = _reload(Purchase, request.purchase_id)
    payment = _reload(Payment, request.payment_id)
    amount = request.pending_amount_cents
    key = idempotency_key(request, event)
    db.session.commit()  # hold no lock while the processor works
    gateway = get_gateway()
    try:
        if request.type == "refund":
            result = gateway.refund(payment, amount, key)
            outcome: dict[str, Any] = {"amount_cents": result.amount_cents, "reference": result.reference}
        else:
            at_period_end = event in ("schedule", "cancel_at_period_end")
            cancel = gateway.cancel_subscription(purchase, at_period_end, key)
            outcome = {"reference": cancel.reference}
    except GatewayError as err:
        return _record_processor_failure(request_id, event, err)
    return _record_outcome(request_id, event, outcome)


#: Tries at recording what the processor did before the step is left to ``tick``, and the pause
#: before each retry (seconds): a database that hiccups (a lock timeout, a dropped connection) gets
#: a moment to come back while the customer waits for the answer.
RECORD_RETRY_PAUSES = (0.2, 0.5, 1.0)


def _record_outcome(request_id: int, event: str, outcome: dict[str, Any]) -> BillingRequest:
    """Record a step the processor has done, retrying at once when the database fails.

    The money has moved by now, so a database error must not read as "internal error". Each retry
    records the same outcome (the step stays pending until one succeeds, so nothing is done twice);
    if the database still fails, the step is left pending for ``tick`` (which asks the processor
    again with the same idempotency key: the same refund, never a second) and the answer says so.
    """
    for pause in (*RECORD_RETRY_PAUSES, None):
        try:
            return _finish_pending(request_id, event, outcome)
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("Request #%s: the processor did %r but recording it failed (%s)%s", request_id, event,
                        exc.__class__.__name__, f"; retrying in {pause}s" if pause is not None else "")
            if pause is None:
                break
            time.sleep(pause)
    done = "refund was made" if outcome.get("amount_cents") is not None else "cancellation was made"
    raise Unavailable(
        f"The {done} at the payment processor, but our database did not answer while recording it. "
        "It is being recorded and will show here within a few minutes; nothing will be done twice, "
        "so there is no need to ask again.", code="recording_delayed")


def _lock_pending(request_id: int, event: str) -> tuple[BillingRequest, Purchase] | None:
    """Lock the request's purchase; None when its pending ``event`` was finished meanwhile."""
    request = _reload(BillingRequest, request_id)
    purchase = lock_purchase(request.purchase_id)
    request = _reload(BillingRequest, request_id)
    return None if request.pending_event != event else (request, purchase)


def _take_pending(request: BillingRequest) -> tuple[str, str | None]:
    """Clear the request's pending step; returns who asked for it and their message."""
    actor, message = request.pending_actor or SYSTEM, request.pending_message
    request.pending_event = request.pending_amount_cents = None
    request.pending_actor = request.pending_message = request.pending_since = None
    return actor, message


def _finish_pending(request_id: int, event: str, outcome: dict[str, Any]) -> BillingRequest:
    with _step():
        locked = _lock_pending(request_id, event)
        if locked is None:  # finished by someone else meanwhile
            return _reload(BillingRequest, request_id)
        request, purchase = locked
        actor, message = _take_pending(request)
        ctx = _context(request, purchase)
        request.error = None
        error = refusal(ctx, event, actor=actor, **outcome)
        if error is None:
            fire(ctx, event, actor=actor, message=message, note=message or "", **outcome)
        else:
            # The processor did it but the request moved on (or the rules it was decided by changed,
            # e.g. the price point's cancellation timing): keep the fact and hand it to an agent, so
            # the request does not wait for a step that will never come.
            request.error = f"The processor confirmed '{event}' but the request no longer accepts it: {error.message}"
            _hand_to_agent(ctx, actor)
    if error is not None:
        raise error
    return request


def _hand_to_agent(ctx: RequestContext, actor: str) -> None:
    """After a processor step went wrong: a request still waiting for the processor becomes a ticket
    (``processor_failed``); any other keeps its state, with the error in its history.

    A scheduled cancellation (``auto_processed`` with outcome ``cancel_scheduled``) keeps its state,
    so its date still ends it; the agent whose "cancel now" failed is told and may try again.
    """
    request = ctx.request
    if request.outcome is None and request.state in ("requested", "auto_processed"):
        fire(ctx, "processor_failed", actor=SYSTEM, note=request.error or "")
        return
    db.session.add(RequestEvent(request_id=request.id, from_state=request.state, to_state=request.state,
                                event="processor_error", at=ctx.now, actor=actor, note=request.error or ""))


def _record_processor_failure(request_id: int, event: str, err: GatewayError) -> BillingRequest:
    with _step():
        locked = _lock_pending(request_id, event)
        if locked is None:
            return _reload(BillingRequest, request_id)
        request, purchase = locked
        actor, _message = _take_pending(request)
        request.error = f"{err.code}: {err.message}"
        _hand_to_agent(_context(request, purchase), actor)
    if _is_agent(actor):
        if isinstance(err, ProcessorOutage):
            raise Unavailable(
                f"The payment processor is not answering ({err.message}). Nothing was charged or refunded; "
                "try the action again in a moment.",
                code="processor_unavailable",
            )
        raise Conflict(f"The payment processor refused this: {err.message}", code=err.code)
    return request


# -- agents ---------------------------------------------------------------------------------


def available_events(request: BillingRequest, agent: str = "agent") -> list[str]:
    """The agent events the request's machine accepts now."""
    purchase = _reload(Purchase, request.purchase_id)
    return agent_events_accepted(_context(request, purchase), agent)


def parse_amount(amount: Any, field: str = "amount") -> int:
    """Cents of an amount given by a person: a decimal string (or Decimal) with at most two places."""
    if isinstance(amount, (float, bool)) or not isinstance(amount, (str, Decimal, int)):
        raise InvalidInput('Give the amount as a decimal string, e.g. "10.00".',
                           code="invalid_amount", fields={field: "must be a decimal string"})
    try:
        cents = to_cents(amount)
    except ValueError as err:
        raise InvalidInput(f"The amount is not valid: {err}.", code="invalid_amount", fields={field: str(err)}) from None
    if cents <= 0:
        raise InvalidInput("The amount must be more than 0.", code="invalid_amount", fields={field: "must be more than 0"})
    return cents


def apply_agent_event(
    request: BillingRequest, event: str, agent: str, amount: Any = None, message: str | None = None
) -> BillingRequest:
    """An agent sends ``event`` to a request (contract section 5)."""
    if not _is_agent(agent):
        raise NotLoggedIn("An agent must be signed in.")
    message = _free_text(message, "message")
    amount_cents = parse_amount(amount) if amount is not None else None
    if event == "refund_partial" and amount_cents is None:
        raise InvalidInput("A partial refund needs an amount.", code="invalid_amount",
                           fields={"amount": "required for refund_partial"})
    with _step():
        purchase = lock_purchase(request.purchase_id)
        request = _reload(BillingRequest, request.id)
        _agent_event_locked(request, purchase, event, agent, amount_cents, message)
    return run_pending(request.id) if request.pending_event else request


def _agent_event_locked(request: BillingRequest, purchase: Purchase, event: str, agent: str,
                        amount_cents: int | None, message: str | None) -> None:
    if request.pending_event:
        raise Conflict("The processor is still working on this request; reload it in a moment.",
                       code="request_busy", accepted=[])
    ctx = _context(request, purchase)
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
    if not _is_agent(agent):
        raise NotLoggedIn("An agent must be signed in.")
    message = _free_text(message, "message")
    with _step():
        purchase = lock_purchase(purchase_id)
        if event is None:
            event = _refund_event_for(_reload(Payment, payment_id), amount_cents)
        slot = _slot(request_type, purchase_id, payment_id)
        request = _open_request(slot)
        if request is None:
            payment = _reload(Payment, payment_id)
            request = _new_request(request_type, purchase, payment, agent, message or "")
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
    fresh = _reload(Payment, payment.id)
    if amount_cents > fresh.remaining_cents:
        raise InvalidInput("The amount is more than what remains of this payment.", code="invalid_amount",
                           fields={"amount": "more than what remains"})
    return _agent_direct("refund", payment.purchase_id, payment.id, agent, None, amount_cents, message)


# -- lookups ----------------------------------------------------------------------------------


def get_request(public_id: str) -> BillingRequest | None:
    return db.session.execute(
        select(BillingRequest).where(BillingRequest.public_id == public_id)
    ).scalar_one_or_none()


def resume_pending(older_than: datetime) -> list[BillingRequest]:
    """Finish processor steps left pending (a crash, a lost answer) since before ``older_than``."""
    ids = db.session.execute(
        select(BillingRequest.id).where(BillingRequest.pending_event.is_not(None),
                                        BillingRequest.pending_since <= older_than)
    ).scalars().all()
    done = []
    for request_id in ids:
        try:
            done.append(run_pending(request_id))
        except BillingError:
            continue
    return done

"""The two-transaction step every request verb is made of, and the processor step between them.

Each step runs in two short transactions around the processor call, each starting with the
purchase's row lock:

1. lock, check the rules through the machine, save the request and what the
   processor is to do (``pending_event``), commit;
2. call the processor (:mod:`plugin.payments.processor`, the one door to it) with the
   request's public id as idempotency key, holding no transaction;
3. lock, fire the pending event with the processor's answer (ledger rows, audit row,
   ticket, email), commit.

A crash between 2 and 3 leaves ``pending_event`` set; running it again (``tick``) calls
the processor with the same key, which answers with the first result, so money moves
once. A processor failure moves the request to a ticket with the error.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..db import db, utcnow
from ..errors import BillingError, Unavailable
from ..ledger.models import Payment, Purchase
from ..ledger.settings import get_settings
from ..locking import lock_purchase
from ..payments import processor
from ..payments.interface import GatewayError
from .context import RequestContext
from .engine import fire, refusal
from .machines import SYSTEM, is_agent
from .models import BillingRequest, RequestEvent, open_slot

log = logging.getLogger(__name__)

#: What a failed "Keep my subscription" changed: nothing.
RESUME_NOT_DONE = "Nothing was changed: your subscription is still set to end on the date shown"

@contextmanager
def transaction() -> Iterator[None]:
    """One transaction of a step: committed when the block ends, rolled back on any error."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def open_request(slot: str) -> BillingRequest | None:
    return db.session.execute(
        select(BillingRequest).where(BillingRequest.open_slot == slot).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def reload(model: Any, ident: int | None) -> Any:
    if ident is None:
        return None
    return db.session.get(model, ident, populate_existing=True)


def context_for(request: BillingRequest, purchase: Purchase, now: datetime | None = None) -> RequestContext:
    payment = reload(Payment, request.payment_id)
    return RequestContext(request, purchase, payment, get_settings(), now or utcnow())


def new_request(request_type: str, purchase: Purchase, payment: Payment | None, actor: str, reason: str) -> BillingRequest:
    request = BillingRequest(
        public_id="req_" + secrets.token_hex(12),
        type=request_type,
        lead_id=purchase.lead_id,
        purchase_id=purchase.id,
        payment_id=payment.id if payment else None,
        state="new",
        open_slot=open_slot(request_type, purchase.id, payment.id if payment else None),
        created_by=actor,
        reason=(reason or "").strip()[:2000],
        # What a refund request asks for: what remains of the payment (an agent may refund less).
        amount_cents=payment.remaining_cents if payment else None,
        currency=payment.currency if payment else purchase.currency,
        created_at=utcnow(),
    )
    db.session.add(request)
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
    if event == "resume":  # undoing the schedule is a third step, never answered with the schedule's result
        return f"{request.public_id}:resume"
    return request.public_id


def run_pending(request_id: int) -> BillingRequest:
    """Carry out a request's pending processor step and fire its event. Safe to repeat."""
    request = reload(BillingRequest, request_id)
    event = request.pending_event
    if not event:
        return request
    purchase = reload(Purchase, request.purchase_id)
    key = idempotency_key(request, event)
    ids = {"purchase_id": purchase.id, "request_id": request.id}
    if request.type == "refund":
        payment = reload(Payment, request.payment_id)
        order: Any = processor.refund_order(purchase, payment, request.pending_amount_cents, key)
        ids["payment_id"] = payment.id
    elif event == "resume":
        order = processor.resume_order(purchase, key)
    else:
        order = processor.cancel_order(purchase, event in ("schedule", "cancel_at_period_end"), key)
    db.session.commit()  # hold no lock while the processor works
    try:
        if request.type == "refund":
            result = processor.refund(order, **ids)
            outcome: dict[str, Any] = {"amount_cents": result.amount_cents, "reference": result.reference}
        elif event == "resume":
            outcome = {"reference": processor.resume_subscription(order, **ids).reference}
        else:
            outcome = {"reference": processor.cancel_subscription(order, **ids).reference}
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
    request = reload(BillingRequest, request_id)
    purchase = lock_purchase(request.purchase_id)
    request = reload(BillingRequest, request_id)
    return None if request.pending_event != event else (request, purchase)


def _take_pending(request: BillingRequest) -> tuple[str, str | None]:
    """Clear the request's pending step; returns who asked for it and their message."""
    actor, message = request.pending_actor or SYSTEM, request.pending_message
    request.pending_event = request.pending_amount_cents = None
    request.pending_actor = request.pending_message = request.pending_since = None
    return actor, message


def _finish_pending(request_id: int, event: str, outcome: dict[str, Any]) -> BillingRequest:
    with transaction():
        locked = _lock_pending(request_id, event)
        if locked is None:  # finished by someone else meanwhile
            return reload(BillingRequest, request_id)
        request, purchase = locked
        actor, message = _take_pending(request)
        ctx = context_for(request, purchase)
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
    _note_processor_error(request, actor, request.error or "", ctx.now)


def _note_processor_error(request: BillingRequest, actor: str, note: str, at: datetime | None = None) -> None:
    """The failed attempt in the request's history; its state stays as it was."""
    db.session.add(RequestEvent(request_id=request.id, from_state=request.state, to_state=request.state,
                                event="processor_error", at=at or utcnow(), actor=actor, note=note))


def _record_processor_failure(request_id: int, event: str, err: GatewayError) -> BillingRequest:
    with transaction():
        locked = _lock_pending(request_id, event)
        if locked is None:
            return reload(BillingRequest, request_id)
        request, purchase = locked
        actor, _message = _take_pending(request)
        said = f"{err.code}: {err.message}"
        if event == "resume":  # the customer is told now and may try again: the schedule stands, no ticket
            _note_processor_error(request, actor, said)
        else:
            request.error = said
            _hand_to_agent(context_for(request, purchase), actor)
    if event == "resume":
        raise processor.user_error(err, nothing_done=RESUME_NOT_DONE, for_customer=not is_agent(actor))
    if is_agent(actor):
        raise processor.user_error(err, nothing_done="Nothing was charged or refunded", for_customer=False)
    return request


# -- lookups ----------------------------------------------------------------------------------


def get_request(public_id: str) -> BillingRequest | None:
    return db.session.execute(
        select(BillingRequest).where(BillingRequest.public_id == public_id)
    ).scalar_one_or_none()


def scheduled_request(purchase_id: int) -> BillingRequest | None:
    """The purchase's cancellation request that scheduled its end (the latest), if any."""
    return db.session.execute(
        select(BillingRequest)
        .where(BillingRequest.purchase_id == purchase_id, BillingRequest.type == "cancellation",
               BillingRequest.outcome == "cancel_scheduled")
        .order_by(BillingRequest.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
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

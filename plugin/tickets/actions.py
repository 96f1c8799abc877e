"""What an agent does, as plain functions the agent API and the desk pages both call.

Each function checks what it is given (raising the domain errors of
:mod:`plugin.errors`), hands the work to the request machines of
:mod:`plugin.workflows.service`, and commits. A step another agent made first,
or that the machine does not accept now, comes back as a 409 listing what the
machine accepts instead; nothing is half-done.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from ..db import db
from ..errors import (
    BillingError,
    Conflict,
    InvalidInput,
    NotFound,
    NotLoggedIn,
    Unavailable,
)
from ..ledger.models import Payment, Purchase
from ..money import format_amount, from_cents
from ..workflows import service as workflows
from ..workflows.models import BillingRequest
from .models import Ticket
from .service import get_ticket, record_agent_reply

NO_AGENT_MESSAGE = "Sign in to the helpdesk as an agent to use the agent desk and the agent API."


# -- who is acting ---------------------------------------------------------------------


def current_agent() -> str | None:
    """The signed-in agent's email from the host's ``agent_loader``, or None."""
    loader = current_app.extensions["self_billing"].agent_loader
    if loader is None:
        return None
    agent = loader()
    if not isinstance(agent, str) or not agent.strip():
        return None
    return agent.strip()


def require_agent(message: str = NO_AGENT_MESSAGE) -> str:
    """The signed-in agent's email, or :class:`NotLoggedIn` (401, ``agent_required``) saying ``message``.

    The one agent check of every agent door: the agent API, the desk, the agent's invoice download.
    """
    agent = current_agent()
    if agent is None:
        raise NotLoggedIn(message, code="agent_required")
    return agent


# -- lookups ---------------------------------------------------------------------------


def request_of(ticket: Ticket) -> BillingRequest | None:
    """The request the ticket was opened for (or None)."""
    if ticket.request_id is None:
        return None
    return db.session.get(BillingRequest, ticket.request_id)


def available_events(request: Any) -> list[str]:
    """The events the request's machine accepts now from an agent (none without a request)."""
    if request is None:
        return []
    return list(workflows.available_events(request))


def get_purchase_by_order_id(order_id: str) -> Purchase:
    purchase = db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one_or_none()
    if purchase is None:
        raise NotFound(f"There is no order {order_id!r}; check the Order ID in the lead's Orders tab.",
                       code="order_not_found")
    return purchase


def get_payment_by_id(payment_id: str) -> Payment:
    payment = db.session.execute(select(Payment).where(Payment.payment_id == payment_id)).scalar_one_or_none()
    if payment is None:
        raise NotFound(f"There is no payment {payment_id!r}; check the payment ID in the order's history.",
                       code="payment_not_found")
    return payment


def remaining_of(request: Any) -> tuple[int, str] | None:
    """What remains to refund on a refund request's payment: (cents, currency), else None."""
    if request is None or request.type != "refund" or request.payment_id is None:
        return None
    payment = db.session.get(Payment, request.payment_id)
    return (payment.remaining_cents, payment.currency) if payment is not None else None


# -- checks ----------------------------------------------------------------------------


def validate_refund_amount(payment: Payment, amount_cents: int, *, partial: bool) -> None:
    """A refund of ``amount_cents`` fits what remains of ``payment`` (partial: strictly less)."""
    remaining = payment.remaining_cents
    shown = f"{format_amount(remaining)} {payment.currency}"
    if remaining <= 0:
        raise Conflict(f"Payment {payment.payment_id} is already fully refunded; nothing remains.",
                       code="nothing_to_refund")
    if amount_cents <= 0:
        raise InvalidInput("The amount must be more than 0.", fields={"amount": "must be more than 0"})
    if amount_cents > remaining:
        raise InvalidInput(
            f"{format_amount(amount_cents)} {payment.currency} is more than remains on payment "
            f"{payment.payment_id} ({shown}).",
            fields={"amount": f"at most {format_amount(remaining)}"},
            remaining=format_amount(remaining),
        )
    if partial and amount_cents == remaining:
        raise InvalidInput(
            f"{shown} is everything that remains; a partial refund must be less. Use refund_full instead.",
            fields={"amount": f"less than {format_amount(remaining)}"},
            remaining=format_amount(remaining),
        )


def not_accepted(event: str, accepted: list[str]) -> Conflict:
    """The 409 for an event the machine does not accept now."""
    if accepted:
        listed = ", ".join(accepted)
        message = f"The request does not accept {event!r} now. It accepts: {listed}."
    else:
        message = f"The request does not accept {event!r} now; it is resolved and accepts no more events."
    return Conflict(message, code="event_not_accepted", accepted=accepted)


def _database_error(exc: IntegrityError | OperationalError) -> BillingError:
    """What a person is told when the database refused a write: a lost race is a 409, a dead database a 503."""
    if isinstance(exc, IntegrityError):
        return Conflict("Another agent changed this at the same moment. Reload the ticket and look again.",
                        code="concurrent_change")
    if "locked" in str(exc).lower() or "deadlock" in str(exc).lower():
        return Conflict("Another agent is changing this right now. Reload the ticket and look again.",
                        code="concurrent_change")
    return Unavailable("The database did not answer; try again in a moment.")


def _commit_or_conflict() -> None:
    """Commit, or roll back and raise what the person is told (see :func:`_database_error`)."""
    try:
        db.session.commit()
    except (IntegrityError, OperationalError) as exc:
        db.session.rollback()
        raise _database_error(exc) from None


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a workflow function; roll back on any error so nothing is half-done."""
    try:
        result = fn(*args, **kwargs)
    except (IntegrityError, OperationalError) as exc:
        db.session.rollback()
        raise _database_error(exc) from None
    except Exception:
        db.session.rollback()
        raise
    _commit_or_conflict()
    return result


# -- the verbs -------------------------------------------------------------------------


def apply_ticket_event(ticket_id: int, agent: str, event: str, amount_cents: int | None = None,
                       message: str | None = None) -> Ticket:
    """Send ``event`` to the machine of the ticket's request, as ``agent``."""
    ticket = get_ticket(ticket_id)
    request = request_of(ticket)
    accepted = available_events(request)
    if request is None or event not in accepted:
        raise not_accepted(event, accepted)
    if event == "refund_partial":
        if amount_cents is None:
            raise InvalidInput("A partial refund needs an amount, more than 0 and less than what remains.",
                               fields={"amount": "required for refund_partial"})
        payment = db.session.get(Payment, request.payment_id)
        validate_refund_amount(payment, amount_cents, partial=True)
    elif amount_cents is not None:
        raise InvalidInput(f"Only refund_partial takes an amount; send {event!r} without one.",
                           fields={"amount": f"not used by {event}"})
    db.session.commit()  # end what was read, so the engine's row lock starts from current data
    amount = from_cents(amount_cents) if amount_cents is not None else None
    _run(workflows.apply_agent_event, request, event, agent, amount=amount, message=message or None)
    db.session.refresh(ticket)
    return ticket


def reply(ticket_id: int, agent: str, body: str) -> Ticket:
    """The agent's reply: recorded on the ticket and emailed to the customer."""
    ticket = get_ticket(ticket_id)
    record_agent_reply(ticket, agent, body)
    _commit_or_conflict()
    return ticket


def manual_cancel(order_id: str, agent: str, when: str, message: str | None = None) -> Any:
    """Cancel a subscription by hand, whatever the portal settings ("now" or "period_end")."""
    purchase = get_purchase_by_order_id(order_id)
    if purchase.kind != "subscription":
        raise Conflict(f"Order {order_id} is a one-time purchase; only subscriptions can be cancelled. "
                       "Refund its payment instead.", code="not_a_subscription")
    db.session.commit()
    return _run(workflows.agent_cancel, purchase, agent, when, message=message or None)


def manual_refund(payment_id: str, agent: str, amount_cents: int, message: str | None = None) -> Any:
    """Refund all or part of a payment by hand, whatever the portal settings."""
    payment = get_payment_by_id(payment_id)
    validate_refund_amount(payment, amount_cents, partial=False)
    db.session.commit()
    return _run(workflows.agent_refund, payment, agent, from_cents(amount_cents), message=message or None)

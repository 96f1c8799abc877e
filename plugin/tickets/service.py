"""Tickets of requests handled by hand: opening, messages, closing.

The workflow engine calls :func:`open_ticket_for_request` when a request goes to
a person and :func:`close_ticket_for_request` when it is resolved; the agent API
and the desk call :func:`record_agent_reply`. None of these commit: they add to
the caller's transaction, so a ticket exists exactly when its request step does.
Every step is passed on to the configured :mod:`helpdesk adapter <plugin.tickets.adapter>`.
The queue's and the lead lookup's queries are :mod:`.queries`.

:func:`agent_replied` is the one function here that commits: a host helpdesk
calls it when an agent answered a ticket in the host's own system.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..db import db, utcnow
from ..errors import InvalidInput, NotFound
from ..ledger.models import Lead, Payment, Purchase
from ..ledger.settings import get_settings
from ..money import format_amount
from ..notifications import enqueue
from ..validation import MAX_MESSAGE_CHARS, free_text, is_row_id
from ..workflows.models import BillingRequest
from .adapter import TicketData, get_adapter
from .models import Department, Ticket, TicketMessage

logger = logging.getLogger(__name__)

SYSTEM = "system"
CUSTOMER = "customer"
DEFAULT_DEPARTMENT = "Billing"
_REQUEST_TITLES = {"cancellation": "Cancellation request", "refund": "Refund request"}


# -- departments -----------------------------------------------------------------------


def department_name_from_settings() -> str:
    """The department named in the merchant's settings."""
    name = get_settings().department or DEFAULT_DEPARTMENT
    return name.strip() or DEFAULT_DEPARTMENT


def get_or_create_department(name: str) -> Department:
    """The department called ``name``, created if missing (safe when two create it at once)."""
    query = select(Department).where(Department.name == name)
    department = db.session.execute(query).scalar_one_or_none()
    if department is not None:
        return department
    try:
        with db.session.begin_nested():
            department = Department(name=name)
            db.session.add(department)
    except IntegrityError:  # created concurrently: use theirs
        department = db.session.execute(query).scalar_one()
    return department


# -- opening, messages, closing ----------------------------------------------------------


def subject_for(request_type: str, order_id: str) -> str:
    """E.g. "Refund request for order ORD-1001"."""
    title = _REQUEST_TITLES.get(request_type, f"{request_type.capitalize()} request")
    return f"{title} for order {order_id}"


def _money(cents: int, currency: str) -> str:
    return f"{format_amount(cents)} {currency}"


def _date(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def _describe_purchase(purchase: Purchase) -> str:
    price = purchase.price_point
    if purchase.is_subscription and price is not None and price.interval:
        every = price.interval if price.interval_count == 1 else f"{price.interval_count} {price.interval}s"
        terms = f"subscription, {_money(purchase.amount_cents, purchase.currency)} every {every}"
    else:
        terms = f"one-time purchase, {_money(purchase.amount_cents, purchase.currency)}"
    lines = [
        f"Purchase: {purchase.product} ({terms})",
        f"Order ID: {purchase.order_id}",
        f"Purchased: {_date(purchase.purchased_at)}",
        f"Status: {purchase.status}",
    ]
    if purchase.next_payment_at is not None:
        lines.append(f"Next payment: {_date(purchase.next_payment_at)}")
    if purchase.cancels_at is not None:
        lines.append(f"Cancels at: {_date(purchase.cancels_at)}")
    return "\n".join(lines)


def _reason_lines(request: BillingRequest) -> str:
    """Why, as the customer gave it: the reason picked from the merchant's list, then their own words."""
    choice, words = (request.reason_choice or "").strip(), (request.reason or "").strip()
    if choice and words:
        return f"Customer's reason: {choice}\nIn their words: {words}"
    return f"Customer's reason: {choice or words or '(none given)'}"


def opening_body(request: BillingRequest, purchase: Purchase, lead: Lead, payment: Payment | None,
                 told: str) -> str:
    """The ticket's first message: who, what was bought and paid, why, and what they were told."""
    name = f"{lead.first_name} {lead.last_name}".strip()
    who = f"{name} <{lead.email}>" if name else lead.email
    parts = [
        f"{subject_for(request.type, purchase.order_id)}, sent by {request.created_by}.",
        f"Customer: {who}",
        _describe_purchase(purchase),
    ]
    if payment is not None:
        payment_lines = [
            f"Payment: {payment.payment_id}",
            f"Amount: {_money(payment.amount_cents, payment.currency)}",
            f"Paid: {_date(payment.paid_at)}",
        ]
        if payment.refunded_cents:
            payment_lines.append(f"Already refunded: {_money(payment.refunded_cents, payment.currency)}")
        if request.type == "refund":
            asked = request.amount_cents if request.amount_cents is not None else payment.remaining_cents
            payment_lines.append(f"Refund requested: {_money(asked, request.currency or payment.currency)}")
        parts.append("\n".join(payment_lines))
    parts.append(_reason_lines(request))
    if request.error:
        parts.append(f"Processor error: {request.error}")
    parts.append(f"What the customer was told: {told.strip() or '(nothing)'}")
    return "\n\n".join(parts)


def open_ticket_for_request(request: BillingRequest, told: str) -> Ticket:
    """Open the ticket of a request handled by hand, in the settings' department. No commit.

    Sets ``request.ticket_id``. A request that already has a ticket gets that one back.
    """
    if request.ticket_id is not None:
        existing = db.session.get(Ticket, request.ticket_id)
        if existing is not None:
            return existing
    if request.id is None:
        db.session.flush()
    purchase = db.session.get(Purchase, request.purchase_id)
    lead = db.session.get(Lead, purchase.lead_id)
    payment = db.session.get(Payment, request.payment_id) if request.payment_id else None
    department = get_or_create_department(department_name_from_settings())
    ticket = Ticket(
        subject=subject_for(request.type, purchase.order_id),
        department_id=department.id,
        status="open",
        lead_id=lead.id,
        purchase_id=purchase.id,
        request_id=request.id,
        created_at=utcnow(),
    )
    db.session.add(ticket)
    db.session.flush()
    body = opening_body(request, purchase, lead, payment, told)
    db.session.add(TicketMessage(ticket_id=ticket.id, author=CUSTOMER, body=body, internal=False,
                                 created_at=utcnow()))
    request.ticket_id = ticket.id
    ticket.external_ref = _tell_adapter(ticket, "open_ticket", TicketData(
        ticket_id=ticket.id,
        subject=ticket.subject,
        department=department.name,
        body=body,
        order_id=purchase.order_id,
        email=lead.email,
        first_name=lead.first_name,
        last_name=lead.last_name,
        request_type=request.type,
        request_id=request.public_id,
    ))
    db.session.flush()
    return ticket


def _tell_adapter(ticket: Ticket, method: str, *args: Any) -> Any:
    """Call the adapter in a savepoint; a failure is logged and noted on the ticket, never fatal.

    The plugin's own ticket is the record agents work from, so a host helpdesk
    that is down must not stop a customer's request: its writes are rolled back
    to the savepoint, the error goes to the log and into an internal note.
    """
    adapter = get_adapter()
    try:
        with db.session.begin_nested():
            return getattr(adapter, method)(*args)
    except Exception as exc:  # the host's code: anything may come out of it
        logger.exception("Helpdesk adapter %s failed for ticket %s", method, ticket.id)
        db.session.add(TicketMessage(
            ticket_id=ticket.id, author=SYSTEM, internal=True, created_at=utcnow(),
            body=f"The host helpdesk did not take this step ({method}): {exc}. "
                 "The ticket is complete here; bring the host's copy in step by hand.",
        ))
        return None


def add_message(ticket: Ticket, author: str, body: str, internal: bool = False, *,
                tell_adapter: bool = True) -> TicketMessage:
    """Add a message to the ticket (and to the host's copy, when an adapter keeps one). No commit."""
    message = TicketMessage(ticket_id=ticket.id, author=author, body=body, internal=internal,
                            created_at=utcnow())
    db.session.add(message)
    if tell_adapter and ticket.external_ref:
        _tell_adapter(ticket, "add_message", ticket.external_ref, author, body, internal)
    return message


def close_ticket(ticket: Ticket, note: str) -> None:
    """Close the ticket with a system note; closing a closed ticket does nothing. No commit."""
    if ticket.status == "closed":
        return
    ticket.status = "closed"
    ticket.closed_at = utcnow()
    db.session.add(TicketMessage(ticket_id=ticket.id, author=SYSTEM, body=note, internal=False,
                                 created_at=ticket.closed_at))
    if ticket.external_ref:
        _tell_adapter(ticket, "close_ticket", ticket.external_ref, note)


def close_ticket_for_request(request: BillingRequest, note: str) -> None:
    """Close the ticket of a resolved request (if it has one). No commit."""
    if request.ticket_id is None:
        return
    ticket = db.session.get(Ticket, request.ticket_id)
    if ticket is not None:
        close_ticket(ticket, note)


def record_agent_reply(ticket: Ticket, agent_email: str, body: str, *, tell_adapter: bool = True,
                       notify_customer: bool = True) -> TicketMessage:
    """An agent's reply: recorded on the ticket and emailed to the customer. No commit.

    The text is free text (:func:`plugin.validation.free_text`): not empty, at most 10,000 characters,
    card numbers masked; InvalidInput otherwise.
    """
    text = free_text(body, "message", max_chars=MAX_MESSAGE_CHARS, required=True)
    message = add_message(ticket, agent_email, text, tell_adapter=tell_adapter)
    if notify_customer:
        purchase = db.session.get(Purchase, ticket.purchase_id)
        request = db.session.get(BillingRequest, ticket.request_id) if ticket.request_id is not None else None
        enqueue("agent_reply", purchase, request=request, message=text,
                              extra={"agent": agent_email, "ticket_id": ticket.id})
    return message


def agent_replied(external_ref: str, agent_email: str, body: str, *,
                  notify_customer: bool = False) -> Ticket:
    """Tell Self-Billing that an agent answered its ticket in the host's helpdesk. Commits.

    The reply is recorded on the plugin's ticket (so the desk and the request's
    record show it). The host's helpdesk normally emails its customer itself;
    pass ``notify_customer=True`` to have Self-Billing send its "agent_reply" email.
    Raises :class:`~plugin.errors.NotFound` for an unknown ``external_ref`` and
    :class:`~plugin.errors.InvalidInput` for an empty or too long body.
    """
    ticket = db.session.execute(
        select(Ticket).where(Ticket.external_ref == str(external_ref))
    ).scalar_one_or_none()
    if ticket is None:
        raise NotFound(f"No Self-Billing ticket has the external reference {external_ref!r}.",
                       code="ticket_not_found")
    if not (agent_email or "").strip():
        raise InvalidInput("Say which agent replied (their email).", fields={"agent_email": "required"})
    record_agent_reply(ticket, agent_email.strip(), body, tell_adapter=False,
                       notify_customer=notify_customer)
    db.session.commit()
    return ticket


# -- queries ---------------------------------------------------------------------------


def get_ticket(ticket_id: int) -> Ticket:
    """The ticket, or NotFound (also for an id past the id column's range, which no query is made for)."""
    ticket = db.session.get(Ticket, ticket_id) if is_row_id(ticket_id) else None
    if ticket is None:
        raise NotFound(f"There is no ticket {ticket_id}; check the number in the queue.",
                       code="ticket_not_found")
    return ticket


def ticket_messages(ticket: Ticket) -> list[TicketMessage]:
    return list(db.session.execute(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket.id).order_by(TicketMessage.id)
    ).scalars())

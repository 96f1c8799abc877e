"""Tickets as the agent API shows them (T of contract section 5), in a constant number of queries.

A list of tickets loads its requests, their history and the messages in one
query each, whatever the page size.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..db import db, id_in
from ..ledger.models import Lead, Payment, Purchase
from ..money import format_amount
from ..presenters import purchase_to_dict, request_to_dict
from ..timefmt import iso_utc
from ..urls import payment_url_maker
from ..workflows.models import BillingRequest, RequestEvent
from .actions import available_events, request_of
from .models import Ticket, TicketMessage


def message_to_dict(message: TicketMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "author": message.author,
        "body": message.body,
        "internal": message.internal,
        "created_at": iso_utc(message.created_at),
    }


def _load_requests(request_ids: list[int]) -> dict[int, tuple[Any, list[Any]]]:
    """(request, its history) per request id, as plain rows: a page of 50 tickets reads 50 requests and
    their events, and building ORM objects for them cost more than the queries (only read here)."""
    if not request_ids:
        return {}
    requests = BillingRequest.__table__
    events = RequestEvent.__table__
    by_id: dict[int, tuple[Any, list[Any]]] = {
        row.id: (row, []) for row in db.session.execute(select(requests).where(id_in(requests.c.id, request_ids)))
    }
    for event in db.session.execute(
        select(events).where(id_in(events.c.request_id, request_ids)).order_by(events.c.id)
    ):
        by_id[event.request_id][1].append(event)
    return by_id


def _load_messages(ticket_ids: list[int]) -> dict[int, list[Any]]:
    by_ticket: dict[int, list[Any]] = {tid: [] for tid in ticket_ids}
    if ticket_ids:
        messages = TicketMessage.__table__
        rows = db.session.execute(
            select(messages).where(id_in(messages.c.ticket_id, ticket_ids)).order_by(messages.c.id)
        )
        for row in rows:
            by_ticket[row.ticket_id].append(row)
    return by_ticket


def request_dict(request: BillingRequest | None) -> dict[str, Any] | None:
    if request is None:
        return None
    return request_to_dict(request, request.events)


def _request_row_dict(loaded: tuple[Any, list[Any]] | None) -> dict[str, Any] | None:
    return request_to_dict(loaded[0], loaded[1]) if loaded is not None else None


def tickets_to_dicts(rows: list[tuple[Ticket, str, str]]) -> list[dict[str, Any]]:
    """T for each (ticket, order_id, email) row; the ticket an ORM object or a plain row with
    ``department_name`` (:func:`.queries.list_tickets` with ``plain``)."""
    tickets = [row[0] for row in rows]
    requests = _load_requests([t.request_id for t in tickets if t.request_id is not None])
    messages = _load_messages([t.id for t in tickets])
    return [
        {
            "id": ticket.id,
            "subject": ticket.subject,
            "department": ticket.department_name if hasattr(ticket, "department_name") else ticket.department.name,
            "status": ticket.status,
            "order_id": order_id,
            "email": email,
            "external_ref": ticket.external_ref,
            "created_at": iso_utc(ticket.created_at),
            "closed_at": iso_utc(ticket.closed_at),
            "request": _request_row_dict(requests.get(ticket.request_id)) if ticket.request_id else None,
            "messages": [message_to_dict(m) for m in messages[ticket.id]],
        }
        for ticket, order_id, email in rows
    ]


def ticket_detail(ticket: Ticket) -> dict[str, Any]:
    """T with ``available_events``, the purchase (with its payment history) and, for a refund, what remains."""
    purchase = db.session.get(Purchase, ticket.purchase_id)
    lead = db.session.get(Lead, ticket.lead_id)
    body = tickets_to_dicts([(ticket, purchase.order_id, lead.email)])[0]
    request = request_of(ticket)
    body["available_events"] = available_events(request)
    body["purchase"] = purchase_to_dict(purchase)
    body["customer"] = {"email": lead.email, "first_name": lead.first_name, "last_name": lead.last_name}
    if request is not None and request.type == "refund" and request.payment_id is not None:
        payment = db.session.get(Payment, request.payment_id)
        body["payment"] = {
            "payment_id": payment.payment_id,
            "amount": format_amount(payment.amount_cents),
            "refunded_amount": format_amount(payment.refunded_cents),
            "remaining_amount": format_amount(payment.remaining_cents),
            "currency": payment.currency,
            "paid_at": iso_utc(payment.paid_at),
        }
    return body


def lead_to_dict(lead: Lead, purchases: list[Purchase]) -> dict[str, Any]:
    """A lead as the "Orders tab" shows it: each order's Order ID with the lead's email."""
    return {
        "email": lead.email,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "orders": [
            {
                "order_id": p.order_id,
                "product": p.product,
                "status": p.status,
                "purchased_at": iso_utc(p.purchased_at),
                "email": lead.email,
            }
            for p in purchases
        ],
    }


def agent_invoice_url(payment_id: str) -> str:
    """Where an agent downloads a payment's invoice (``{prefix}/api/agent/payments/<id>/invoice.pdf``)."""
    return payment_url_maker("self_billing_invoices_agent.agent_invoice",
                             "/api/agent/payments/{id}/invoice.pdf")(payment_id)


def agent_credit_note_url(number: str) -> str:
    """Where an agent downloads a credit note (``{prefix}/api/agent/credit-notes/<number>/credit-note.pdf``)."""
    return payment_url_maker("self_billing_invoices_agent.agent_credit_note",
                             "/api/agent/credit-notes/{id}/credit-note.pdf", field="number")(number)

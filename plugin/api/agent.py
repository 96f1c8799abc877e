"""The agent JSON API (contract section 5), mounted at ``{prefix}/api/agent``.

Who the agent is comes from the host's ``agent_loader`` (the demo host reads a
bearer token); without an agent every route answers 401. A customer's portal
session is not an agent and never gets through. Bodies must be JSON
(``Content-Type: application/json``), which a cross-site form cannot send, so a
host whose agents sign in with a cookie is not open to cross-site requests here.

The views only translate HTTP: the work is in :mod:`plugin.tickets.actions`.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request

from ..db import db
from ..errors import InvalidInput, NotFound
from ..ledger.models import Purchase
from ..presenters import purchase_to_dict, request_to_dict
from ..tickets import actions, present, queries, service
from ..tickets.schemas import MAX_QUERY_CHARS, CancelIn, EventIn, RefundIn, ReplyIn
from ..validation import MAX_ROW_ID
from .common import install_json_errors, parse_body, path_id, read_json
from .idempotency import install_idempotency

bp = Blueprint("self_billing_api_agent", __name__)
install_json_errors(bp)

#: Largest reply body read, in bytes: well above 10,000 characters of any script, so a too long
#: reply is told apart (400, "at most 10000 characters") from a body that is not a reply at all (413).
REPLY_BODY_BYTES = 512 * 1024
STATUSES = ("open", "closed")
MAX_PAGE = 200


@bp.before_request
def _signed_in_agent() -> None:
    g.self_billing_agent = actions.require_agent()


def _agent() -> str:
    return g.self_billing_agent


def _int_arg(name: str, default: int | None, low: int, high: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number.", fields={name: "must be a whole number"}) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{name} must be {bound}.", fields={name: f"must be {bound}"})
    return value


@bp.get("/tickets")
def list_tickets() -> Any:
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidInput("status must be open or closed (or left out for both).",
                           fields={"status": "must be open or closed"})
    department = request.args.get("department") or None
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    before = _int_arg("before", None, 1, MAX_ROW_ID)
    page = queries.list_tickets(status=status, department=department, limit=limit, before=before, plain=True)
    return {"tickets": present.tickets_to_dicts(page.rows), "next_before": page.next_before}


def _ticket_id(raw: str) -> int:
    return path_id(raw, NotFound("There is no such ticket; check the number in the queue.",
                                 code="ticket_not_found"))


@bp.get("/tickets/<ticket_id>")
def show_ticket(ticket_id: str) -> Any:
    return present.ticket_detail(service.get_ticket(_ticket_id(ticket_id)))


@bp.post("/tickets/<ticket_id>/events")
def post_event(ticket_id: str) -> Any:
    ticket_id = service.get_ticket(_ticket_id(ticket_id)).id  # 404 before looking at the body
    data = parse_body(EventIn)
    ticket = actions.apply_ticket_event(ticket_id, _agent(), data.event, data.amount_cents, data.message)
    return present.ticket_detail(ticket)


@bp.post("/tickets/<ticket_id>/replies")
def post_reply(ticket_id: str) -> Any:
    ticket_id = service.get_ticket(_ticket_id(ticket_id)).id
    data = parse_body(ReplyIn, data=read_json(max_bytes=REPLY_BODY_BYTES))
    ticket = actions.reply(ticket_id, _agent(), data.message)
    return present.ticket_detail(ticket), 201


@bp.get("/leads")
def find_leads() -> Any:
    q = (request.args.get("q") or "").strip()
    if not q:
        raise InvalidInput("Type part of the customer's email or name in q.", fields={"q": "required"})
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is too long; use at most {MAX_QUERY_CHARS} characters.",
                           fields={"q": f"at most {MAX_QUERY_CHARS} characters"})
    limit = _int_arg("limit", 20, 1, 100)
    found = queries.search_leads(q, limit=limit)
    body: dict[str, Any] = {"leads": [present.lead_to_dict(lead, purchases) for lead, purchases in found]}
    if not found:
        body["hint"] = ("No lead matches. If the purchase doesn't appear, the customer may have used a "
                        "different email at checkout.")
    return body


def _request_and_purchase(billing_request: Any) -> dict[str, Any]:
    purchase = db.session.get(Purchase, billing_request.purchase_id)
    db.session.refresh(billing_request)
    return {"request": request_to_dict(billing_request), "purchase": purchase_to_dict(purchase)}


@bp.post("/purchases/<order_id>/cancel")
def cancel_purchase(order_id: str) -> Any:
    actions.get_purchase_by_order_id(order_id)
    data = parse_body(CancelIn)
    billing_request = actions.manual_cancel(order_id, _agent(), data.when, data.message)
    return _request_and_purchase(billing_request)


@bp.post("/payments/<payment_id>/refunds")
def refund_payment(payment_id: str) -> Any:
    actions.get_payment_by_id(payment_id)
    data = parse_body(RefundIn)
    billing_request = actions.manual_refund(payment_id, _agent(), data.amount_cents, data.message)
    return _request_and_purchase(billing_request)


# After the guards above: they authenticate the caller the key belongs to.
install_idempotency(bp, lambda: f"agent:{g.self_billing_agent}")

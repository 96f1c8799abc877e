"""What a ticket's desk page shows, in the order an agent needs it.

First the summary: who asked (name, email, Order ID), what (cancel or refund, the product, the
payment and its date), how much (paid, refunded, remaining, currency), the refund window (until
when, and whether it has passed) and the customer's reason. Then one main action, the one the
customer asked for, and the others. Each action carries the sentence its confirm dialog asks,
naming the amount. Below: the purchase, the request's history and the payment processor's calls.
The words come from :mod:`.wording`; the facts from the agent API's T (:func:`.present.ticket_detail`).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from ..db import db, utcnow
from ..ledger.models import Purchase
from ..money import format_amount
from ..payments.records import ProcessorCall
from .models import Ticket
from .present import ticket_detail
from .wording import ERRORS, card, day, money, say, when

#: Actions shown after the main one, least consequential last.
_LAST = ("decline", "fail")
#: The placeholder the page's script fills with the amount typed, in a confirm sentence.
AMOUNT_SLOT = "{amount}"


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _payment_row(purchase: dict[str, Any], payment_id: str | None) -> dict[str, Any] | None:
    payments = purchase.get("payments") or []
    if payment_id is None:
        return payments[0] if payments else None  # the latest
    return next((p for p in payments if p["payment_id"] == payment_id), None)


def refund_window(payment: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    """Until when the payment may be refunded on request, and whether that date has passed."""
    if payment is None or not payment.get("refundable_until"):
        return None
    until = _parse(payment["refundable_until"])
    passed = until < now
    days = (until - now).days
    if passed:
        text = (f"Passed on {day(until)}: the customer can no longer ask for a refund of it; "
                "you can still refund it by hand.")
    else:
        text = f"Until {when(until)} ({days} day{'s' if days != 1 else ''} left)."
    return {"until": payment["refundable_until"], "passed": passed, "text": text}


def _main_event(events: list[str], request_type: str, cancellation_kind: str) -> str | None:
    """The action the customer asked for: a full refund; a cancellation as the product cancels."""
    if request_type == "refund":
        preferred = ["refund_full", "refund_partial"]
    elif cancellation_kind == "delayed":
        preferred = ["cancel_at_period_end", "cancel_now"]
    else:
        preferred = ["cancel_now", "cancel_at_period_end"]
    return next((e for e in preferred if e in events), None)


def cancel_question(purchase: dict[str, Any], at_period_end: bool) -> str:
    """The confirm dialog's question before cancelling ``purchase`` (P) now or at its period's end."""
    what = f"{purchase['product']} (order {purchase['order_id']})"
    if not at_period_end:
        return f"Cancel {what} now? Its charges stop today; the customer is emailed."
    end = day(purchase.get("next_payment_at")) or "the end of the paid period"
    return f"Cancel {what} at the end of its paid period, on {end}? The customer is emailed."


def refund_question(payment: dict[str, Any], full: bool) -> str:
    """The question before refunding ``payment`` in full, or in part (the amount typed fills the slot)."""
    currency = payment["currency"]
    of_payment = f"payment {payment['payment_id']} of {day(payment['paid_at'])}"
    remaining = money(payment.get("remaining_amount") or payment["amount"], currency)
    if full:
        return f"Refund {remaining} in full ({of_payment})? The customer is emailed."
    slot = money("0.00", currency).replace("0.00", AMOUNT_SLOT)
    if "remaining_amount" not in payment:  # a payment row of P: what was refunded so far is known
        return f"Refund {slot} of {of_payment}? The customer is emailed."
    return f"Refund {slot} of the {remaining} remaining ({of_payment})? The customer is emailed."


def _confirm(event: str, detail: dict[str, Any]) -> str:
    """The question the confirm dialog asks before ``event``: what will happen, with the amount."""
    purchase, payment = detail["purchase"], detail.get("payment")
    if payment is not None and event in ("refund_full", "refund_partial"):
        return refund_question(payment, full=event == "refund_full")
    if event in ("cancel_now", "cancel_at_period_end"):
        return cancel_question(purchase, at_period_end=event == "cancel_at_period_end")
    if event == "decline":
        if payment is not None:
            return (f"Decline this refund of {money(payment['remaining_amount'], payment['currency'])}? "
                    "Nothing is refunded; the customer is emailed.")
        return f"Decline this cancellation? {purchase['product']} stays active; the customer is emailed."
    return f"{say(event, 'action')}? The customer is emailed."


def actions(detail: dict[str, Any], cancellation_kind: str) -> dict[str, Any]:
    """The main action and the others, each ``{"event", "label", "confirm"}``."""
    events = detail["available_events"]
    request = detail.get("request") or {}
    main = _main_event(events, request.get("type", ""), cancellation_kind)
    others = [e for e in events if e != main and e not in _LAST] + [e for e in _LAST if e in events]

    def action(event: str) -> dict[str, str]:
        return {"event": event, "label": say(event, "action"), "confirm": _confirm(event, detail)}

    return {"main": action(main) if main else None, "others": [action(e) for e in others]}


_ERROR_CODE = re.compile(r"\b(" + "|".join(map(re.escape, ERRORS)) + r"): ")


def error_words(text: str) -> str:
    """A recorded processor error (``code: message``, also inside a longer text) with its code in words."""
    return _ERROR_CODE.sub(lambda match: f"{ERRORS[match.group(1)]}: ", text)


#: The note a resolved request's ticket closes with (:meth:`plugin.workflows.context.RequestContext.close_request`).
_CLOSING_NOTE = re.compile(r"Resolved: (\w+) \((\w+) by (.+)\)\.")


def message_words(body: str) -> str:
    """A ticket message as the desk shows it: the closing note's codes in words, any other text as it is."""
    match = _CLOSING_NOTE.fullmatch(body)
    if match is None:
        return error_words(body)
    outcome, event, actor = match.groups()
    return f"Resolved: {say(outcome, 'outcome')} ({say(event, 'event')}, by {say(actor, 'actor')})."


def processor_calls(request_id: int | None) -> list[dict[str, Any]]:
    """The payment processor calls made for the request, oldest first: when, what, result, reference."""
    if request_id is None:
        return []
    rows = db.session.execute(
        select(ProcessorCall).where(ProcessorCall.request_id == request_id).order_by(ProcessorCall.id)
    ).scalars()
    calls = []
    for row in rows:
        amount = money(format_amount(row.amount_cents), row.currency) if row.amount_cents is not None else ""
        result = "Succeeded" if row.ok else f"Failed: {say(row.error_code, 'error')}"
        calls.append({"at": row.at, "what": say(row.operation, "operation") + (f" {amount}" if amount else ""),
                      "ok": row.ok, "result": result, "error": row.error_message, "reference": row.reference,
                      "gateway": row.gateway, "key": row.idempotency_key or ""})
    return calls


def ticket_page(ticket: Ticket, now: datetime | None = None) -> dict[str, Any]:
    """T (with ``available_events``, the purchase and the payment) plus what the page leads with."""
    now = now or utcnow()
    detail = ticket_detail(ticket)
    purchase_row = db.session.get(Purchase, ticket.purchase_id)
    request = detail.get("request") or {}
    payment = detail.get("payment")
    paid = _payment_row(detail["purchase"], payment["payment_id"] if payment else None)
    detail["summary"] = {
        "type": request.get("type"),
        "payment_method": card(detail["purchase"].get("payment_method")),
        "window": refund_window(paid, now),
        "latest_payment": paid,
    }
    for message in detail["messages"]:
        message["body"] = message_words(message["body"])
    if request.get("error"):
        request["error"] = error_words(request["error"])
    for step in request.get("history", []):
        if step.get("note"):
            step["note"] = error_words(step["note"])
    detail["actions"] = actions(detail, purchase_row.price_point.cancellation)
    detail["processor_calls"] = processor_calls(ticket.request_id)
    return detail

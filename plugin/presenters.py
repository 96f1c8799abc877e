"""Purchases and requests as the contract's JSON objects (P and R).

``purchases_for_lead`` builds every P of a lead with a fixed number of queries
(purchases, payments, cards, requests, request events, settings, documents) however many
purchases and payments there are. The customer's P holds the latest page of payments
(``SELF_BILLING_PAYMENTS_PAGE_SIZE``, :mod:`plugin.payment_history`) with ``payments_total``
and ``payments_next``, the cursor of :func:`payment_history_page`; the merchant's and agents'
hold every payment. ``actions`` are the policy's answers (:mod:`plugin.workflows.policy`), the
same the server gives when the customer acts.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .db import db, id_in, utcnow
from .invoices.documents import CreditNote
from .ledger.models import PaymentMethod, Purchase, Settings
from .ledger.settings import get_settings
from .money import format_amount
from .payment_history import PaymentRow, latest_pages, next_cursor, older_page, page_size
from .timefmt import iso_utc
from .urls import payment_url_maker
from .workflows import policy
from .workflows.machines import OPEN_STATES, is_agent
from .workflows.models import BillingRequest, RequestEvent, open_slot
from .workflows.rules import refundable_until

#: Who acted, as a customer reads it: agents are the merchant's billing team, never their emails.
BILLING_TEAM = "billing team"
#: What a customer reads of a processor failure (the processor's own words are for agents).
CUSTOMER_PROCESSOR_ERROR = ("Our payment processor could not complete this yet. Nothing was charged or refunded "
                            "twice; our billing team has been told and will follow up by email.")
_INTERNAL_EVENTS = frozenset({"processor_failed", "processor_error"})


def _shown_actor(actor: str, for_customer: bool) -> str:
    if for_customer and is_agent(actor):
        return BILLING_TEAM
    return actor


def _history_entry(event: RequestEvent, for_customer: bool) -> dict[str, Any]:
    entry = {"from": event.from_state, "to": event.to_state, "event": event.event, "at": iso_utc(event.at),
             "by": _shown_actor(event.actor, for_customer)}
    if event.note and not (for_customer and event.event in _INTERNAL_EVENTS):
        entry["note"] = event.note
    return entry


def request_to_dict(request: BillingRequest, events: Iterable[RequestEvent] | None = None, *,
                    for_customer: bool = False) -> dict[str, Any]:
    """A request as contract R, with its history.

    ``for_customer``: what the customer's own portal shows: agents appear as "billing team", and a
    processor's error as a plain sentence (agents and the merchant see both as they are).
    """
    if events is None:
        events = db.session.execute(
            select(RequestEvent).where(RequestEvent.request_id == request.id).order_by(RequestEvent.id)
        ).scalars().all()
    body: dict[str, Any] = {
        "id": request.public_id,
        "type": request.type,
        "state": request.state,
        "outcome": request.outcome,
        "amount": format_amount(request.amount_cents) if request.amount_cents is not None else None,
        "currency": request.currency,
        "ticket_id": request.ticket_id,
        "reason": request.reason,
        "reason_choice": request.reason_choice,
        "error": (CUSTOMER_PROCESSOR_ERROR if request.error else None) if for_customer else request.error,
        "processing": request.pending_event is not None,
        "created_at": iso_utc(request.created_at),
        "resolved_at": iso_utc(request.resolved_at),
        "history": [_history_entry(e, for_customer) for e in events],
    }
    return body


def _credit_note_urls():
    """``number -> URL`` of the customer's credit note download (with the app's mount point)."""
    return payment_url_maker("self_billing_invoices.customer_credit_note", "/portal/credit-notes/{id}/credit-note.pdf",
                             field="number")


def _invoice_urls():
    """``payment_id -> URL`` of the customer's invoice download (with the app's mount point)."""
    return payment_url_maker("self_billing_invoices.customer_invoice", "/portal/payments/{id}/invoice.pdf")


def _document_urls() -> tuple[Callable[[str], str], Callable[[str], str]]:
    return _invoice_urls(), _credit_note_urls()


def _payment_method(purchase: Purchase, cards: list[Any]) -> dict[str, Any]:
    if purchase.payment_type == "paypal":
        return {"type": "paypal", "payer_email": purchase.paypal_payer_email}
    default = next((c for c in cards if c.is_default), cards[0] if cards else None)
    if default is None:
        return {"type": "card"}
    return {"type": "card", "brand": default.brand, "last4": default.last4,
            "exp_month": default.exp_month, "exp_year": default.exp_year}


def _payment_dicts(
    purchase: Purchase,
    payments: list[PaymentRow],
    open_slots: set[str],
    settings: Settings,
    now: datetime,
    documents: dict[int, dict[str, Any]],
    urls: tuple[Callable[[str], str], Callable[[str], str]] | None = None,
) -> list[dict[str, Any]]:
    """The payments (newest first, as given) as contract P's payment objects.

    ``urls``: the (invoice, credit note) URL makers, made once for a page of purchases.
    """
    invoice_url, note_url = urls or _document_urls()
    window_days = purchase.price_point.refund_window_days
    refundable = policy.refund_check(purchase, settings, now)
    payment_dicts = []
    for payment in payments:
        issued = documents.get(payment.id, {})
        refund_open = open_slot("refund", purchase.id, payment.id) in open_slots
        can_refund = refundable(payment, request_open=refund_open)
        payment_dicts.append({
            "payment_id": payment.payment_id,
            "amount": format_amount(payment.amount_cents),
            "currency": payment.currency,
            "paid_at": iso_utc(payment.paid_at),
            "status": payment.status,
            "refunded_amount": format_amount(payment.refunded_cents),
            "refundable_until": iso_utc(refundable_until(payment.paid_at, window_days)),
            "period_start": iso_utc(payment.period_start),
            "period_end": iso_utc(payment.period_end),
            "invoice_url": invoice_url(payment.payment_id),
            "invoice_number": issued.get("invoice"),
            "credit_notes": [
                {"number": n.number, "amount": format_amount(n.amount_cents), "currency": n.currency,
                 "issued_at": iso_utc(n.issued_at), "url": note_url(n.number)}
                for n in issued.get("notes", [])
            ],
            "refund_requested": refund_open,
            "actions": {"refund": can_refund, "invoice": True},
        })
    return payment_dicts


def _purchase_dict(
    purchase: Purchase,
    payments: list[PaymentRow],
    payments_total: int,
    cards: list[Any],
    requests: list[BillingRequest],
    events: dict[int, list[RequestEvent]],
    settings: Settings,
    now: datetime,
    for_customer: bool = False,
    documents: dict[int, dict[str, Any]] | None = None,
    urls: tuple[Callable[[str], str], Callable[[str], str]] | None = None,
) -> dict[str, Any]:
    open_slots = {r.open_slot for r in requests if r.state in OPEN_STATES and r.open_slot}
    can_cancel = policy.can_cancel(purchase, settings, now,
                                   request_open=open_slot("cancellation", purchase.id) in open_slots)
    scheduled = max((r for r in requests if r.type == "cancellation" and r.outcome == "cancel_scheduled"),
                    key=lambda r: r.id, default=None)
    upcoming = None
    if purchase.status == "active" and purchase.next_payment_at is not None:
        upcoming = {"amount": format_amount(purchase.amount_cents), "currency": purchase.currency,
                    "due_at": iso_utc(purchase.next_payment_at)}
    return {
        "order_id": purchase.order_id,
        "product": purchase.product,
        "kind": purchase.kind,
        "status": purchase.status,
        "amount": format_amount(purchase.amount_cents),
        "currency": purchase.currency,
        "interval": purchase.price_point.interval,
        "interval_count": purchase.price_point.interval_count,
        "purchased_at": iso_utc(purchase.purchased_at),
        "next_payment_at": iso_utc(purchase.next_payment_at),
        "cancels_at": iso_utc(purchase.cancels_at),
        "cancelled_at": iso_utc(purchase.cancelled_at),
        "upcoming_charge": upcoming,
        "billing_address": purchase.billing_address or {},
        "payment_method": _payment_method(purchase, cards),
        "actions": {
            "cancel": can_cancel,
            "resume": policy.can_resume(purchase, scheduled, settings, now),
            "update_address": policy.can_change_address(purchase, settings),
            "update_card": policy.can_change_card(purchase, settings),
        },
        "payments": _payment_dicts(purchase, payments, open_slots, settings, now, documents or {}, urls),
        "payments_total": payments_total,
        "payments_next": next_cursor(payments, payments_total),
        "requests": [
            request_to_dict(r, events.get(r.id, []), for_customer=for_customer)
            for r in sorted(requests, key=lambda r: r.id, reverse=True)
        ],
    }


def present_purchases(purchases: list[Purchase], now: datetime | None = None, *,
                      for_customer: bool = False) -> list[dict[str, Any]]:
    """P objects for these purchases, in the order given, with a fixed number of queries.

    ``for_customer``: as the customer's portal shows them (see :func:`request_to_dict`), with the
    latest page of payments only, so the cost does not grow with the history.
    """
    if not purchases:
        return []
    ids = [p.id for p in purchases]
    payments, totals = latest_pages(ids, page_size() if for_customer else None)
    cards: dict[int, list[Any]] = defaultdict(list)  # what P shows of a card, as plain rows
    for card in db.session.execute(
        select(PaymentMethod.purchase_id, PaymentMethod.is_default, PaymentMethod.brand, PaymentMethod.last4,
               PaymentMethod.exp_month, PaymentMethod.exp_year)
        .where(id_in(PaymentMethod.purchase_id, ids)).order_by(PaymentMethod.id)
    ):
        cards[card.purchase_id].append(card)
    requests: dict[int, list[BillingRequest]] = defaultdict(list)
    all_requests = db.session.execute(
        select(BillingRequest).where(id_in(BillingRequest.purchase_id, ids))
    ).scalars().all()
    for request in all_requests:
        requests[request.purchase_id].append(request)
    events: dict[int, list[RequestEvent]] = defaultdict(list)
    if all_requests:
        for event in db.session.execute(
            select(RequestEvent).where(id_in(RequestEvent.request_id, [r.id for r in all_requests]))
            .order_by(RequestEvent.id)
        ).scalars():
            events[event.request_id].append(event)
    settings = get_settings()
    now = now or utcnow()
    documents = _documents([pay for rows in payments.values() for pay in rows])
    urls = _document_urls()
    return [
        _purchase_dict(p, payments[p.id], totals[p.id], cards[p.id], requests[p.id], events, settings, now,
                       for_customer, documents, urls)
        for p in purchases
    ]


def payment_history_page(purchase: Purchase, after: str | None = None,
                         now: datetime | None = None) -> dict[str, Any]:
    """``{"payments": [...], "next": cursor | None}``: the customer's page of the purchase's payments.

    ``after`` is the ``next`` of the page before (or a P's ``payments_next``); None is the latest
    page. The payments have P's shape; a cursor that is not one of ours is InvalidInput
    (:func:`plugin.payment_history.decode_cursor`).
    """
    rows, after_these = older_page(purchase.id, after, page_size())
    open_slots = set(db.session.execute(
        select(BillingRequest.open_slot).where(BillingRequest.purchase_id == purchase.id,
                                               BillingRequest.open_slot.is_not(None),
                                               BillingRequest.state.in_(OPEN_STATES))
    ).scalars())
    payments = _payment_dicts(purchase, rows, open_slots, get_settings(), now or utcnow(),
                              _documents(rows))
    return {"payments": payments, "next": after_these}


def _documents(payments: list[PaymentRow]) -> dict[int, dict[str, Any]]:
    """``payment row id -> {"invoice": number, "notes": [credit notes]}``. The invoice numbers came with
    the payments (:mod:`plugin.payment_history`); the credit notes take one query, only when a payment
    has a refund (a credit note is issued per refund: most pages need no query at all)."""
    found: dict[int, dict[str, Any]] = defaultdict(lambda: {"invoice": None, "notes": []})
    invoice_payment: dict[int, int] = {}
    for payment in payments:
        if payment.invoice_id is not None:
            found[payment.id]["invoice"] = payment.invoice_number
            if payment.refunded_cents:
                invoice_payment[payment.invoice_id] = payment.id
    if invoice_payment:
        for note in db.session.execute(
            select(CreditNote.invoice_id, CreditNote.number, CreditNote.amount_cents, CreditNote.currency,
                   CreditNote.issued_at).where(CreditNote.invoice_id.in_(list(invoice_payment)))
            .order_by(CreditNote.id)
        ):
            found[invoice_payment[note.invoice_id]]["notes"].append(note)
    return found


def lead_purchases(lead_id: int) -> Any:
    """The SELECT of a lead's purchases with their price points, newest first (My Orders' order)."""
    return (select(Purchase).options(joinedload(Purchase.price_point)).where(Purchase.lead_id == lead_id)
            .order_by(Purchase.purchased_at.desc(), Purchase.id.desc()))


def purchases_for_lead(lead_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every purchase of a lead as contract P, newest first, as the customer's portal shows them."""
    purchases = db.session.execute(lead_purchases(lead_id)).scalars().all()
    return present_purchases(list(purchases), now, for_customer=True)


def purchase_to_dict(purchase: Purchase, now: datetime | None = None, *, for_customer: bool = False) -> dict[str, Any]:
    """One purchase as contract P (``for_customer``: as the customer's portal shows it)."""
    return present_purchases([purchase], now, for_customer=for_customer)[0]

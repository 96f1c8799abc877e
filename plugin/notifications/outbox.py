"""The outbox: writing customer email in the caller's transaction, and reading the queue.

:func:`enqueue` is all the other parts of the plugin call. It adds one
:class:`~plugin.notifications.models.OutboxEmail` row to ``db.session`` and
does not commit: the row commits or rolls back with the change that causes it,
so a refund that rolls back sends no "refund done" email, and a mail server
that is down loses nothing. It renders nothing: it stores the recipient, the
order ID and a small JSON context; the worker renders the row the first time
it handles it (a template problem can then never undo a refund, and an agent
sees it on the failed row instead).
"""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from sqlalchemy import func, select

from ..db import db, utcnow
from ..timefmt import iso_utc
from . import card_session
from .models import OUTBOX_STATUSES, OutboxEmail

if TYPE_CHECKING:  # pragma: no cover
    from ..ledger.models import Payment, Purchase
    from ..workflows.models import BillingRequest

#: Every kind of customer email (contract section 7, plus the purchase confirmation and the receipt).
KINDS: tuple[str, ...] = (
    "request_ticketed",
    "cancellation_scheduled",
    "cancellation_done",
    "refund_done",
    "request_declined",
    "agent_reply",
    "address_changed",
    "payment_method_changed",
    "purchase_confirmation",
    "payment_receipt",
    "login_link",
    "order_lookup",
    "cancellation_undone",
)

#: ``session.info`` key listing rows to try right after commit (SELF_BILLING_MAIL_SEND_AFTER_COMMIT).
PENDING_KEY = "self_billing_outbox_pending"


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _event_date(kind: str, purchase: Purchase, payment: Payment | None,
                extra: dict[str, Any]) -> datetime | date | str:
    if extra.get("date") is not None:
        return extra["date"]
    if kind == "cancellation_scheduled" and purchase.cancels_at is not None:
        return purchase.cancels_at
    if kind == "cancellation_done" and purchase.cancelled_at is not None:
        return purchase.cancelled_at
    if kind == "cancellation_undone" and purchase.next_payment_at is not None:
        return purchase.next_payment_at  # the subscription renews then, as it did before
    if kind == "purchase_confirmation":
        return purchase.purchased_at
    if kind == "payment_receipt" and payment is not None:
        return payment.paid_at
    return utcnow()


def _amount(kind: str, purchase: Purchase, payment: Payment | None,
            request: BillingRequest | None, extra: dict[str, Any]) -> tuple[int, str]:
    currency = purchase.currency
    if extra.get("amount_cents") is not None:
        return int(extra["amount_cents"]), extra.get("currency") or currency
    if request is not None and request.amount_cents is not None:
        return request.amount_cents, request.currency or currency
    if payment is not None and request is not None and request.type == "refund":
        return payment.remaining_cents, payment.currency  # what a refund request asks for: what is left
    if payment is not None:
        return payment.amount_cents, payment.currency
    return purchase.amount_cents, currency


def build_context(kind: str, purchase: Purchase, *, request: BillingRequest | None = None,
                  payment: Payment | None = None, message: str | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON context an email of ``kind`` is rendered with (plain values only)."""
    extra = dict(extra or {})
    lead = purchase.lead
    amount_cents, currency = _amount(kind, purchase, payment, request, extra)
    when = _event_date(kind, purchase, payment, extra)
    context: dict[str, Any] = {
        "kind": kind,
        "order_id": purchase.order_id,
        "first_name": lead.first_name or "",
        "last_name": lead.last_name or "",
        "email": lead.email,
        "product": purchase.product,
        "purchase_kind": purchase.kind,
        "amount_cents": amount_cents,
        "currency": currency,
        "date": when.isoformat() if isinstance(when, (date, datetime)) else str(when),
        "message": message or "",
        "request": None,
        "payment": None,
        "purchase": {
            "kind": purchase.kind,
            "status": purchase.status,
            "amount_cents": purchase.amount_cents,
            "currency": currency,
            "next_payment_at": _iso(purchase.next_payment_at),
            "cancels_at": _iso(purchase.cancels_at),
        },
    }
    if request is not None:
        context["request"] = {
            "id": request.public_id,
            "type": request.type,
            "state": request.state,
            "outcome": request.outcome,
            "ticket_id": request.ticket_id,
        }
    if payment is not None:
        context["payment"] = {
            "payment_id": payment.payment_id,
            "amount_cents": payment.amount_cents,
            "refunded_cents": payment.refunded_cents or 0,
            "currency": payment.currency,
            "paid_at": _iso(payment.paid_at),
            "period_start": _iso(payment.period_start),
            "period_end": _iso(payment.period_end),
        }
    for key in ("amount_cents", "currency", "date"):
        extra.pop(key, None)
    if kind == "address_changed" and "billing_address" not in extra:
        extra["billing_address"] = dict(purchase.billing_address or {})  # the new address, shown to its owner
    # Round-trip through JSON now: a value that cannot be stored is the caller's bug, said at once.
    context["extra"] = json.loads(json.dumps(extra, default=_json_default))
    return context


def enqueue(kind: str, purchase: Purchase, *, request: BillingRequest | None = None,
            payment: Payment | None = None, message: str | None = None,
            extra: dict[str, Any] | None = None) -> None:
    """Queue a customer email about ``purchase`` in the caller's transaction (no commit).

    :param kind: one of :data:`KINDS`.
    :param request: the billing request it is about, if any (type, outcome and ticket are shown).
    :param payment: the payment it is about, if any (its amount is the email's ``{amount}``
        unless the request carries one).
    :param message: text from an agent (a reply, a reason for a decline), shown as written.
    :param extra: more plain values for the templates, under ``extra``; ``amount_cents``,
        ``currency`` and ``date`` here override the email's ``{amount}`` and ``{date}``.

    A ``payment_method_changed`` email waits for the end of the customer's card session
    (:mod:`.card_session`): changes made while it waits are merged into it, so one card session
    sends one email, stating every change and the cards on file at the end.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown email kind {kind!r}; use one of: {', '.join(KINDS)}.")
    context = build_context(kind, purchase, request=request, payment=payment, message=message, extra=extra)
    now = utcnow()
    due = now
    if kind in card_session.KINDS:  # one email per card session: merged into the one still waiting
        context = card_session.with_cards(purchase, context)
        if card_session.merge(purchase.order_id, kind, context, now):
            return
        due = card_session.due(now, now)
    row = OutboxEmail(
        kind=kind,
        to_address=purchase.lead.email,
        order_id=purchase.order_id,
        context=context,
        status="queued",
        attempts=0,
        next_attempt_at=due,
        created_at=now,
    )
    db.session.add(row)
    if due <= now and has_app_context() and current_app.config.get("SELF_BILLING_MAIL_SEND_AFTER_COMMIT"):
        db.session.info.setdefault(PENDING_KEY, []).append(row)


def queued_count() -> int:
    """Emails not sent yet and not given up: ``queued`` plus ``sending``."""
    stmt = select(func.count()).select_from(OutboxEmail).where(OutboxEmail.status.in_(("queued", "sending")))
    return int(db.session.execute(stmt).scalar_one())


def email_to_dict(row: OutboxEmail) -> dict[str, Any]:
    """An outbox row as the merchant API shows it (times as every JSON answer writes them: UTC, whole seconds)."""
    iso = iso_utc
    return {
        "id": row.id,
        "kind": row.kind,
        "to": row.to_address,
        "order_id": row.order_id,
        "subject": row.subject,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status == "queued" else None,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
    }


def list_emails(status: str | None = None, order_id: str | None = None, limit: int = 100) -> list[OutboxEmail]:
    """Outbox rows, newest first, optionally of one status and/or one order."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise ValueError(f"Unknown status {status!r}; use one of: {', '.join(OUTBOX_STATUSES)}.")
    stmt = select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(OutboxEmail.status == status)
    if order_id is not None:
        stmt = stmt.where(OutboxEmail.order_id == order_id)
    return list(db.session.execute(stmt).scalars())


def failed_emails(order_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Emails the worker gave up on, newest first, with the reason: what agents look at."""
    return [email_to_dict(row) for row in list_emails("failed", order_id=order_id, limit=limit)]

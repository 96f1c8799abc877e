"""``self-billing tick``: apply what is due at a given time.

- processor steps left pending (a crash or a lost answer) are carried out again,
  with the same idempotency key;
- delayed cancellations whose date has come take effect (``period_end``); one the customer undid
  ("Keep my subscription") is ``active`` again with no ``cancels_at``, so it is never picked;
- with the sandbox processor, subscriptions whose next payment is due renew
  (a payment is recorded per period, never after a cancellation).

Work goes in batches with a fresh query per batch, so a million purchases never
sit in memory at once. Running it twice for the same time changes nothing more.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from ..db import db
from ..ledger.models import Purchase
from ..ledger.schemas import PaymentIn
from ..ledger.service import record_payment
from ..locking import lock_purchase
from ..payments.processor import gateway_name
from .context import SYSTEM
from .engine import fire
from .steps import context_for, resume_pending, scheduled_request

BATCH = 500
MAX_RENEWALS_PER_PURCHASE = 1000


def end_due_cancellations(now: datetime) -> int:
    """Scheduled cancellations whose date has passed take effect. Returns how many."""
    done = 0
    last_id = 0  # keyset paging: a purchase left for a later run is not read again in this one
    while True:
        ids = db.session.execute(
            select(Purchase.id)
            .where(Purchase.status == "cancel_scheduled", Purchase.cancels_at <= now, Purchase.id > last_id)
            .order_by(Purchase.id)
            .limit(BATCH)
        ).scalars().all()
        db.session.commit()
        if not ids:
            return done
        for purchase_id in ids:
            last_id = purchase_id
            try:
                purchase = lock_purchase(purchase_id)
                if purchase.status != "cancel_scheduled" or purchase.cancels_at is None or purchase.cancels_at > now:
                    db.session.commit()
                    continue
                request = scheduled_request(purchase_id)
                if request is not None and request.pending_event:
                    # A processor step is in flight on it (an agent's "cancel now", a customer's "keep my
                    # subscription"): no other event
                    # while it is; the resume finishes it, and a later tick ends what is still due.
                    db.session.commit()
                    continue
                if request is not None:
                    fire(context_for(request, purchase, now), "period_end", actor=SYSTEM,
                         note="The paid period ended.")
                else:  # scheduled outside any request (imported data): end it all the same
                    purchase.status = "cancelled"
                    purchase.cancelled_at = purchase.cancels_at
                db.session.commit()
                done += 1
            except BaseException:
                db.session.rollback()
                raise


def renew_due_subscriptions(now: datetime) -> int:
    """Sandbox only: record the payments of active subscriptions that fell due by ``now``."""
    renewed = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(Purchase.id, Purchase.order_id)
            .where(Purchase.status == "active", Purchase.kind == "subscription",
                   Purchase.next_payment_at <= now, Purchase.id > last_id)
            .order_by(Purchase.id)
            .limit(BATCH)
        ).all()
        db.session.commit()
        if not rows:
            return renewed
        for purchase_id, order_id in rows:
            last_id = purchase_id
            for _ in range(MAX_RENEWALS_PER_PURCHASE):
                purchase = db.session.get(Purchase, purchase_id, populate_existing=True)
                due = purchase.next_payment_at
                if purchase.status != "active" or due is None or due > now:
                    break
                payment_id = f"{order_id}-{due:%Y%m%d}"[:64]
                _payment, created = record_payment(order_id, PaymentIn(payment_id=payment_id, paid_at=due))
                renewed += created  # a tick running beside us may have recorded it: count ours only
            db.session.commit()


def run_tick(now: datetime) -> list[str]:
    """Everything due at ``now``; returns lines saying what was done."""
    resume_after = current_app.config.get("SELF_BILLING_RESUME_AFTER_SECONDS", 300)
    resumed = resume_pending(now - timedelta(seconds=resume_after))
    ended = end_due_cancellations(now)
    lines = [
        f"Resumed {len(resumed)} pending processor step(s).",
        f"Ended {ended} scheduled cancellation(s) due by {now:%Y-%m-%dT%H:%M:%SZ}.",
    ]
    if gateway_name() == "sandbox":
        lines.append(f"Recorded {renew_due_subscriptions(now)} sandbox renewal payment(s).")
    return lines

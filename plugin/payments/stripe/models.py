"""What the Stripe integration remembers: links between our rows and Stripe's ids, seen events, cursors.

One table, ``sb_stripe_links``, so the ledger's own tables need no Stripe column. A row is
``(kind, our_id) -> stripe_id``; ``(kind, our_id)`` is unique:

======================  =============================  ===========================================
kind                    our_id                         stripe_id
======================  =============================  ===========================================
``subscription``        a purchase's Order ID          ``sub_...`` (subscription purchases)
``payment_intent``      a purchase's Order ID          ``pi_...`` (one-time purchases)
``customer``            a purchase's Order ID          ``cus_...``
``payment``             a payment's payment id         ``ch_...`` or ``pi_...``: what a refund returns
``card``                a saved card's token           ``pm_...`` (cards imported before a real token)
``refund``              ``re_...`` (Stripe's refund)   the payment id it was recorded on
``event``               ``evt_...`` (a webhook event)  the event's type: applied once, ever
``cursor``              an import's list name          the last id the import finished
======================  =============================  ===========================================
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ...db import Base, UTCDateTime, utcnow


class StripeLink(Base):
    """One link between something of ours and a Stripe id (see the module's table)."""

    __tablename__ = "sb_stripe_links"
    __table_args__ = (
        UniqueConstraint("kind", "our_id", name="uq_sb_stripe_links_kind_our_id"),
        Index("ix_sb_stripe_links_kind_stripe_id", "kind", "stripe_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    our_id: Mapped[str] = mapped_column(String(255))
    stripe_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

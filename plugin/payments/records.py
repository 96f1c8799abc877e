"""``sb_processor_calls``: every call the plugin made to the payment processor, and its answer.

One row per attempt, written by :mod:`plugin.payments.processor` in its own short
transaction right after the processor answered (or failed), whatever the caller
does next: money moves, cancellations and card changes alike. It is the trail an
agent or an accountant follows when a refund is questioned.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class ProcessorCall(Base):
    """One attempt at a processor call."""

    __tablename__ = "sb_processor_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: The gateway's name (sandbox, stripe, ...).
    gateway: Mapped[str] = mapped_column(String(40))
    #: refund, cancel_subscription, attach_card, detach_card, set_default_card
    operation: Mapped[str] = mapped_column(String(40))
    purchase_id: Mapped[int] = mapped_column(Integer, index=True)
    payment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(120), nullable=True)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    #: The processor's reference of what it did (a refund id), when it did it.
    reference: Mapped[str] = mapped_column(String(128), default="")
    error_code: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(String(500), default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)

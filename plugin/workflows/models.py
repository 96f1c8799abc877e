"""Request models: a customer's or agent's cancellation or refund request and its audit trail.

``state`` is the column the request's state machine drives; ``outcome`` says
how it ended. ``open_slot`` holds ``"cancellation:<purchase id>"`` or
``"refund:<payment id>"`` while the request is open and NULL once resolved; its
unique index is what makes "at most one open request" hold under concurrent
submissions on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class BillingRequest(Base):
    """A cancellation or refund request (R in the contract)."""

    __tablename__ = "sb_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The public id, e.g. ``req_5f3a...``; also the processor idempotency key.
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    #: cancellation or refund
    type: Mapped[str] = mapped_column(String(20))
    lead_id: Mapped[int] = mapped_column(ForeignKey("sb_leads.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("sb_purchases.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("sb_payments.id"), nullable=True, index=True
    )
    #: requested, auto_processed, ticketed or resolved
    state: Mapped[str] = mapped_column(String(20), default="requested")
    #: None while open; cancelled, cancel_scheduled, refunded, partially_refunded, declined, failed
    outcome: Mapped[str | None] = mapped_column(String(30), nullable=True)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: The reason the customer picked from the merchant's list (a cancellation), as the list worded it
    #: then; None when none was picked. ``reason`` holds what they wrote.
    reason_choice: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: The last processor error, kept for the agent who takes over.
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    open_slot: Mapped[str | None] = mapped_column(String(80), nullable=True, unique=True)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("sb_tickets.id", use_alter=True), nullable=True, index=True
    )
    #: A processor step decided but not yet confirmed: the machine event to fire once the
    #: processor answers (``complete``, ``schedule``, ``refund_full``, ...). While set, no other
    #: event is accepted; a crash leaves it set and ``tick`` resumes it with the same
    #: idempotency key, so money never moves twice.
    pending_event: Mapped[str | None] = mapped_column(String(40), nullable=True)
    pending_amount_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pending_actor: Mapped[str | None] = mapped_column(String(320), nullable=True)
    pending_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    #: Who opened it: customer, system or an agent's email.
    created_by: Mapped[str] = mapped_column(String(320), default="customer")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    events: Mapped[list[RequestEvent]] = relationship(
        back_populates="request", order_by="RequestEvent.id", lazy="raise_on_sql"
    )


class RequestEvent(Base):
    """One transition of a request: the append-only audit trail (R's ``history``)."""

    __tablename__ = "sb_request_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("sb_requests.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: customer, system or the agent's email
    actor: Mapped[str] = mapped_column(String(320))
    note: Mapped[str] = mapped_column(Text, default="")

    request: Mapped[BillingRequest] = relationship(back_populates="events")


def open_slot(request_type: str, purchase_id: int, payment_id: int | None = None) -> str:
    """The ``open_slot`` a request of this kind holds while open: one per payment, or one per purchase."""
    return f"refund:{payment_id}" if request_type == "refund" else f"cancellation:{purchase_id}"

"""Ticket models of the built-in helpdesk store: departments, tickets, messages."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class Department(Base):
    """A helpdesk department tickets are directed to (e.g. Billing)."""

    __tablename__ = "sb_departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Ticket(Base):
    """A helpdesk ticket opened for a request handled by hand."""

    __tablename__ = "sb_tickets"
    __table_args__ = (
        # The queue: filtered by department and status, newest first, paged by id.
        Index("ix_sb_tickets_dept_status_id", "department_id", "status", "id"),
        Index("ix_sb_tickets_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    department_id: Mapped[int] = mapped_column(ForeignKey("sb_departments.id"))
    #: open or closed
    status: Mapped[str] = mapped_column(String(10), default="open")
    lead_id: Mapped[int] = mapped_column(ForeignKey("sb_leads.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("sb_purchases.id"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("sb_requests.id"), nullable=True, index=True)
    #: The id a host helpdesk adapter gave this ticket in its own system, if any.
    external_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    department: Mapped[Department] = relationship(lazy="joined")
    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", order_by="TicketMessage.id", lazy="raise_on_sql"
    )


class TicketMessage(Base):
    """A message on a ticket: the opening body, an agent's reply, a system note."""

    __tablename__ = "sb_ticket_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("sb_tickets.id"), index=True)
    #: customer, system or the agent's email
    author: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    #: True for notes customers never see.
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")

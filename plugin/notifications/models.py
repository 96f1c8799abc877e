"""Outbox and merchant email templates: the tables behind customer email.

An :class:`OutboxEmail` row is written in the same transaction as the change
that causes the email, so an email exists exactly when its change does. The
worker (:mod:`plugin.notifications.worker`) claims rows, renders them the
first time it handles them (``subject``, ``text_body``, ``html_body`` and
``message_id`` are then kept, so every retry sends the very same message),
sends them and records the outcome.

Statuses: ``queued`` (waiting for ``next_attempt_at``), ``sending`` (claimed by
``claimed_by`` at ``claimed_at``; reclaimed after a lease if that worker died),
``sent`` and ``failed`` (given up; ``last_error`` says why, agents see it).

:class:`EmailTemplate` holds the merchant's own subject and body of one kind;
a kind without a row uses the default in :mod:`plugin.notifications.templates`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow

#: Every status an outbox row can be in.
OUTBOX_STATUSES = ("queued", "sending", "sent", "failed")


class OutboxEmail(Base):
    """One customer email, from the moment its cause is committed until it is sent or given up."""

    __tablename__ = "sb_email_outbox"
    __table_args__ = (Index("ix_sb_email_outbox_status_next_attempt", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: request_ticketed, cancellation_done, ... (see plugin.notifications.KINDS)
    kind: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(String(320))
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    #: What the templates are rendered with (names, product, amount, date, message, request ...).
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Filled when first rendered, then reused by every retry.
    subject: Mapped[str | None] = mapped_column(String(998), nullable=True)
    text_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    #: queued, sending, sent or failed
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The claim token of the worker batch holding the row while it is ``sending``.
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailTemplate(Base):
    """The merchant's subject and body of one kind of email (``str.format`` placeholders)."""

    __tablename__ = "sb_email_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

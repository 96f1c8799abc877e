"""Issued accounting documents: invoices and credit notes, numbered and frozen when issued.

An :class:`Invoice` is issued for every completed payment, in the transaction that records
the payment; a :class:`CreditNote` for every refund, in the transaction that records the
refund. Each takes the next number of its series (:mod:`.numbering`) and keeps, in
``content``, everything its PDF shows (seller, bill-to, lines, totals, dates) as it was at
that moment: an issued document never changes, whatever happens to the ledger afterwards.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime


class DocumentCounter(Base):
    """The last number used in a series (``invoice:2026``, ``credit_note``, ...): a locked row, so
    numbers never skip or repeat, on SQLite and PostgreSQL alike."""

    __tablename__ = "sb_document_counters"

    series: Mapped[str] = mapped_column(String(60), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Invoice(Base):
    """The invoice of one payment."""

    __tablename__ = "sb_invoices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(60), unique=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("sb_payments.id"), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: What the document shows, frozen at issue (see :mod:`.issuing`).
    content: Mapped[dict[str, Any]] = mapped_column(JSON)


class CreditNote(Base):
    """The credit note of one refund: it names the invoice it corrects and the amount it reverses."""

    __tablename__ = "sb_credit_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(60), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("sb_invoices.id"), index=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("sb_refunds.id"), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)

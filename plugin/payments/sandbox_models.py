"""Tables the sandbox processor keeps as its own records (as a real processor would)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class SandboxToken(Base):
    """A card token handed out by the sandbox token endpoint (no card number kept)."""

    __tablename__ = "sb_sandbox_tokens"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    brand: Mapped[str] = mapped_column(String(30))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    #: The sandbox's test number for a declined card was given.
    declines: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SandboxOperation(Base):
    """A processed call, by idempotency key: the same key gives back this result."""

    __tablename__ = "sb_sandbox_operations"

    idempotency_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    #: refund, cancel
    kind: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(64), index=True)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reference: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SandboxFault(Base):
    """Injected failures: the next ``remaining`` calls of ``kind`` fail as an outage would."""

    __tablename__ = "sb_sandbox_faults"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    remaining: Mapped[int] = mapped_column(Integer, default=0)

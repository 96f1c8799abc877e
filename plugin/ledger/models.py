"""Ledger models: what was bought, by whom, what was paid and refunded.

Money is integer cents (``*_cents``), times are aware UTC. Money records are
append-only: a refund adds a :class:`Refund` row; ``Payment.refunded_cents`` is
the running total kept in the same transaction under the purchase's row lock.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class Lead(Base):
    """A customer, known by email (unique, compared case-insensitively)."""

    __tablename__ = "sb_leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    #: ``email`` trimmed and lower-cased; what logins and lookups compare.
    email_normalized: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purchases: Mapped[list[Purchase]] = relationship(back_populates="lead", lazy="raise_on_sql")

    @staticmethod
    def normalize_email(email: str) -> str:
        return email.strip().lower()


class PricePoint(Base):
    """What a product costs and how it bills, cancels and refunds."""

    __tablename__ = "sb_price_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    product: Mapped[str] = mapped_column(String(200))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: None for a one-time price; else day, week, month or year.
    interval: Mapped[str | None] = mapped_column(String(10), nullable=True)
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    #: instant or delayed (at the end of the paid period).
    cancellation: Mapped[str] = mapped_column(String(10), default="instant")
    refund_window_days: Mapped[int] = mapped_column(Integer, default=30)
    #: The price's tax rule ({"name", "rate", "inclusive"}, :class:`plugin.ledger.tax.TaxRule`), or None.
    tax: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_recurring(self) -> bool:
        return self.interval is not None


class Purchase(Base):
    """One order: a one-time purchase or a subscription."""

    __tablename__ = "sb_purchases"
    __table_args__ = (
        Index("ix_sb_purchases_lead_purchased", "lead_id", "purchased_at"),
        Index("ix_sb_purchases_status_cancels_at", "status", "cancels_at"),
        Index("ix_sb_purchases_status_next_payment", "status", "next_payment_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("sb_leads.id"))
    price_point_id: Mapped[int] = mapped_column(ForeignKey("sb_price_points.id"), index=True)
    #: one_time or subscription
    kind: Mapped[str] = mapped_column(String(20))
    #: paid, refunded, partially_refunded (one-time); active, cancel_scheduled, cancelled (subscription)
    status: Mapped[str] = mapped_column(String(20))
    product: Mapped[str] = mapped_column(String(200))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_payment_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancels_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The current bill-to address; payments snapshot it when they are made.
    billing_address: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: card or paypal
    payment_type: Mapped[str] = mapped_column(String(10), default="card")
    paypal_payer_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    #: Bumped by every money-moving transaction; the row lock every such step takes first.
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="purchases")
    price_point: Mapped[PricePoint] = relationship()
    payments: Mapped[list[Payment]] = relationship(
        back_populates="purchase", order_by="Payment.paid_at", lazy="raise_on_sql"
    )
    payment_methods: Mapped[list[PaymentMethod]] = relationship(
        back_populates="purchase", order_by="PaymentMethod.id", lazy="raise_on_sql"
    )

    @property
    def is_subscription(self) -> bool:
        return self.kind == "subscription"


class Payment(Base):
    """A completed payment of a purchase, with the bill-to address as it was then."""

    __tablename__ = "sb_payments"
    __table_args__ = (Index("ix_sb_payments_purchase_paid", "purchase_id", "paid_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(64), unique=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("sb_purchases.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: paid, refunded or partially_refunded (follows from refunded_cents)
    status: Mapped[str] = mapped_column(String(20), default="paid")
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Snapshot of the purchase's billing address when this payment was made.
    bill_to: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: For subscriptions, the period this payment pays for.
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purchase: Mapped[Purchase] = relationship(back_populates="payments")
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="payment", order_by="Refund.id", lazy="raise_on_sql"
    )

    @property
    def remaining_cents(self) -> int:
        return self.amount_cents - self.refunded_cents


class Refund(Base):
    """An append-only record of money returned on a payment."""

    __tablename__ = "sb_refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("sb_payments.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: The processor's idempotency key: one key, one refund, ever.
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    processor_reference: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("sb_requests.id"), nullable=True)
    #: customer, system or the agent's email
    actor: Mapped[str] = mapped_column(String(320))
    refunded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="refunds")


class PaymentMethod(Base):
    """A saved card of a purchase: the processor's token and what may be shown, never a number."""

    __tablename__ = "sb_payment_methods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("sb_purchases.id"), index=True)
    type: Mapped[str] = mapped_column(String(10), default="card")
    processor_token: Mapped[str] = mapped_column(String(100))
    brand: Mapped[str] = mapped_column(String(30))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purchase: Mapped[Purchase] = relationship(back_populates="payment_methods")


class Settings(Base):
    """The merchant's self-service settings (a single row, id 1)."""

    __tablename__ = "sb_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: helpdesk, standalone or both
    portal: Mapped[str] = mapped_column(String(20), default="both")
    #: disabled, request or automatic
    cancellation_mode: Mapped[str] = mapped_column(String(20), default="request")
    refund_mode: Mapped[str] = mapped_column(String(20), default="request")
    department: Mapped[str] = mapped_column(String(100), default="Billing")
    #: The seller profile documents name (name, address lines, email, tax_id, country); a value here
    #: wins over the SELF_BILLING_MERCHANT_* configuration.
    seller: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The seller's logo as a data: URI ("" for none), and its SHA-256 (what a cached PDF is keyed by).
    #: Deferred: every request reads the settings (the door check), only documents and the settings
    #: API read the logo, which may be tens of kilobytes.
    logo: Mapped[str] = mapped_column(Text, default="", deferred=True)
    logo_sha: Mapped[str] = mapped_column(String(64), default="")
    #: Reverse-charge business customers in another EU member state.
    reverse_charge: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The reasons the cancellation confirmation offers, in order; None: the default list
    #: (:data:`plugin.ledger.settings.DEFAULT_CANCELLATION_REASONS`).
    cancellation_reasons: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

"""The merchant's operations on the ledger, as a Python API.

Hosts that sync orders in-process call these directly; the merchant HTTP API
(``plugin.api.admin``) validates with the same schemas and calls these too, so
both give the same answers and the same errors. Each write function takes its
schema model or a plain mapping (validated with :func:`.schemas.validate`),
commits its own transaction, and is idempotent: the same input twice leaves the
same rows. A function that fails rolls back and writes nothing.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..db import db
from ..errors import Conflict, InvalidInput, NotFound
from ..locking import lock_purchase
from .models import Lead, Payment, PaymentMethod, PricePoint, Purchase, Settings
from .periods import add_interval
from .present import iso_utc
from .schemas import (
    CardMethodIn,
    FaultsIn,
    OrderIn,
    PaymentIn,
    PricePointIn,
    SettingsIn,
    is_valid_id,
    money_cents,
    validate,
)

SETTINGS_ID = 1

F = TypeVar("F", bound=Callable[..., Any])


def _write(fn: F) -> F:
    """Run ``fn`` as one transaction that writes all or nothing.

    On failure whatever ``fn`` left in the session is rolled back. When a
    concurrent call created the same lead, price point, order or payment first
    (a unique key raced), ``fn`` runs once more and then finds that row, so the
    same request sent twice at once still answers as a repeat.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            try:
                return fn(*args, **kwargs)
            except IntegrityError:
                db.session.rollback()
                if attempt == 2:
                    raise
            except BaseException:
                db.session.rollback()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper  # type: ignore[return-value]


def check_id(value: str, field: str) -> str:
    """``value`` when it is an id of the accepted form, else a 400 naming ``field``."""
    if not is_valid_id(value):
        raise InvalidInput(
            f"The {field} in the URL is not valid: use 1 to 64 letters, digits, '.', '_' or '-'.",
            fields={field: "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"},
        )
    return value


# -- settings --------------------------------------------------------------------------


def get_settings() -> Settings:
    """The merchant's settings row, created with defaults on first use."""
    settings = db.session.get(Settings, SETTINGS_ID)
    if settings is None:
        settings = Settings(id=SETTINGS_ID, enabled=False, portal="both",
                            cancellation_mode="request", refund_mode="request", department="Billing")
        db.session.add(settings)
        try:
            db.session.commit()
        except IntegrityError:  # created concurrently
            db.session.rollback()
            settings = db.session.get(Settings, SETTINGS_ID)
    return settings


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    return {
        "enabled": settings.enabled,
        "portal": settings.portal,
        "cancellation": {"mode": settings.cancellation_mode},
        "refunds": {"mode": settings.refund_mode},
        "department": settings.department,
    }


@_write
def update_settings(data: SettingsIn | Mapping[str, Any]) -> Settings:
    """Apply any subset of the settings."""
    data = validate(SettingsIn, data)
    settings = get_settings()
    if data.enabled is not None:
        settings.enabled = data.enabled
    if data.portal is not None:
        settings.portal = data.portal
    if data.cancellation is not None:
        settings.cancellation_mode = data.cancellation.mode
    if data.refunds is not None:
        settings.refund_mode = data.refunds.mode
    if data.department is not None:
        settings.department = data.department
    db.session.commit()
    return settings


# -- price points ----------------------------------------------------------------------


@_write
def upsert_price_point(code: str, data: PricePointIn | Mapping[str, Any]) -> tuple[PricePoint, bool]:
    """Create or replace the price point ``code``. Returns it and whether it was created."""
    check_id(code, "code")
    data = validate(PricePointIn, data)
    price = db.session.execute(select(PricePoint).where(PricePoint.code == code)).scalar_one_or_none()
    created = price is None
    if created:
        price = PricePoint(code=code)
        db.session.add(price)
    price.product = data.product
    price.amount_cents = money_cents(data.amount)
    price.currency = data.currency
    price.interval = data.interval
    price.interval_count = data.interval_count if data.interval else 1
    price.cancellation = data.cancellation
    price.refund_window_days = data.refund_window_days
    db.session.commit()
    return price, created


# -- leads and orders ------------------------------------------------------------------


def find_or_create_lead(email: str, first_name: str = "", last_name: str = "") -> Lead:
    """The lead with this email (case-insensitive, trimmed), created if new; names updated when given."""
    normalized = Lead.normalize_email(email)
    lead = db.session.execute(select(Lead).where(Lead.email_normalized == normalized)).scalar_one_or_none()
    if lead is None:
        lead = Lead(email=email.strip(), email_normalized=normalized, first_name=first_name, last_name=last_name)
        db.session.add(lead)
    if first_name:
        lead.first_name = first_name
    if last_name:
        lead.last_name = last_name
    return lead


def _apply_card(purchase: Purchase, card: CardMethodIn) -> None:
    methods = db.session.execute(
        select(PaymentMethod).where(PaymentMethod.purchase_id == purchase.id)
    ).scalars().all()
    match = next(
        (m for m in methods if (m.brand, m.last4, m.exp_month, m.exp_year)
         == (card.brand.lower(), card.last4, card.exp_month, card.exp_year)),
        None,
    )
    if match is None:
        match = PaymentMethod(
            purchase_id=purchase.id,
            type="card",
            processor_token=f"pm_import_{purchase.order_id}_{card.last4}_{card.exp_month}{card.exp_year}",
            brand=card.brand.lower(),
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )
        db.session.add(match)
    for method in methods:
        method.is_default = method is match
    match.is_default = True


def read_price_point(code: str) -> PricePoint:
    """The price point ``code``, or a 404 (for reading it back)."""
    check_id(code, "code")
    price = db.session.execute(select(PricePoint).where(PricePoint.code == code)).scalar_one_or_none()
    if price is None:
        raise NotFound(
            f"There is no price point {code!r}; create it with PUT /api/admin/price-points/{code}.",
            code="price_point_not_found",
        )
    return price


def get_price_point(code: str) -> PricePoint:
    """The price point ``code``; an unknown one is a 400 on ``price_point`` (orders name it)."""
    price = db.session.execute(select(PricePoint).where(PricePoint.code == code)).scalar_one_or_none()
    if price is None:
        raise InvalidInput(
            f"There is no price point {code!r}; create it first with PUT /api/admin/price-points/{code}.",
            code="unknown_price_point",
            fields={"price_point": "unknown price point"},
        )
    return price


@_write
def upsert_order(order_id: str, data: OrderIn | Mapping[str, Any]) -> tuple[Purchase, bool]:
    """Create or replace the purchase ``order_id``; the lead is found or created by email.

    Replacing keeps what the purchase has lived through (payments, status,
    cancellation) and replaces who bought it, the price point, the bill-to
    address and the payment method. Payments already made keep the bill-to
    address they were made with.
    """
    check_id(order_id, "order_id")
    data = validate(OrderIn, data)
    price = get_price_point(data.price_point)
    kind = "subscription" if price.is_recurring else "one_time"
    lead = find_or_create_lead(str(data.email), data.first_name, data.last_name)
    purchase = db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one_or_none()
    if purchase is not None:
        purchase = lock_purchase(purchase.id)  # replacing waits for money-moving steps on it
    created = purchase is None
    if created:
        purchase = Purchase(
            order_id=order_id,
            kind=kind,
            status="active" if kind == "subscription" else "paid",
            lock_version=0,
        )
        db.session.add(purchase)
    else:
        if purchase.kind != kind:
            has_payments = db.session.execute(
                select(Payment.id).where(Payment.purchase_id == purchase.id).limit(1)
            ).first()
            if has_payments:
                raise Conflict(
                    "This order already has payments; it cannot change between one-time and subscription.",
                    code="kind_change",
                )
            purchase.kind = kind
            purchase.status = "active" if kind == "subscription" else "paid"
    purchase.lead = lead
    purchase.price_point = price
    purchase.product = price.product
    purchase.amount_cents = price.amount_cents
    purchase.currency = price.currency
    purchase.purchased_at = data.purchased_at
    purchase.billing_address = data.billing_address.model_dump()
    if data.payment_method.type == "paypal":
        purchase.payment_type = "paypal"
        purchase.paypal_payer_email = str(data.payment_method.payer_email)
    else:
        purchase.payment_type = "card"
        purchase.paypal_payer_email = None
    db.session.flush()
    if data.payment_method.type == "card":
        _apply_card(purchase, data.payment_method)
    _refresh_next_payment(purchase)
    if created and data.send_confirmation:
        from ..notifications import enqueue

        enqueue("purchase_confirmation", purchase)
    db.session.commit()
    return purchase, created


def _refresh_next_payment(purchase: Purchase) -> None:
    """A subscription's next payment follows from its last payment (or its start) and interval."""
    if purchase.kind != "subscription":
        purchase.next_payment_at = None
        return
    if purchase.status == "cancelled":
        purchase.next_payment_at = None
        return
    price = purchase.price_point
    last_paid = db.session.execute(
        select(Payment.paid_at).where(Payment.purchase_id == purchase.id).order_by(Payment.paid_at.desc()).limit(1)
    ).scalar_one_or_none()
    anchor = last_paid or purchase.purchased_at
    purchase.next_payment_at = add_interval(anchor, price.interval, price.interval_count)


def get_purchase(order_id: str) -> Purchase:
    """The purchase ``order_id``, or a 404."""
    check_id(order_id, "order_id")
    purchase = db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one_or_none()
    if purchase is None:
        raise NotFound(f"There is no order {order_id!r}.", code="order_not_found")
    return purchase


@_write
def record_payment(order_id: str, data: PaymentIn | Mapping[str, Any]) -> tuple[Payment, bool]:
    """Record a completed payment of ``order_id``. Returns it and whether it is new.

    The same payment_id twice is one payment; the same payment_id with another
    time or amount is a conflict (a different payment needs its own id). Takes
    the purchase's row lock first, so concurrent payments of one purchase see
    each other and its next payment date follows from the latest.
    """
    check_id(order_id, "order_id")
    data = validate(PaymentIn, data)
    purchase = lock_purchase(get_purchase(order_id).id)
    existing = db.session.execute(
        select(Payment).where(Payment.payment_id == data.payment_id)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.purchase_id != purchase.id:
            raise Conflict(
                f"Payment {data.payment_id!r} is already recorded on another order; "
                "give each payment its own payment_id.",
                code="payment_id_taken",
            )
        wanted = money_cents(data.amount) if data.amount is not None else existing.amount_cents
        if existing.paid_at != data.paid_at or existing.amount_cents != wanted:
            raise Conflict(
                f"Payment {data.payment_id!r} is already recorded with another time or amount; "
                "a different payment needs its own payment_id.",
                code="payment_id_reused",
            )
        return existing, False
    if purchase.status == "cancelled" and purchase.cancelled_at and data.paid_at > purchase.cancelled_at:
        raise Conflict("This subscription is cancelled; no payment is taken after its cancellation.",
                       code="purchase_cancelled")
    if purchase.status == "cancel_scheduled" and purchase.cancels_at and data.paid_at >= purchase.cancels_at:
        raise Conflict("This subscription ends before that date; no payment is taken after it.",
                       code="purchase_cancelled")
    price = purchase.price_point
    amount = money_cents(data.amount) if data.amount is not None else purchase.amount_cents
    if amount <= 0:
        raise InvalidInput("A payment must be more than zero.", fields={"amount": "must be more than 0"})
    payment = Payment(
        payment_id=data.payment_id,
        purchase_id=purchase.id,
        amount_cents=amount,
        currency=purchase.currency,
        paid_at=data.paid_at,
        status="paid",
        refunded_cents=0,
        bill_to=dict(purchase.billing_address or {}),
    )
    if purchase.kind == "subscription":
        payment.period_start = data.paid_at
        payment.period_end = add_interval(data.paid_at, price.interval, price.interval_count)
    db.session.add(payment)
    db.session.flush()
    _refresh_next_payment(purchase)
    db.session.commit()
    return payment, True


# -- what the merchant reads back ----------------------------------------------------------


def order_to_dict(purchase: Purchase) -> dict[str, Any]:
    """The purchase as the customer sees it (contract P, with its requests), plus the merchant's extras.

    Extras: ``price_point`` (its code), ``lead`` (email and names), each
    payment's ``bill_to`` (the address it was invoiced to) and ``tickets``
    (id, subject, department, status) opened for the purchase's requests.
    """
    from ..presenters import purchase_to_dict
    from ..tickets.models import Ticket

    data = purchase_to_dict(purchase)
    data["price_point"] = purchase.price_point.code
    lead = db.session.get(Lead, purchase.lead_id)
    data["lead"] = {"email": lead.email, "first_name": lead.first_name, "last_name": lead.last_name}
    bill_to = {
        payment_id: dict(address or {})
        for payment_id, address in db.session.execute(
            select(Payment.payment_id, Payment.bill_to).where(Payment.purchase_id == purchase.id)
        )
    }
    for payment in data.get("payments", []):
        payment["bill_to"] = bill_to.get(payment["payment_id"], {})
    tickets = db.session.execute(
        select(Ticket).where(Ticket.purchase_id == purchase.id).order_by(Ticket.id)
    ).scalars()
    data["tickets"] = [
        {
            "id": ticket.id,
            "subject": ticket.subject,
            "department": ticket.department.name,
            "status": ticket.status,
            "created_at": iso_utc(ticket.created_at),
        }
        for ticket in tickets
    ]
    return data


# -- the sandbox processor's fault injection -----------------------------------------------


def require_sandbox(what: str = "Fault injection") -> Any:
    """The sandbox gateway, or a 404 saying ``what`` exists only with the sandbox processor."""
    from ..payments import get_gateway
    from ..payments.sandbox import SandboxGateway

    gateway = get_gateway()
    if not isinstance(gateway, SandboxGateway):
        raise NotFound(
            f"{what} exists only on the sandbox processor, and this app uses "
            f"the {getattr(gateway, 'name', 'configured')!r} gateway (SELF_BILLING_GATEWAY).",
            code="sandbox_not_in_use",
        )
    return gateway


def get_sandbox_faults() -> dict[str, int]:
    """How many of the next refund, cancel and attach_card calls the sandbox will fail."""
    return require_sandbox().set_faults({})


def set_sandbox_faults(data: FaultsIn | Mapping[str, Any]) -> dict[str, int]:
    """Make the sandbox fail the next n calls of each kind given; answers every kind's count.

    404 when the configured gateway is not the sandbox.
    """
    gateway = require_sandbox()
    data = validate(FaultsIn, data)
    return gateway.set_faults(data.model_dump(exclude_none=True))

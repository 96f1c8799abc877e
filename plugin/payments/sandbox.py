"""The sandbox payment processor: the default gateway, a product feature for trying things out.

It behaves like a real processor behind the same interface: it keeps its own
records (``sb_sandbox_*`` tables, written on their own connection and committed
at once, as a remote system's would be), honours idempotency keys (the same key
gives the same result; money moves once), issues card tokens from test numbers,
and fails on demand (``PUT {prefix}/api/admin/sandbox/faults``).

Test cards: ``4242424242424242`` attaches; ``4000000000000002`` is declined when attached.
"""
from __future__ import annotations

import secrets

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ..db import db, utcnow
from .interface import (
    CancelOrder,
    CancelResult,
    CardDeclined,
    CardDetails,
    CardRef,
    GatewayError,
    InvalidToken,
    PayPalManaged,
    ProcessorOutage,
    PurchaseRef,
    RefundOrder,
    RefundResult,
    ResumeOrder,
    ResumeResult,
)
from .sandbox_models import SandboxFault, SandboxOperation, SandboxToken

DECLINED_TEST_NUMBER = "4000000000000002"
FAULT_KINDS = ("refund", "cancel", "resume", "attach_card")

_BRANDS = (
    (("4",), "visa"),
    (("51", "52", "53", "54", "55", "22", "23", "24", "25", "26", "27"), "mastercard"),
    (("34", "37"), "amex"),
    (("6011", "65"), "discover"),
)


class _OverRefund(Exception):
    """Rolls back a refund claim that would return more than was paid."""


def luhn_valid(number: str) -> bool:
    """True when ``number`` passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str:
    for prefixes, brand in _BRANDS:
        if number.startswith(prefixes):
            return brand
    return "card"


class SandboxGateway:
    """A processor that runs inside the app, with its records in the same database."""

    name = "sandbox"

    # -- tokens (the processor's side of the card form) -------------------------------

    def create_token(self, number: str, exp_month: int, exp_year: int, cvc: str) -> SandboxToken:
        """Tokenize a card. The number is checked and dropped; only brand and last four stay."""
        token = SandboxToken(
            token="tok_" + secrets.token_urlsafe(18),
            brand=card_brand(number),
            last4=number[-4:],
            exp_month=exp_month,
            exp_year=exp_year,
            declines=number == DECLINED_TEST_NUMBER,
            created_at=utcnow(),
        )
        with db.engine.begin() as conn:
            conn.execute(
                insert(SandboxToken).values(
                    token=token.token,
                    brand=token.brand,
                    last4=token.last4,
                    exp_month=token.exp_month,
                    exp_year=token.exp_year,
                    declines=token.declines,
                    created_at=token.created_at,
                )
            )
        return token

    # -- faults -----------------------------------------------------------------------

    def set_faults(self, faults: dict[str, int]) -> dict[str, int]:
        """Make the next n calls of each kind fail as an outage. Returns all current counts."""
        with db.engine.begin() as conn:
            for kind, remaining in faults.items():
                updated = conn.execute(
                    update(SandboxFault).where(SandboxFault.kind == kind).values(remaining=remaining)
                )
                if updated.rowcount == 0:
                    conn.execute(insert(SandboxFault).values(kind=kind, remaining=remaining))
            rows = conn.execute(select(SandboxFault.kind, SandboxFault.remaining)).all()
        current = {kind: 0 for kind in FAULT_KINDS}
        current.update({kind: remaining for kind, remaining in rows})
        return current

    def _maybe_fail(self, kind: str) -> None:
        with db.engine.begin() as conn:
            hit = conn.execute(
                update(SandboxFault)
                .where(SandboxFault.kind == kind, SandboxFault.remaining > 0)
                .values(remaining=SandboxFault.remaining - 1)
            ).rowcount
        if hit:
            raise ProcessorOutage(
                f"The sandbox processor is failing {kind} calls on purpose (fault injection). "
                "Retry once the injected faults are used up."
            )

    # -- money ------------------------------------------------------------------------

    def _replay(self, idempotency_key: str) -> SandboxOperation | None:
        with db.engine.connect() as conn:
            row = conn.execute(
                select(SandboxOperation).where(SandboxOperation.idempotency_key == idempotency_key)
            ).first()
        return row

    def _record(self, **values: object) -> None:
        with db.engine.begin() as conn:
            conn.execute(insert(SandboxOperation).values(created_at=utcnow(), **values))

    def refund(self, order: RefundOrder) -> RefundResult:
        amount_cents, idempotency_key, currency = order.amount_cents, order.idempotency_key, order.currency
        previous = self._replay(idempotency_key)
        if previous is not None:
            if previous.kind != "refund" or previous.target != order.payment_id:
                raise GatewayError("This idempotency key was already used for another call.")
            return RefundResult(previous.reference, previous.amount_cents or 0, currency)
        self._maybe_fail("refund")
        if amount_cents <= 0:
            raise GatewayError("A refund must be more than zero.")
        reference = "re_" + secrets.token_hex(10)
        try:
            # Claim the key first, then check the total in the same transaction: a concurrent call
            # with the same key waits on the key's unique index and then replays our result. Calls
            # with other keys for the same payment take turns: on SQLite the insert's write lock
            # makes claim and check one step; on PostgreSQL (READ COMMITTED, where each call's sum
            # would miss the others' uncommitted claims) a transaction-scoped advisory lock per payment.
            with db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:target, 0))"),
                                 {"target": f"self-billing-sandbox-refund:{order.payment_id}"})
                conn.execute(
                    insert(SandboxOperation).values(
                        created_at=utcnow(),
                        idempotency_key=idempotency_key,
                        kind="refund",
                        target=order.payment_id,
                        amount_cents=amount_cents,
                        reference=reference,
                    )
                )
                total = conn.execute(
                    select(func.coalesce(func.sum(SandboxOperation.amount_cents), 0)).where(
                        SandboxOperation.kind == "refund", SandboxOperation.target == order.payment_id
                    )
                ).scalar_one()
                if total > order.paid_cents:
                    raise _OverRefund()
        except _OverRefund:
            raise GatewayError("The refund is more than what remains of the payment at the processor.") from None
        except IntegrityError:  # the same key raced us: its result stands
            previous = self._replay(idempotency_key)
            assert previous is not None
            return RefundResult(previous.reference, previous.amount_cents or 0, currency)
        return RefundResult(reference, amount_cents, currency)

    def cancel_subscription(self, order: CancelOrder) -> CancelResult:
        at_period_end, idempotency_key = order.at_period_end, order.idempotency_key
        previous = self._replay(idempotency_key)
        if previous is not None:
            return CancelResult(previous.reference, previous.detail == "at_period_end")
        self._maybe_fail("cancel")
        reference = "sub_cancel_" + secrets.token_hex(8)
        try:
            self._record(
                idempotency_key=idempotency_key,
                kind="cancel",
                target=order.purchase.order_id,
                reference=reference,
                detail="at_period_end" if at_period_end else "now",
            )
        except IntegrityError:
            previous = self._replay(idempotency_key)
            assert previous is not None
            return CancelResult(previous.reference, previous.detail == "at_period_end")
        return CancelResult(reference, at_period_end)

    def resume_subscription(self, order: ResumeOrder) -> ResumeResult:
        previous = self._replay(order.idempotency_key)
        if previous is not None:
            if previous.kind != "resume" or previous.target != order.purchase.order_id:
                raise GatewayError("This idempotency key was already used for another call.")
            return ResumeResult(previous.reference)
        self._maybe_fail("resume")
        reference = "sub_resume_" + secrets.token_hex(8)
        try:
            self._record(idempotency_key=order.idempotency_key, kind="resume", target=order.purchase.order_id,
                         reference=reference, detail="cancel_at_period_end=false")
        except IntegrityError:  # the same key raced us: its result stands
            previous = self._replay(order.idempotency_key)
            assert previous is not None
            return ResumeResult(previous.reference)
        return ResumeResult(reference)

    # -- cards ------------------------------------------------------------------------

    def _refuse_paypal(self, purchase: PurchaseRef) -> None:
        if purchase.payment_type == "paypal":
            raise PayPalManaged(
                "This purchase is paid with PayPal: change its payment method under "
                "'Manage automatic payments' in your PayPal account."
            )

    def attach_payment_method(self, purchase: PurchaseRef, token: str) -> CardDetails:
        self._refuse_paypal(purchase)
        with db.engine.connect() as conn:
            row = conn.execute(select(SandboxToken).where(SandboxToken.token == token)).first()
        if row is None:
            raise InvalidToken("This card token is unknown to the payment processor; enter the card again.")
        self._maybe_fail("attach_card")
        if row.declines:
            raise CardDeclined("The card was declined by the payment processor; try another card.")
        return CardDetails(row.token, row.brand, row.last4, row.exp_month, row.exp_year)

    def detach_payment_method(self, purchase: PurchaseRef, card: CardRef) -> None:
        self._refuse_paypal(purchase)

    def set_default_payment_method(self, purchase: PurchaseRef, card: CardRef) -> None:
        self._refuse_paypal(purchase)

"""May this happen? The one answer for every door: the portal's pages and JSON, the presenters'
``actions``, the desk, and the request machines themselves.

- Cancel and refund: would the request machine take a customer's ``submit`` now? The
  conditions are the machines' own (:mod:`.machines`), checked on a probe request that
  is not saved, so the icons a customer sees are exactly the steps the server takes. An
  open request of the same kind answers "not now" (a repeat gets that request instead).
- Keep a subscription whose cancellation is scheduled: would the machine take the customer's
  ``resume`` on the request that scheduled it (:func:`can_resume`)?
- Card and address changes: the plain rules of :mod:`.rules`.

The ``*_refusal`` functions say why not, in the customer's words: 403 when the merchant
turned the action off, else 409.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from ..errors import BillingError, Conflict, NotAllowed
from .context import RequestContext
from .engine import acceptor, accepts
from .machines import CUSTOMER, SYSTEM
from .rules import address_changes_allowed, card_changes_allowed

CANCEL_DISABLED = "Self-service cancellation is turned off for this store. Contact support to cancel."
REFUND_DISABLED = "Self-service refunds are turned off for this store. Contact support to ask for a refund."
CANCEL_OPEN = "A cancellation request for this subscription is already open. We will email you when it is handled."
REFUND_OPEN = "A refund request for this payment is already open. We will email you when it is handled."
CANCEL_UNAVAILABLE = ("This purchase cannot be cancelled here: it is not an active subscription, "
                      "or it is already cancelled or scheduled to end. Contact support for help.")
RESUME_NOTHING = "This subscription is not set to end, so there is no cancellation to undo."
RESUME_ENDED = "This subscription has already ended, so it cannot be kept here. Contact support to start it again."
RESUME_TOO_LATE = "The cancellation has already taken effect, so it cannot be undone here. Contact support for help."
RESUME_BUSY = "We are already keeping your subscription. Reload the page in a moment to see it."
RESUME_ELSEWHERE = "This cancellation was not made here, so it cannot be undone here. Contact support to keep it."
REFUND_UNAVAILABLE = ("This payment cannot be refunded here: its refund window has passed or it is already "
                      "refunded. Contact support for help.")


class _Probe:
    """A request that is not there yet: what a customer's submit would start from."""

    __slots__ = ("created_by", "error", "outcome", "pending_event", "state", "type")

    def __init__(self, request_type: str) -> None:
        self.type = request_type
        self.state = "new"
        self.outcome = None
        self.created_by = CUSTOMER
        self.error = None
        self.pending_event = None


_CANCEL_PROBE = _Probe("cancellation")
_REFUND_PROBE = _Probe("refund")


def _path_from_requested(request_type: str, purchase: Any, payment: Any, settings: Any, now: datetime) -> str:
    probe = _Probe(request_type)
    probe.state = "requested"
    ctx = RequestContext(probe, purchase, payment, settings, now)  # type: ignore[arg-type]
    if not accepts(ctx, "auto_process", actor=SYSTEM):
        return "ticket"
    if request_type == "refund":
        return "now"
    probe.state = "auto_processed"
    return "at_period_end" if accepts(ctx, "schedule", actor=SYSTEM) else "now"


def cancellation_path(purchase: Any, settings: Any, now: datetime) -> str:
    """What a customer's cancellation will do, as the machine would take it: ``"now"``,
    ``"at_period_end"`` or ``"ticket"`` (an agent decides)."""
    return _path_from_requested("cancellation", purchase, None, settings, now)


def refund_path(purchase: Any, payment: Any, settings: Any, now: datetime) -> str:
    """What a customer's refund request will do: ``"now"`` (refunded at once) or ``"ticket"``."""
    return _path_from_requested("refund", purchase, payment, settings, now)


def can_cancel(purchase: Any, settings: Any, now: datetime, *, request_open: bool) -> bool:
    """May the customer ask to cancel ``purchase`` now? (False while a cancellation request is open.)"""
    if request_open:
        return False
    return accepts(RequestContext(_CANCEL_PROBE, purchase, None, settings, now), "submit", actor=CUSTOMER)  # type: ignore[arg-type]


def can_refund(purchase: Any, payment: Any, settings: Any, now: datetime, *, request_open: bool) -> bool:
    """May the customer ask for a refund of ``payment`` now? (False while its refund request is open.)

    ``payment`` needs ``paid_at`` and ``remaining_cents``: an ORM row or a presenter's light row.
    """
    if request_open:
        return False
    return accepts(RequestContext(_REFUND_PROBE, purchase, payment, settings, now), "submit", actor=CUSTOMER)  # type: ignore[arg-type]


def refund_check(purchase: Any, settings: Any, now: datetime) -> Callable[..., bool]:
    """:func:`can_refund` for many payments of one purchase: ``check(payment, request_open=...)``.

    The same question on one probe context whose payment changes (My Orders asks it for every payment
    shown), so the answers are exactly :func:`can_refund`'s.
    """
    ctx = RequestContext(_REFUND_PROBE, purchase, None, settings, now)  # type: ignore[arg-type]
    submit_accepted = acceptor(ctx, "submit")  # the machine's own conditions, looked up once for every payment

    def check(payment: Any, *, request_open: bool) -> bool:
        if request_open:
            return False
        ctx.payment = payment
        return submit_accepted(actor=CUSTOMER)

    return check


def can_resume(purchase: Any, scheduled: Any, settings: Any, now: datetime) -> bool:
    """May the customer keep ``purchase``, undoing its scheduled cancellation ("Keep my subscription")?

    ``scheduled`` is the cancellation request that scheduled the end (None when there is none): the
    machine's ``resume`` must take it now, with no processor step in flight on it.
    """
    if scheduled is None or scheduled.pending_event:
        return False
    return accepts(RequestContext(scheduled, purchase, None, settings, now), "resume", actor=CUSTOMER)


def resume_refusal(purchase: Any, scheduled: Any, now: datetime) -> BillingError:
    """Why "Keep my subscription" is not offered: nothing to undo, already over, too late, or busy."""
    if purchase.status == "cancelled":
        return Conflict(RESUME_ENDED, code="already_cancelled")
    if purchase.status != "cancel_scheduled":
        return Conflict(RESUME_NOTHING, code="nothing_to_resume")
    if purchase.cancels_at is None or purchase.cancels_at <= now:
        return Conflict(RESUME_TOO_LATE, code="cancellation_effective")
    if scheduled is None:
        return Conflict(RESUME_ELSEWHERE, code="resume_not_available")
    if scheduled.pending_event:
        return Conflict(RESUME_BUSY, code="request_busy")
    return Conflict(RESUME_NOTHING, code="nothing_to_resume")


def can_change_card(purchase: Any, settings: Any) -> bool:
    """May the customer add, remove or choose cards of ``purchase``?"""
    return card_changes_allowed(purchase, settings)


def can_change_address(purchase: Any, settings: Any) -> bool:
    """May the customer change the billing address of ``purchase`` (its future invoices)?"""
    return address_changes_allowed(purchase, settings)


def cancel_refusal(settings: Any, *, request_open: bool) -> BillingError:
    """Why "Cancel subscription" is not offered."""
    if settings.cancellation_mode == "disabled":
        return NotAllowed(CANCEL_DISABLED, code="cancellation_disabled")
    if request_open:
        return Conflict(CANCEL_OPEN, code="request_open")
    return Conflict(CANCEL_UNAVAILABLE, code="cancel_not_available")


def refund_refusal(settings: Any, *, request_open: bool) -> BillingError:
    """Why "Request refund" is not offered for a payment."""
    if settings.refund_mode == "disabled":
        return NotAllowed(REFUND_DISABLED, code="refunds_disabled")
    if request_open:
        return Conflict(REFUND_OPEN, code="request_open")
    return Conflict(REFUND_UNAVAILABLE, code="refund_not_available")

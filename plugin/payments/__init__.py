"""Payment processors: the gateway interface, its typed results and errors, and the sandbox.

The rest of the plugin talks to a processor only through :func:`get_gateway`,
which returns the gateway configured by ``SELF_BILLING_GATEWAY``.
"""
from __future__ import annotations

from flask import current_app

from .interface import (
    CancelResult,
    CardDeclined,
    CardDetails,
    GatewayError,
    PaymentGateway,
    PayPalManaged,
    ProcessorOutage,
    RefundResult,
)


def get_gateway() -> PaymentGateway:
    """The payment gateway of the current app."""
    return current_app.extensions["self_billing"].gateway


__all__ = [
    "CancelResult",
    "CardDeclined",
    "CardDetails",
    "GatewayError",
    "PayPalManaged",
    "PaymentGateway",
    "ProcessorOutage",
    "RefundResult",
    "get_gateway",
]

"""Every Self-Billing model, imported in one place so the metadata is complete.

Alembic, ``init-db`` and the tests read ``Base.metadata`` after importing this module.
"""
from .api.idempotency import IdempotencyRecord
from .db import Base
from .invoices.documents import CreditNote, DocumentCounter, Invoice
from .limit_storage import RateLimitCounter
from .ledger.models import Lead, Payment, PaymentMethod, PricePoint, Purchase, Refund, Settings
from .notifications.models import EmailTemplate, OutboxEmail
from .payments.records import ProcessorCall
from .payments.sandbox_models import SandboxFault, SandboxOperation, SandboxToken
from .payments.stripe.models import StripeLink
from .portal.login_links import LoginLink
from .portal.models import PortalSession
from .tickets.models import Department, Ticket, TicketMessage
from .workflows.models import BillingRequest, RequestEvent

__all__ = [
    "Base",
    "BillingRequest",
    "CreditNote",
    "Department",
    "DocumentCounter",
    "EmailTemplate",
    "IdempotencyRecord",
    "Invoice",
    "Lead",
    "LoginLink",
    "OutboxEmail",
    "Payment",
    "PaymentMethod",
    "PortalSession",
    "PricePoint",
    "ProcessorCall",
    "RateLimitCounter",
    "Purchase",
    "Refund",
    "RequestEvent",
    "SandboxFault",
    "SandboxOperation",
    "SandboxToken",
    "Settings",
    "StripeLink",
    "Ticket",
    "TicketMessage",
]

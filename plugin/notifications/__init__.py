"""Customer email: a transactional outbox sent by a worker through Flask-Mail.

The rest of the plugin calls :func:`enqueue` inside the transaction of the
change the email is about; ``flask self-billing worker`` sends what is queued
(:mod:`.worker`, whose docstring names the modules it is made of). Templates:
:mod:`.templates` (the merchant's subject and body, ``{order_id}``-style
placeholders) inside the overridable Jinja files ``self_billing/email/<kind>.txt``
and ``.html``, signed and footed with the merchant's name and addresses (:mod:`.merchant`).
Merchant API: :mod:`plugin.api.admin_emails`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .outbox import KINDS, enqueue, failed_emails, queued_count
from .receipts import queue_receipt
from .recording import record_messages
from .smtp import init_mail

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

__all__ = ["KINDS", "enqueue", "failed_emails", "init_app", "queue_receipt", "queued_count", "record_messages"]


def init_app(app: Flask) -> None:
    """Set up Flask-Mail on ``app``, unless the host already did.

    The send-after-commit hook (:mod:`.after_commit`) goes on the app's session once the
    plugin knows which Flask-SQLAlchemy instance that is (:mod:`plugin.database_binding`).
    """
    init_mail(app)

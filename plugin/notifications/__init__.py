"""Customer email: a transactional outbox sent by a worker through Flask-Mail.

The rest of the plugin calls :func:`enqueue` inside the transaction of the
change the email is about; ``flask self-billing worker`` sends what is queued
(:mod:`.worker`). Templates: :mod:`.templates` (the merchant's subject and body,
``{order_id}``-style placeholders) inside the overridable Jinja files
``self_billing/email/<kind>.txt`` and ``.html``.
"""
from __future__ import annotations

from .outbox import KINDS, enqueue, failed_emails, queued_count

__all__ = ["KINDS", "enqueue", "failed_emails", "queued_count"]

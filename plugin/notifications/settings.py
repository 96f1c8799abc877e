"""The outbox worker's settings: what it reads from the app's config, and whether it can send at all.

:meth:`WorkerSettings.from_config` reads the ``SELF_BILLING_MAIL_*`` keys once per
round; :func:`check_config` raises :class:`MailNotConfigured` when no sender address
is set (queued emails then wait until it is), except while Flask-Mail suppresses
sending (tests), where :data:`SUPPRESSED_SENDER` stands in.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .smtp import mail_state

#: The sender used while Flask-Mail suppresses sending (tests) and none is configured.
SUPPRESSED_SENDER = "Self-Billing <billing@localhost>"


class MailNotConfigured(RuntimeError):
    """The worker cannot send anything until the configuration is fixed."""


@dataclass
class WorkerSettings:
    """The worker's ``SELF_BILLING_MAIL_*`` settings, read and bounded once per round."""

    batch_size: int
    retry_base: float
    retry_max: float
    lease: timedelta
    timeout: float
    sender: Any

    @classmethod
    def from_config(cls, config: Any) -> WorkerSettings:
        return cls(
            batch_size=max(1, int(config.get("SELF_BILLING_MAIL_BATCH_SIZE", 50))),
            retry_base=max(0.0, float(config.get("SELF_BILLING_MAIL_RETRY_BASE_SECONDS", 30))),
            retry_max=max(0.0, float(config.get("SELF_BILLING_MAIL_RETRY_MAX_SECONDS", 1800))),
            lease=timedelta(seconds=max(1.0, float(config.get("SELF_BILLING_MAIL_LEASE_SECONDS", 600)))),
            timeout=float(config.get("SELF_BILLING_MAIL_TIMEOUT_SECONDS", 30)),
            sender=config.get("SELF_BILLING_MAIL_SENDER") or config.get("MAIL_DEFAULT_SENDER"),
        )


def check_config(settings: WorkerSettings) -> None:
    """Raise :class:`MailNotConfigured` unless the worker can send (fills in the sender under suppression)."""
    if not settings.sender and mail_state().suppress:
        settings.sender = SUPPRESSED_SENDER  # nothing leaves the process; tests need no config
    if not settings.sender:
        raise MailNotConfigured(
            "No sender address: set MAIL_DEFAULT_SENDER (or SELF_BILLING_MAIL_SENDER), "
            "e.g. 'Billing <billing@example.com>'. Queued emails wait until then."
        )
    mail_state()

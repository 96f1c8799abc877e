"""Sending one claimed batch over one SMTP connection, committing each row's outcome as soon as it is known.

One SMTP connection per batch (reopened once if it drops):

* accepted -> ``sent``;
* the server refuses the recipient, or answers 5xx to the message -> ``failed``
  at once with the server's words (retrying would not change its mind);
* server down, connection dropped mid-message, timeout, 4xx -> ``queued`` again
  after ``SELF_BILLING_MAIL_RETRY_BASE_SECONDS * 2 ** (attempts - 1)``, capped at
  ``SELF_BILLING_MAIL_RETRY_MAX_SECONDS``, for as long as it takes: a mail server
  down for a day loses nothing, and every email goes out once it is back.

A batch stops sending (and hands the rest back) after half its lease, long before
the lease runs out, so a live worker's rows are never reclaimed. A worker killed
after the server accepted a message and before the outcome was committed sends
that one message again after the lease: the only duplicate possible, and it carries
the same ``Message-ID`` so mail systems can drop it.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ..db import utcnow
from .claims import finish, release
from .failures import classify, retry_delay
from .merchant import load_merchant
from .models import OutboxEmail
from .rendering import render_new
from .report import WorkerReport
from .settings import WorkerSettings
from .smtp import SMTPConnection, mail_state, outgoing_message, server_name

#: The worker's logger, whichever of its modules logs (hosts filter on this one name).
log = logging.getLogger("plugin.notifications.worker")


def _retry(session: Session, row: OutboxEmail, token: str, error: str, settings: WorkerSettings,
           now: datetime, report: WorkerReport) -> None:
    """Queue a transient failure again (never given up: only the server's permanent refusals fail)."""
    when = now + timedelta(seconds=retry_delay(row.attempts, settings.retry_base, settings.retry_max))
    if finish(session, row, token, status="queued", next_attempt_at=when, last_error=error):
        report.retried += 1
        log.warning("Email #%s (%s, order %s) not sent, attempt %s; next try at %s. %s",
                    row.id, row.kind, row.order_id, row.attempts, when.isoformat(), error)


def send_batch(session: Session, token: str, rows: list[OutboxEmail], settings: WorkerSettings,
               now: datetime | None = None, stop: threading.Event | None = None) -> WorkerReport:
    """Send claimed rows over one SMTP connection and commit each outcome as it is known."""
    report = WorkerReport(batches=1)
    started = time.monotonic()
    budget = settings.lease.total_seconds() / 2
    clock = (lambda: now) if now is not None else utcnow
    merchant = load_merchant(session, settings.sender)  # who signs the batch, and its Reply-To
    rows, unrenderable = render_new(session, rows, token, merchant)
    report.failed += unrenderable
    state = mail_state()
    connection: SMTPConnection | None = None
    reconnects = 0
    for index, row in enumerate(rows):
        if (stop is not None and stop.is_set()) or time.monotonic() - started > budget:
            report.released += release(session, rows[index:], token)
            break
        if connection is None:
            try:
                connection = SMTPConnection(state, settings.timeout).open()
            except Exception as exc:  # noqa: BLE001 - refused, DNS, TLS, auth: all mean "later"
                _permanent, _broken, error = classify(exc)
                error = f"Could not connect to the mail server {server_name(state)}: {error}"
                log.warning("%s %d email(s) will be retried.", error, len(rows) - index)
                report.errors.append(error)
                for pending in rows[index:]:
                    _retry(session, pending, token, error, settings, clock(), report)
                break
        try:
            connection.send(outgoing_message(row, settings.sender, merchant.reply_to))
        except Exception as exc:  # noqa: BLE001 - every SMTP outcome is recorded on the row
            permanent, broken, error = classify(exc)
            if permanent:
                if finish(session, row, token, status="failed", last_error=error):
                    report.failed += 1
                    log.error("Email #%s (%s, order %s) to %s failed: %s",
                              row.id, row.kind, row.order_id, row.to_address, error)
            else:
                report.errors.append(error)
                _retry(session, row, token, error, settings, clock(), report)
            if broken:
                connection.close()
                connection = None
                reconnects += 1
                if reconnects > 1:  # dropped twice in one batch: leave the rest for a later round
                    report.released += release(session, rows[index + 1:], token)
                    break
            continue
        if finish(session, row, token, status="sent", sent_at=clock(), last_error=None):
            report.sent += 1
            log.info("Sent email #%s (%s, order %s).", row.id, row.kind, row.order_id)
    if connection is not None:
        connection.close()
    return report

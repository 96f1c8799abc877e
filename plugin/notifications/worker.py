"""The outbox worker: rounds of claiming due emails and sending them, until stopped; and ``send_now``.

``flask self-billing worker`` runs :func:`run_worker` in a loop (one round every
``SELF_BILLING_WORKER_POLL_SECONDS``, stopped by SIGTERM/SIGINT after the current
email); ``--once`` drains what is due now and exits. :func:`send_now` is the same
round for given rows, right after their transaction commits (:mod:`.after_commit`).

A round (:func:`drain`) claims batches until nothing is due. Each part has its module:

* :mod:`.claims` - claiming due rows for one batch (``SKIP LOCKED`` on PostgreSQL,
  the write lock on SQLite, a lease for dead workers) and recording outcomes;
* :mod:`.rendering` - rendering a row once and keeping it, so every retry sends
  the same message with the same ``Message-ID``;
* :mod:`.sending` - one batch over one SMTP connection, each outcome committed;
* :mod:`.failures` - which failures are permanent, and the retry back-off;
* :mod:`.smtp` - Flask-Mail's state, the connection with a timeout, the message;
* :mod:`.settings` and :mod:`.report` - what a round reads from config, what it did.

The names other code imports from here (:func:`run_worker`, :func:`drain`,
:class:`MailNotConfigured`, ...) stay importable from this module.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import db, utcnow
from .claims import claim_batch, new_claim_token
from .failures import retry_delay
from .report import WorkerReport
from .sending import send_batch
from .settings import SUPPRESSED_SENDER, MailNotConfigured, WorkerSettings, check_config

__all__ = [
    "SUPPRESSED_SENDER", "MailNotConfigured", "WorkerReport", "claim_batch", "drain", "new_claim_token",
    "retry_delay", "run_worker", "send_batch", "send_now",
]

log = logging.getLogger(__name__)


def drain(*, now: datetime | None = None, ids: Iterable[int] | None = None,
          stop: threading.Event | None = None) -> WorkerReport:
    """Send everything due at ``now`` (default: the current time), batch after batch, then return.

    ``ids`` limits the round to those rows (used right after a commit). A database error
    propagates (the loop of :func:`run_worker` logs it and tries again next round).
    """
    settings = WorkerSettings.from_config(current_app.config)
    check_config(settings)
    report = WorkerReport()
    due_at = now or utcnow()
    id_list = list(ids) if ids is not None else None
    with Session(bind=db.engine, expire_on_commit=False) as session:
        while stop is None or not stop.is_set():
            token, rows = claim_batch(session, due_at, settings.batch_size, settings.lease, id_list)
            if not rows:
                break
            report.add(send_batch(session, token, rows, settings, now=now, stop=stop))
            if id_list is not None:
                break
    return report


def send_now(ids: Iterable[int]) -> WorkerReport:
    """Try the given queued rows right away (``SELF_BILLING_MAIL_SEND_AFTER_COMMIT``)."""
    return drain(ids=ids)


def run_worker(once: bool = False, *, now: datetime | None = None,
               stop: threading.Event | None = None) -> WorkerReport:
    """Send queued email: every ``SELF_BILLING_WORKER_POLL_SECONDS`` until stopped, or once.

    :param once: drain what is due now and return.
    :param now: act as if it were this time (tests, or replaying a backlog); only with ``once``.
    :param stop: an event that ends the loop (the CLI sets it on SIGTERM/SIGINT).
    """
    if once:
        report = drain(now=now, stop=stop)
        log.info(report.summary())
        return report
    stop = stop or threading.Event()
    restore = _install_signal_handlers(stop)
    poll = max(0.1, float(current_app.config.get("SELF_BILLING_WORKER_POLL_SECONDS", 5)))
    total = WorkerReport()
    log.info("Self-Billing mail worker started: polling every %ss (Ctrl-C to stop).", poll)
    try:
        while not stop.is_set():
            try:
                report = drain(now=now, stop=stop)
            except MailNotConfigured as exc:
                log.error("%s", exc)
                report = WorkerReport()
            except SQLAlchemyError as exc:  # the database restarts: keep the worker, try next round
                log.error("Database error (%s); trying again in %ss. Emails this round had claimed are "
                          "taken up again after SELF_BILLING_MAIL_LEASE_SECONDS.",
                          getattr(exc, "orig", None) or exc, poll)
                report = WorkerReport()
            total.add(report)
            if report.handled or report.released:
                log.info(report.summary())
            stop.wait(poll)
    finally:
        restore()
        log.info("Self-Billing mail worker stopped. %s", total.summary())
    return total


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGTERM/SIGINT (main thread only); return what puts the old handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: Any) -> None:
        log.info("Stopping after the current email (signal %s).", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

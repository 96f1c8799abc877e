"""The outbox worker: claims due emails, sends them through Flask-Mail, records what happened.

``flask self-billing worker`` runs :func:`run_worker` in a loop (one round every
``SELF_BILLING_WORKER_POLL_SECONDS``); ``--once`` drains what is due now and exits.

**Claiming.** A round claims up to ``SELF_BILLING_MAIL_BATCH_SIZE`` due rows in
one statement, ``UPDATE ... SET status='sending', claimed_by=<token> WHERE id IN
(SELECT ... LIMIT n) AND <still due>``, and commits before any SMTP traffic:

* on PostgreSQL the inner select has ``FOR UPDATE SKIP LOCKED``, so workers on
  several machines take disjoint batches without waiting for each other;
* on SQLite the statement takes the database's single write lock before it
  reads (an ``UPDATE`` starts a write transaction), and the outer ``<still
  due>`` re-check means a row another worker claimed first is never claimed
  again. Writers queue on ``busy_timeout``.

Each batch has its own token, so the worker reads back exactly the rows it won.
A row left in ``sending`` by a worker that died is due again after
``SELF_BILLING_MAIL_LEASE_SECONDS``; a worker stops sending a batch (and hands
the rest back) long before its lease runs out, so a live worker's rows are never
reclaimed. A worker killed after the server accepted a message and before the
outcome was committed sends that one message again after the lease: the only
duplicate possible, and it carries the same ``Message-ID`` so mail systems can
drop it.

**Sending.** One SMTP connection per batch (reopened once if it drops). Each
outcome is committed as soon as it is known:

* accepted -> ``sent``;
* the server refuses the recipient, or answers 5xx to the message -> ``failed``
  at once with the server's words (retrying would not change its mind);
* server down, connection dropped mid-message, timeout, 4xx -> ``queued`` again
  after ``SELF_BILLING_MAIL_RETRY_BASE_SECONDS * 2 ** (attempts - 1)``, capped at
  ``SELF_BILLING_MAIL_RETRY_MAX_SECONDS``, for as long as it takes: a mail server
  down for a day loses nothing, and every email goes out once it is back.

Rows are rendered (subject, text, HTML, Message-ID) the first time they are
claimed and the result is kept, so every retry sends the same message.
"""
from __future__ import annotations

import logging
import os
import signal
import smtplib
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.mime.text import MIMEText
from email.utils import make_msgid
from typing import Any, Iterable

from flask import current_app
from flask_mail import BadHeaderError, Connection, Message
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import db, utcnow
from .models import OutboxEmail

log = logging.getLogger(__name__)


@dataclass
class WorkerReport:
    """What one or more rounds did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: WorkerReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.released += other.released
        self.batches += other.batches
        self.errors = (self.errors + other.errors)[-20:]  # the latest few: a long-running loop keeps no history

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed

    def summary(self) -> str:
        if not self.handled and not self.released:
            return "No email was due."
        parts = [f"sent {self.sent}"]
        if self.retried:
            parts.append(f"{self.retried} to retry later")
        if self.failed:
            parts.append(f"{self.failed} failed (see GET /api/admin/email-outbox?status=failed)")
        if self.released:
            parts.append(f"{self.released} handed back unsent")
        return "Emails: " + ", ".join(parts) + "."


@dataclass
class _Settings:
    batch_size: int
    retry_base: float
    retry_max: float
    lease: timedelta
    timeout: float
    sender: Any

    @classmethod
    def from_config(cls, config: Any) -> _Settings:
        return cls(
            batch_size=max(1, int(config.get("SELF_BILLING_MAIL_BATCH_SIZE", 50))),
            retry_base=max(0.0, float(config.get("SELF_BILLING_MAIL_RETRY_BASE_SECONDS", 30))),
            retry_max=max(0.0, float(config.get("SELF_BILLING_MAIL_RETRY_MAX_SECONDS", 1800))),
            lease=timedelta(seconds=max(1.0, float(config.get("SELF_BILLING_MAIL_LEASE_SECONDS", 600)))),
            timeout=float(config.get("SELF_BILLING_MAIL_TIMEOUT_SECONDS", 30)),
            sender=config.get("SELF_BILLING_MAIL_SENDER") or config.get("MAIL_DEFAULT_SENDER"),
        )


class MailNotConfigured(RuntimeError):
    """The worker cannot send anything until the configuration is fixed."""


# -- SMTP ---------------------------------------------------------------------------------


class _SMTPConnection(Connection):
    """Flask-Mail's connection with a socket timeout, so a stalled server cannot hang the worker."""

    def __init__(self, mail: Any, timeout: float) -> None:
        super().__init__(mail)
        self.timeout = timeout

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        smtp_class = smtplib.SMTP_SSL if state.use_ssl else smtplib.SMTP
        host = smtp_class(state.server, state.port, timeout=self.timeout)
        host.set_debuglevel(int(state.debug))
        if state.use_tls:
            host.starttls()
        if state.username and state.password:
            host.login(state.username, state.password)
        return host

    def open(self) -> _SMTPConnection:
        self.host = None if self.mail.suppress else self.configure_host()
        self.num_emails = 0
        return self

    def close(self) -> None:
        host, self.host = self.host, None
        if host is None:
            return
        try:
            host.quit()
        except (smtplib.SMTPException, OSError):
            host.close()


def _mail_state() -> Any:
    """Flask-Mail's state of the current app (set up by ``SelfBilling.init_app`` unless the host did)."""
    state = current_app.extensions.get("mail")
    if state is None:
        from . import init_app

        init_app(current_app)
        state = current_app.extensions["mail"]
    return state


def _server_name(state: Any) -> str:
    return f"{state.server}:{state.port}"


def _smtp_words(code: Any, message: Any) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


def _classify(exc: BaseException) -> tuple[bool, bool, str]:
    """``(permanent, connection_broken, what the server said)`` for an exception raised by a send."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        words = "; ".join(f"{addr}: {_smtp_words(*reply)}" for addr, reply in exc.recipients.items())
        return True, False, f"The mail server refused the recipient ({words})."
    if isinstance(exc, smtplib.SMTPSenderRefused):
        # The sender is the merchant's setting, not this email's fault: retry, and say how to fix it.
        return False, False, (f"The mail server refused the sender {exc.sender!r} ({_smtp_words(exc.smtp_code, exc.smtp_error)}); "
                              "check MAIL_DEFAULT_SENDER / SELF_BILLING_MAIL_SENDER.")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if "timed out" in str(exc):  # smtplib reports a read timeout as a disconnection
            return False, True, "The mail server did not answer in time (SELF_BILLING_MAIL_TIMEOUT_SECONDS)."
        return False, True, f"The mail server closed the connection ({exc or 'no reason given'})."
    if isinstance(exc, smtplib.SMTPResponseException):
        words = _smtp_words(exc.smtp_code, exc.smtp_error)
        if 500 <= int(exc.smtp_code) < 600:
            return True, False, f"The mail server rejected the message ({words})."
        return False, int(exc.smtp_code) == 421, f"The mail server asked to try again later ({words})."
    if isinstance(exc, BadHeaderError):
        return True, False, "The email has a line break in a header (subject or address); it cannot be sent."
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return False, True, "The mail server did not answer in time (SELF_BILLING_MAIL_TIMEOUT_SECONDS)."
    if isinstance(exc, OSError):
        return False, True, f"Could not talk to the mail server ({exc.__class__.__name__}: {exc})."
    if isinstance(exc, smtplib.SMTPException):
        return False, True, f"SMTP error: {exc}."
    return False, True, f"{exc.__class__.__name__}: {exc}"


class _OutboxMessage(Message):
    """Flask-Mail's message with its text parts quoted-printable.

    Flask-Mail registers UTF-8 without a body encoding (8bit), so a paragraph of 1,200 characters
    went out as one line, and SMTP servers refuse lines over 998 octets (RFC 5321 4.5.3.1.6):
    the email then failed on every retry. Quoted-printable wraps every line at 76 characters and
    decodes to exactly the same text.
    """

    def _mimetext(self, text: str | None, subtype: str = "plain") -> MIMEText:
        encoding = Charset("utf-8")
        encoding.body_encoding = QP
        return MIMEText(text or "", _subtype=subtype, _charset=encoding)


def _message(row: OutboxEmail, sender: Any) -> Message:
    msg = _OutboxMessage(
        subject=row.subject or "",
        recipients=[row.to_address],
        body=row.text_body,
        html=row.html_body,
        sender=sender,
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    if row.message_id:
        msg.msgId = row.message_id
    return msg


# -- claiming and recording ---------------------------------------------------------------


def _due(now: datetime, lease: timedelta) -> Any:
    T = OutboxEmail
    return or_(
        and_(T.status == "queued", T.next_attempt_at <= now),
        and_(T.status == "sending", T.claimed_at < now - lease),
    )


def new_claim_token() -> str:
    """A token naming one batch of one worker: host, process, thread and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{threading.get_ident() % 100000}:{uuid.uuid4().hex[:12]}"


def claim_batch(session: Session, now: datetime, limit: int, lease: timedelta,
                ids: Iterable[int] | None = None) -> tuple[str, list[OutboxEmail]]:
    """Atomically mark up to ``limit`` due rows ``sending`` for a new token; commit; return them."""
    T = OutboxEmail
    token = new_claim_token()
    due = _due(now, lease)
    inner = select(T.id).where(due).order_by(T.next_attempt_at, T.id).limit(limit)
    if ids is not None:
        inner = inner.where(T.id.in_(list(ids)))
    if session.get_bind().dialect.name == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(T)
        .where(T.id.in_(inner.scalar_subquery()), due)
        .values(status="sending", claimed_by=token, claimed_at=now, attempts=T.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(stmt)
    session.commit()
    rows = session.execute(
        select(T).where(T.claimed_by == token, T.status == "sending").order_by(T.id)
    ).scalars().all()
    return token, list(rows)


_FINISH_STATEMENTS: dict[tuple[str, ...], Any] = {}


def _finish_statement(names: tuple[str, ...]) -> Any:
    """``UPDATE ... SET <names> WHERE id = :row_id AND claimed_by = :token AND status = 'sending'``, built once."""
    stmt = _FINISH_STATEMENTS.get(names)
    if stmt is None:
        T = OutboxEmail.__table__
        stmt = (
            T.update()
            .where(T.c.id == bindparam("row_id"), T.c.claimed_by == bindparam("token"), T.c.status == "sending")
            .values({name: bindparam(f"v_{name}") for name in names})
        )
        _FINISH_STATEMENTS[names] = stmt
    return stmt


def _finish(session: Session, row: OutboxEmail, token: str, **values: Any) -> bool:
    """Record an outcome for a row this batch still holds, and commit; False when the claim was lost."""
    values.setdefault("claimed_by", None)
    names = tuple(sorted(values))
    params = {f"v_{name}": values[name] for name in names}
    # Core on the session's connection: one UPDATE and a commit, without the ORM's bookkeeping.
    result = session.connection().execute(_finish_statement(names), dict(params, row_id=row.id, token=token))
    session.commit()
    if result.rowcount != 1:
        log.warning("Email #%s was reclaimed by another worker while this one held it "
                    "(raise SELF_BILLING_MAIL_LEASE_SECONDS).", row.id)
        return False
    return True


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling from ``base``, at most ``cap``."""
    return min(cap, base * 2.0 ** min(max(attempts - 1, 0), 40))


def _retry(session: Session, row: OutboxEmail, token: str, error: str, settings: _Settings,
           now: datetime, report: WorkerReport) -> None:
    """Queue a transient failure again (never given up: only the server's permanent refusals fail)."""
    when = now + timedelta(seconds=retry_delay(row.attempts, settings.retry_base, settings.retry_max))
    if _finish(session, row, token, status="queued", next_attempt_at=when, last_error=error):
        report.retried += 1
        log.warning("Email #%s (%s, order %s) not sent, attempt %s; next try at %s. %s",
                    row.id, row.kind, row.order_id, row.attempts, when.isoformat(), error)


def _release(session: Session, rows: list[OutboxEmail], token: str, report: WorkerReport) -> None:
    """Hand rows back unsent and uncounted (the batch ran out of time or the worker is stopping)."""
    if not rows:
        return
    session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id.in_([r.id for r in rows]), OutboxEmail.claimed_by == token,
               OutboxEmail.status == "sending")
        .values(status="queued", claimed_by=None, claimed_at=None, attempts=OutboxEmail.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    report.released += len(rows)


_FQDN: str | None = None


def _message_id_domain() -> str:
    """The right-hand side of Message-IDs: SELF_BILLING_MAIL_MESSAGE_ID_DOMAIN, else this host's name."""
    global _FQDN
    configured = current_app.config.get("SELF_BILLING_MAIL_MESSAGE_ID_DOMAIN")
    if configured:
        return str(configured)
    if _FQDN is None:
        _FQDN = socket.getfqdn()
    return _FQDN


def _render_new(session: Session, rows: list[OutboxEmail], token: str, now: datetime,
                report: WorkerReport) -> list[OutboxEmail]:
    """Render rows handled for the first time and keep the result; rows that cannot be rendered fail."""
    from .templates import merchant_templates, render_email

    ready: list[OutboxEmail] = []
    rendered: list[dict[str, Any]] = []
    domain = _message_id_domain()
    templates = None
    for row in rows:
        if row.subject is not None and row.text_body is not None:
            ready.append(row)
            continue
        if templates is None:
            templates = merchant_templates(session)
        try:
            subject, text, html = render_email(row.kind, row.context or {}, templates)
        except Exception as exc:  # noqa: BLE001 - a host template bug must not stop the batch
            reason = f"Could not render the email: {exc.__class__.__name__}: {exc}"
            if _finish(session, row, token, status="failed", last_error=reason):
                report.failed += 1
                log.error("Email #%s (%s, order %s) failed: %s", row.id, row.kind, row.order_id, reason)
            continue
        message_id = make_msgid(idstring=f"sb{row.id}", domain=domain)
        rendered.append({"row_id": row.id, "subject": subject, "text_body": text, "html_body": html,
                         "message_id": message_id})
        ready.append(row)
    if rendered:
        # Kept before anything is sent, so a retry sends the very same message (same Message-ID).
        T = OutboxEmail.__table__
        session.connection().execute(
            T.update().where(T.c.id == bindparam("row_id")).values(
                subject=bindparam("subject"), text_body=bindparam("text_body"),
                html_body=bindparam("html_body"), message_id=bindparam("message_id")),
            rendered,
        )
        session.commit()
        by_id = {values["row_id"]: values for values in rendered}
        for row in ready:
            values = by_id.get(row.id)
            if values is not None:
                row.subject, row.text_body = values["subject"], values["text_body"]
                row.html_body, row.message_id = values["html_body"], values["message_id"]
    return ready


def send_batch(session: Session, token: str, rows: list[OutboxEmail], settings: _Settings,
               now: datetime | None = None, stop: threading.Event | None = None) -> WorkerReport:
    """Send claimed rows over one SMTP connection and commit each outcome as it is known."""
    report = WorkerReport(batches=1)
    started = time.monotonic()
    budget = settings.lease.total_seconds() / 2
    clock = (lambda: now) if now is not None else utcnow
    rows = _render_new(session, rows, token, clock(), report)
    state = _mail_state()
    connection: _SMTPConnection | None = None
    reconnects = 0
    for index, row in enumerate(rows):
        if (stop is not None and stop.is_set()) or time.monotonic() - started > budget:
            _release(session, rows[index:], token, report)
            break
        if connection is None:
            try:
                connection = _SMTPConnection(state, settings.timeout).open()
            except Exception as exc:  # noqa: BLE001 - refused, DNS, TLS, auth: all mean "later"
                _permanent, _broken, error = _classify(exc)
                error = f"Could not connect to the mail server {_server_name(state)}: {error}"
                log.warning("%s %d email(s) will be retried.", error, len(rows) - index)
                report.errors.append(error)
                for pending in rows[index:]:
                    _retry(session, pending, token, error, settings, clock(), report)
                break
        try:
            connection.send(_message(row, settings.sender))
        except Exception as exc:  # noqa: BLE001 - every SMTP outcome is recorded on the row
            permanent, broken, error = _classify(exc)
            if permanent:
                if _finish(session, row, token, status="failed", last_error=error):
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
                    _release(session, rows[index + 1:], token, report)
                    break
            continue
        if _finish(session, row, token, status="sent", sent_at=clock(), last_error=None):
            report.sent += 1
            log.info("Sent email #%s (%s, order %s).", row.id, row.kind, row.order_id)
    if connection is not None:
        connection.close()
    return report


# -- rounds -------------------------------------------------------------------------------


#: The sender used while Flask-Mail suppresses sending (tests) and none is configured.
SUPPRESSED_SENDER = "Self-Billing <billing@localhost>"


def _check_config(settings: _Settings) -> None:
    if not settings.sender and _mail_state().suppress:
        settings.sender = SUPPRESSED_SENDER  # nothing leaves the process; tests need no config
    if not settings.sender:
        raise MailNotConfigured(
            "No sender address: set MAIL_DEFAULT_SENDER (or SELF_BILLING_MAIL_SENDER), "
            "e.g. 'Billing <billing@example.com>'. Queued emails wait until then."
        )
    _mail_state()


def drain(*, now: datetime | None = None, ids: Iterable[int] | None = None,
          stop: threading.Event | None = None) -> WorkerReport:
    """Send everything due at ``now`` (default: the current time), batch after batch, then return.

    ``ids`` limits the round to those rows (used right after a commit). A database error
    propagates (the loop of :func:`run_worker` logs it and tries again next round).
    """
    settings = _Settings.from_config(current_app.config)
    _check_config(settings)
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


def _install_signal_handlers(stop: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum: int, _frame: Any) -> None:
        log.info("Stopping after the current email (signal %s).", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

"""The SMTP side of the outbox worker: Flask-Mail's state, one connection per batch, the message sent.

:class:`SMTPConnection` is Flask-Mail's connection with a socket timeout (a stalled
server cannot hang the worker) and a ``close`` that never raises. :func:`outgoing_message`
turns a rendered :class:`~.models.OutboxEmail` row into the ``flask_mail.Message`` that
goes over it, with its text parts quoted-printable. Nothing here touches the database.
"""
from __future__ import annotations

import smtplib
from email.charset import QP, Charset
from email.mime.text import MIMEText
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_mail import Connection, Mail, Message

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

    from .models import OutboxEmail


def init_mail(app: Flask) -> None:
    """Set up Flask-Mail on ``app``, unless the host already did."""
    if "mail" not in app.extensions:
        Mail(app)


def mail_state() -> Any:
    """Flask-Mail's state of the current app (set up by ``SelfBilling.init_app`` unless the host did)."""
    state = current_app.extensions.get("mail")
    if state is None:
        init_mail(current_app)
        state = current_app.extensions["mail"]
    return state


def server_name(state: Any) -> str:
    """``host:port`` of the mail server, for messages to the merchant."""
    return f"{state.server}:{state.port}"


class SMTPConnection(Connection):
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

    def open(self) -> SMTPConnection:
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


class OutboxMessage(Message):
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


def outgoing_message(row: OutboxEmail, sender: Any, reply_to: Any = None) -> Message:
    """The message for a rendered row, with the row's kept ``Message-ID``, and a ``Reply-To`` when given."""
    msg = OutboxMessage(
        subject=row.subject or "",
        recipients=[row.to_address],
        body=row.text_body,
        html=row.html_body,
        sender=sender,
        reply_to=reply_to or None,
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    if row.message_id:
        msg.msgId = row.message_id
    return msg

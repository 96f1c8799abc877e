"""The demo's built-in mail catcher, and reading what it caught.

``./scripts/demo`` needs no mail server: :func:`start_catcher` runs an SMTP server
(aiosmtpd) on loopback that files every message it receives into a Maildir folder,
and the agent desk's "Sent email" page (:mod:`plugin.demo.desk`) lists that folder
with :func:`caught_messages`. The plugin's outbox worker sends to it like to any
other SMTP server, so what shows there is exactly what a customer would receive.
"""
from __future__ import annotations

import mailbox
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

try:  # the ``demo`` extra; reading caught mail (the desk's page) works without it
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox
except ImportError:  # pragma: no cover - the demo extra is missing
    Controller = Mailbox = None


@dataclass(frozen=True)
class CaughtMessage:
    """One email as the catcher received it."""

    key: str
    subject: str
    sender: str
    to: str
    reply_to: str
    date: datetime | None
    text: str
    html: str


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_catcher(folder: Path, host: str = "127.0.0.1", port: int | None = None) -> Any:
    """Start an SMTP server on ``host`` that files each message into the Maildir ``folder``.

    Returns the running ``aiosmtpd`` controller (``.hostname``, ``.port``; ``.stop()`` ends it).
    aiosmtpd is in the ``demo`` extra: ``pip install 'self-billing[demo]'``.
    """
    if Controller is None:  # pragma: no cover - the demo extra is missing
        raise RuntimeError("The demo's mail catcher needs aiosmtpd: pip install '.[demo]'")
    for sub in ("tmp", "new", "cur"):  # a Maildir (mailbox.Maildir makes them only in a new folder)
        (folder / sub).mkdir(parents=True, exist_ok=True)
    controller = Controller(Mailbox(str(folder)), hostname=host, port=port or _free_port(host))
    controller.start()
    return controller


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return (text.get_content() if text is not None else "", html.get_content() if html is not None else "")


def _read(key: str, raw: bytes) -> CaughtMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    try:
        date = parsedate_to_datetime(message["Date"]) if message["Date"] else None
    except (TypeError, ValueError):
        date = None
    text, html = _parts(message)
    return CaughtMessage(key=key, subject=str(message["Subject"] or ""), sender=str(message["From"] or ""),
                         to=str(message["To"] or message["X-RcptTo"] or ""),
                         reply_to=str(message["Reply-To"] or ""), date=date, text=text, html=html)


def caught_messages(folder: Path) -> list[CaughtMessage]:
    """Every message in the Maildir ``folder``, newest first (none when it does not exist yet)."""
    if not folder.is_dir():
        return []
    box = mailbox.Maildir(str(folder), factory=None, create=False)
    found = []
    for key in box.keys():
        try:
            found.append(_read(key, box.get_bytes(key)))
        except (KeyError, FileNotFoundError):  # removed while we read
            continue
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(found, key=lambda m: (m.date or oldest, m.key), reverse=True)


def caught_message(folder: Path, key: str) -> CaughtMessage | None:
    """The message filed under ``key``, or ``None``."""
    if not folder.is_dir():
        return None
    box = mailbox.Maildir(str(folder), factory=None, create=False)
    try:
        return _read(key, box.get_bytes(key))
    except (KeyError, FileNotFoundError):
        return None

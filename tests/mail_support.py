"""What the email tests share: a real SMTP server on loopback (aiosmtpd) that records what it accepts.

``smtp`` is the fixture (a fresh server on a free port per test); :func:`parts` reads a received
message's text and HTML parts.
"""
from __future__ import annotations

import email
import email.message
import email.policy
import socket
import threading

import pytest

from tests.parts import missing_part

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover
    missing_part("aiosmtpd is not installed (pip install aiosmtpd)")

SENDER = "Shop Billing <billing@shop.test>"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """An aiosmtpd handler keeping what it accepts; it can refuse recipients and drop connections."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.refuse: set[str] = set()
        self.drop_data = 0  # the next n DATA commands lose their connection before the answer
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.drop_data > 0:
                self.drop_data -= 1
                server.transport.close()
                return "421 4.3.0 connection lost"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            self.messages.append(message)
        return "250 2.0.0 Accepted"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


class SMTPServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = Recorder()
        self.controller: Controller | None = None

    @property
    def messages(self):
        return self.handler.messages

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = SMTPServer(free_port())
    server.start()
    yield server
    server.stop()


def parts(message) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found[part.get_content_type()] = part.get_content().replace("\r\n", "\n")
    return found

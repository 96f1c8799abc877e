"""What a failed send means: given up at once, or tried again later, and when.

:func:`classify` reads an exception raised while connecting or sending and says
whether the failure is permanent (the server refused the recipient, or answered
5xx to the message: retrying would not change its mind), whether the connection
is broken, and what the server said, in words for the merchant. Everything else
(server down, connection dropped mid-message, timeout, 4xx) is transient and is
retried after :func:`retry_delay`, for as long as it takes.
"""
from __future__ import annotations

import smtplib
import socket
from typing import Any

from flask_mail import BadHeaderError


def _smtp_words(code: Any, message: Any) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


def classify(exc: BaseException) -> tuple[bool, bool, str]:
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


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling from ``base``, at most ``cap``."""
    return min(cap, base * 2.0 ** min(max(attempts - 1, 0), 40))

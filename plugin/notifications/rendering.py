"""Rendering outbox rows once: the kept subject, bodies and Message-ID that every retry sends again.

A row is rendered (subject, text, HTML, Message-ID) the first time a worker claims
it, and the result is written to the row before anything is sent, so a retry sends
the very same message with the same ``Message-ID`` (mail systems drop a duplicate).
A row that cannot be rendered (a host template bug) fails without stopping the batch.
"""
from __future__ import annotations

import logging
import socket
from email.utils import make_msgid
from typing import Any

from flask import current_app
from sqlalchemy import bindparam
from sqlalchemy.orm import Session

from .claims import finish
from .merchant import Merchant
from .models import OutboxEmail
from .templates import merchant_templates, render_email

#: The worker's logger, whichever of its modules logs (hosts filter on this one name).
log = logging.getLogger("plugin.notifications.worker")

_FQDN: str | None = None


def message_id_domain() -> str:
    """The right-hand side of Message-IDs: SELF_BILLING_MAIL_MESSAGE_ID_DOMAIN, else this host's name."""
    global _FQDN
    configured = current_app.config.get("SELF_BILLING_MAIL_MESSAGE_ID_DOMAIN")
    if configured:
        return str(configured)
    if _FQDN is None:
        _FQDN = socket.getfqdn()
    return _FQDN


def render_new(session: Session, rows: list[OutboxEmail], token: str,
               merchant: Merchant) -> tuple[list[OutboxEmail], int]:
    """Render rows handled for the first time and keep the result; rows that cannot be rendered fail.

    ``merchant`` signs and foots them (:func:`.merchant.load_merchant`, once per batch).
    Returns the rows ready to send (in order) and how many rows failed.
    """
    ready: list[OutboxEmail] = []
    rendered: list[dict[str, Any]] = []
    failed = 0
    domain = message_id_domain()
    templates = None
    for row in rows:
        if row.subject is not None and row.text_body is not None:
            ready.append(row)
            continue
        if templates is None:
            templates = merchant_templates(session)
        try:
            subject, text, html = render_email(row.kind, row.context or {}, templates, merchant)
        except Exception as exc:  # noqa: BLE001 - a host template bug must not stop the batch
            reason = f"Could not render the email: {exc.__class__.__name__}: {exc}"
            if finish(session, row, token, status="failed", last_error=reason):
                failed += 1
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
    return ready, failed

"""``GET {prefix}/healthz``: is the database reachable, can PDFs be made, how long is the mail queue."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from .db import db
from .http_json import install_json_errors
from .invoices.render import find_wkhtmltopdf
from .notifications.outbox import queued_count

bp = Blueprint("self_billing_health", __name__)
install_json_errors(bp)  # e.g. a NUL character in the query (plugin.api.common.refuse_nul_characters)


def pdf_available() -> bool:
    """True when the wkhtmltopdf binary can be found (the same lookup invoices use)."""
    return find_wkhtmltopdf() is not None


def mail_queue_length() -> int:
    """Emails waiting in the outbox."""
    return queued_count()


@bp.get("/healthz")
def healthz():
    status = 200
    try:
        db.session.execute(text("SELECT 1"))
        db_state = "ok"
        queued = mail_queue_length()
    except Exception:  # noqa: BLE001 - any database failure is "down"
        db.session.rollback()
        db_state, queued, status = "unavailable", 0, 503
    body = {
        "status": "ok" if status == 200 else "degraded",
        "db": db_state,
        "pdf": "ok" if pdf_available() else "unavailable",
        "mail_queue": queued,
    }
    return jsonify(body), status

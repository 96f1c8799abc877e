"""Merchant API for customer email: templates and the outbox (contract section 7).

Mounted under ``{prefix}/api/admin`` beside :mod:`plugin.api.admin`, and
guarded by the same bearer-token check (``SELF_BILLING_ADMIN_TOKEN``; 404 while
it is unset, 401 for a missing or wrong token).

=======================================  ==========================================================
``GET /email-templates``                 every kind's subject and body (the merchant's or default)
``GET /email-templates/<kind>``          one kind
``PUT /email-templates/<kind>``          ``{"subject", "body"}``; an unknown placeholder, a format
                                         spec or broken braces -> 400 naming it; nothing is saved
``DELETE /email-templates/<kind>``       back to the default
``GET /email-outbox``                    ``?status=queued|sending|sent|failed&order_id=&limit=``
``POST /email-outbox/<id>/retry``        send a failed email again (to the order's current email)
=======================================  ==========================================================
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from ..db import db, utcnow
from ..errors import Conflict, InvalidInput, NotFound
from ..ledger.models import Lead, Purchase
from ..notifications import templates
from ..notifications.models import OUTBOX_STATUSES, OutboxEmail
from ..notifications.outbox import email_to_dict, list_emails
from ..templating import TEMPLATE_FOLDER
from .admin import _challenge, _require_token
from .common import install_json_errors, parse_body, path_id
from .idempotency import install_idempotency

# The template folder is given so the email templates (self_billing/email/...) are found even by a
# worker process; the host's own templates folder still comes first and can override any of them.
bp = Blueprint("self_billing_api_admin_emails", __name__, template_folder=TEMPLATE_FOLDER)
install_json_errors(bp)
bp.before_request(_require_token)
bp.after_request(_challenge)


class EmailTemplateIn(BaseModel):
    """A merchant template as sent to ``PUT /email-templates/<kind>``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subject: str
    body: str


def _answer(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


@bp.get("/email-templates")
def list_email_templates() -> Response:
    return _answer({"templates": templates.list_templates(), "placeholders": list(templates.PLACEHOLDERS)})


@bp.get("/email-templates/<kind>")
def get_email_template(kind: str) -> Response:
    return _answer(templates.get_template(kind))


@bp.put("/email-templates/<kind>")
def put_email_template(kind: str) -> Response:
    templates.check_kind(kind)
    data = parse_body(EmailTemplateIn)
    return _answer(templates.save_template(kind, data.subject, data.body))


@bp.delete("/email-templates/<kind>")
def delete_email_template(kind: str) -> Response:
    return _answer(templates.reset_template(kind))


@bp.get("/email-outbox")
def get_email_outbox() -> Response:
    status = request.args.get("status") or None
    if status is not None and status not in OUTBOX_STATUSES:
        raise InvalidInput(f"Unknown status {status!r}; use one of: {', '.join(OUTBOX_STATUSES)}.",
                           fields={"status": "unknown status"})
    limit_text = request.args.get("limit", "100")
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise InvalidInput("limit must be a whole number from 1 to 1000.", fields={"limit": "1 to 1000"})
    order_id = request.args.get("order_id") or None
    rows = list_emails(status, order_id=order_id, limit=int(limit_text))
    counts = dict.fromkeys(OUTBOX_STATUSES, 0)
    for name, count in db.session.execute(
        select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status)
    ):
        counts[name] = count
    return _answer({"emails": [email_to_dict(row) for row in rows], "counts": counts})


@bp.post("/email-outbox/<email_id>/retry")
def retry_email(email_id: str) -> Response:
    not_found = NotFound("There is no such email in the outbox; check its id in GET /api/admin/email-outbox.")
    row = db.session.get(OutboxEmail, path_id(email_id, not_found), with_for_update=True)
    if row is None:
        raise not_found
    if row.status != "failed":
        raise Conflict(f"Email #{email_id} is {row.status}; only failed emails can be retried.",
                       code="not_failed", status_now=row.status)
    email = db.session.execute(
        select(Lead.email).join(Purchase, Purchase.lead_id == Lead.id).where(Purchase.order_id == row.order_id)
    ).scalar_one_or_none()
    if email and email != row.to_address:
        row.to_address = email
    row.status, row.attempts, row.next_attempt_at = "queued", 0, utcnow()
    row.claimed_by = row.claimed_at = None
    if row.last_error and row.last_error.startswith("Could not render"):
        row.subject = row.text_body = row.html_body = None  # render again, with the fixed template
    db.session.commit()
    return _answer(email_to_dict(row))


# After the guards above: they authenticate the caller the key belongs to.
install_idempotency(bp, lambda: "merchant")

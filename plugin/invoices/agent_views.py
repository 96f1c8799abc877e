"""The agent's downloads: ``GET {prefix}/api/agent/payments/<payment_id>/invoice.pdf`` and
``GET {prefix}/api/agent/credit-notes/<number>/credit-note.pdf``.

Any payment, for any agent the host's ``agent_loader`` vouches for; no agent is 401.
"""
from __future__ import annotations

from flask import Blueprint, Response

from ..http_json import install_json_errors
from ..templating import TEMPLATE_FOLDER
from ..tickets.actions import require_agent
from . import service
from .render import RenderError
from .views import CREDIT_NOTE_NAME, render_error_response, send_invoice

bp = Blueprint("self_billing_invoices_agent", __name__, template_folder=TEMPLATE_FOLDER)
install_json_errors(bp)
bp.register_error_handler(RenderError, render_error_response)

NO_AGENT_MESSAGE = "Sign in to the helpdesk as an agent to download invoices."


@bp.get("/payments/<payment_id>/invoice.pdf")
def agent_invoice(payment_id: str) -> Response:
    require_agent(NO_AGENT_MESSAGE)
    return send_invoice(service.invoice_for_agent(payment_id))


@bp.get("/credit-notes/<number>/credit-note.pdf")
def agent_credit_note(number: str) -> Response:
    require_agent(NO_AGENT_MESSAGE)
    return send_invoice(service.credit_note_for_agent(number), CREDIT_NOTE_NAME)

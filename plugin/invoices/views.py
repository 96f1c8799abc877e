"""The customer's invoice download: ``GET {prefix}/portal/payments/<payment_id>/invoice.pdf``.

Logged in through the portal (:func:`plugin.portal.auth.current_lead_id`); a browser
navigation without a session is sent to the portal's login page, any other client
gets 401 in the JSON error form. Another lead's payment and an unknown one are both
404. The answer is ``application/pdf`` as an attachment named ``invoice.pdf``;
wkhtmltopdf missing, too slow or failing is 503 with what to install or when to retry.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, request, send_file

from ..errors import NotLoggedIn
from ..http_json import install_json_errors
from ..portal.access import check_door
from ..portal.auth import NOT_LOGGED_IN_MESSAGE, current_lead_id, require_lead
from ..templating import TEMPLATE_FOLDER
from . import service
from .render import RenderError

bp = Blueprint("self_billing_invoices", __name__, template_folder=TEMPLATE_FOLDER)
install_json_errors(bp)

#: The file name the spec promises ("it will be named invoice.pdf for easier searching").
DOWNLOAD_NAME = "invoice.pdf"


#: A credit note's file name, beside the invoice's.
CREDIT_NOTE_NAME = "credit-note.pdf"


def send_invoice(path: Path, download_name: str = DOWNLOAD_NAME) -> Response:
    """The PDF at ``path`` as the download the contract describes."""
    # The file is named by the hash of its content: a strong ETag for free (304 on a repeat).
    response = send_file(path, mimetype="application/pdf", as_attachment=True, download_name=download_name,
                         etag=path.stem, conditional=True)
    response.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control.private = True
    response.cache_control.no_cache = True
    return response


def render_error_response(err: RenderError) -> Response:
    """503 in the JSON error form, with ``Retry-After`` when trying again may help."""
    response = jsonify(err.to_dict())
    response.status_code = err.status
    retry_after = err.extra.get("retry_after")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


bp.register_error_handler(RenderError, render_error_response)


def _is_page_navigation() -> bool:
    accept = request.accept_mimetypes
    return accept.accept_html and accept.best_match(["application/json", "text/html"]) == "text/html"


def _customer() -> int:
    check_door("api")  # self-service billing switched off: customers' documents with it (403)
    lead_id = current_lead_id()
    if lead_id is None:
        if _is_page_navigation():
            require_lead()  # redirects to the portal's login page
        raise NotLoggedIn(NOT_LOGGED_IN_MESSAGE, code="not_logged_in")
    return lead_id


@bp.get("/payments/<payment_id>/invoice.pdf")
def customer_invoice(payment_id: str) -> Response:
    return send_invoice(service.invoice_for_lead(payment_id, _customer()))


@bp.get("/credit-notes/<number>/credit-note.pdf")
def customer_credit_note(number: str) -> Response:
    return send_invoice(service.credit_note_for_lead(number, _customer()), CREDIT_NOTE_NAME)

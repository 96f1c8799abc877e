"""The agent desk: HTML pages over the same actions as the agent API.

Pages: the queue (by department and status), a ticket (purchase, payment history
with invoice links, the request's history, buttons for exactly the events the
request's machine accepts now, a reply box), the lead lookup (the "Orders tab":
Order ID and email ready to copy), and an order page for manual cancellations
and refunds whatever the portal settings.

The plugin mounts the desk at ``{prefix}/desk/``; a host mounts it again where
its agents work with :meth:`plugin.SelfBilling.register_agent_desk`. Pages
extend the host's ``base_template`` (block ``content``) when one was given.
Without a signed-in agent a page answers 401, or redirects to the login URL the
mount was given. Forms carry their own CSRF token (no app-wide CSRFProtect); what
their fields must be is checked by the agent API's schemas (:mod:`.schemas`).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response

from ..db import db
from ..errors import BillingError
from ..ledger.models import Lead, Purchase
from ..presenters import purchase_to_dict
from ..templating import TEMPLATE_FOLDER
from ..validation import is_row_id, validate
from . import actions, present, queries, service, wording
from .forms import EventForm, ManualCancelForm, ManualRefundForm, ReplyForm
from .present import agent_credit_note_url, agent_invoice_url
from .schemas import MAX_QUERY_CHARS, CancelIn, EventIn, RefundIn
from .ticket_page import AMOUNT_SLOT, cancel_question, refund_question, ticket_page

bp = Blueprint("self_billing_desk", __name__, template_folder=TEMPLATE_FOLDER)

PAGE_SIZE = 50
#: Session key of the one-line notice shown after a form's redirect. The desk keeps its own
#: instead of Flask's flash(), so a host layout that renders flashes does not show it twice.
NOTICE_KEY = "self_billing_desk_notice"
CSRF_MESSAGE = "The form expired or was sent from elsewhere. Reload the page and try again."
CHOOSE_EVENT = "Choose one of the buttons shown."
CHOOSE_WHEN = "Choose when to cancel: now or at the end of the paid period."


def _mount() -> dict[str, Any]:
    mounts = current_app.extensions["self_billing"].desk_mounts
    return mounts.get(request.blueprint or "", {})


@bp.before_request
def _signed_in_agent() -> Any:
    """A page for a signed-in agent only: else the mount's login URL, or 401 (:func:`.actions.require_agent`'s words)."""
    if actions.current_agent() is not None:
        return None
    login_url = _mount().get("login_url")
    if login_url:
        separator = "&" if "?" in login_url else "?"
        return redirect(login_url + separator + urlencode({"next": request.full_path.rstrip("?")}))
    return _render("self_billing/desk/error.html", 401, title="Sign in required",
                   message=actions.NO_AGENT_MESSAGE)


@bp.context_processor
def _desk_context() -> dict[str, Any]:
    state = current_app.extensions["self_billing"]
    return {
        "base_template": state.base_template,
        # The words for codes (wording.say(code, kind)), amounts and times, for every desk page.
        "say": wording.say,
        "money": wording.money,
        "when": wording.when,
        "day": wording.day,
        "amount_slot": AMOUNT_SLOT,
        "cancel_question": cancel_question,
        "refund_question": refund_question,
        "agent_email": actions.current_agent(),
        "invoice_url": agent_invoice_url,
        "credit_note_url": agent_credit_note_url,
        "desk": request.blueprint,
    }


def _notice(text: str) -> None:
    session[NOTICE_KEY] = text


def _render(template: str, http_status: int = 200, **context: Any) -> Response:
    context.setdefault("notice", session.pop(NOTICE_KEY, None))
    return current_app.response_class(render_template(template, **context), status=http_status,
                                      mimetype="text/html")


@bp.errorhandler(BillingError)
def _billing_error(err: BillingError) -> Response:
    return _render("self_billing/desk/error.html", err.status, title="Something needs your attention",
                   message=err.message)


@bp.errorhandler(CSRFError)
def _host_csrf_error(_err: CSRFError) -> Response:
    """The host's own CSRFProtect refused a desk form (a stale token): the desk's message, in its layout."""
    return _render("self_billing/desk/error.html", 400, title="Please try again", message=CSRF_MESSAGE)


# -- the queue -------------------------------------------------------------------------


@bp.get("/")
def queue() -> Response:
    status = request.args.get("status", "open")
    if status not in ("open", "closed", "all"):
        status = "open"
    department = request.args.get("department") or None
    try:
        before = int(request.args["before"]) if request.args.get("before") else None
    except ValueError:
        before = None
    if before is not None and not is_row_id(before):
        before = None
    page = queries.list_tickets(status=None if status == "all" else status, department=department,
                                limit=PAGE_SIZE, before=before)
    return _render("self_billing/desk/queue.html", rows=page.rows, next_before=page.next_before,
                   status=status, department=department, departments=queries.list_departments())


# -- a ticket --------------------------------------------------------------------------


def _ticket_page(ticket_id: int, status: int = 200, error: str | None = None,
                 event_form: EventForm | None = None, reply_form: ReplyForm | None = None,
                 field_error: str | None = None) -> Response:
    """The ticket's page; ``field_error`` also marks the partial refund's amount field as invalid."""
    return _render(
        "self_billing/desk/ticket.html", status,
        ticket=ticket_page(service.get_ticket(ticket_id)),
        error=error,
        field_error=field_error,
        failed_event=(event_form.event.data if event_form is not None and error else None),
        event_form=event_form or EventForm(formdata=None),
        reply_form=reply_form or ReplyForm(formdata=None),
    )


@bp.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> Response:
    return _ticket_page(ticket_id)


def _form_problem(err: BillingError, form: Any, choose: dict[str, str]) -> str:
    """What the page says of a form the agent API's schema refused: each field's label and problem."""
    fields = err.fields or {}
    for name, message in choose.items():
        if name in fields:
            return message
    if not fields:
        return err.message
    labels = {name: getattr(form, name).label.text for name in fields if hasattr(form, name)}
    return " ".join(f"{labels.get(name, name)}: {problem}." for name, problem in fields.items())


@bp.post("/tickets/<int:ticket_id>/events")
def ticket_event(ticket_id: int) -> Response:
    service.get_ticket(ticket_id)
    form = EventForm()
    if not form.validate_on_submit():
        return _ticket_page(ticket_id, 400, CSRF_MESSAGE, event_form=form)
    event = form.event.data or ""
    try:
        data = validate(EventIn, {"event": event, "message": form.message.data,
                                  "amount": form.amount.data if event == "refund_partial" else None})
    except BillingError as err:
        problem = _form_problem(err, form, {"event": CHOOSE_EVENT})
        return _ticket_page(ticket_id, err.status, problem, event_form=form,
                            field_error=problem if "amount" in (err.fields or {}) else None)
    try:
        actions.apply_ticket_event(ticket_id, actions.require_agent(), data.event, data.amount_cents,
                                   data.message or None)
    except BillingError as err:
        return _ticket_page(ticket_id, err.status, err.message, event_form=form,
                            field_error=err.message if "amount" in (err.fields or {}) else None)
    _notice(f"Done: {wording.say(event, 'done')} The customer was emailed.")
    return redirect(url_for(".ticket", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/replies")
def ticket_reply(ticket_id: int) -> Response:
    service.get_ticket(ticket_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        return _ticket_page(ticket_id, 400, CSRF_MESSAGE, reply_form=form)
    try:
        actions.reply(ticket_id, actions.require_agent(), form.message.data or "")
    except BillingError as err:
        return _ticket_page(ticket_id, err.status, err.message, reply_form=form)
    _notice("Your reply was recorded and emailed to the customer.")
    return redirect(url_for(".ticket", ticket_id=ticket_id))


# -- lead lookup -----------------------------------------------------------------------

#: Leads the lookup page lists (the newest matches; the page says so when there may be more).
DESK_LEADS_SHOWN = 20


@bp.get("/leads")
def leads() -> Response:
    q = (request.args.get("q") or "").strip()[:MAX_QUERY_CHARS]
    found = queries.search_leads(q, limit=DESK_LEADS_SHOWN) if q else []
    return _render("self_billing/desk/leads.html", q=q, shown=DESK_LEADS_SHOWN,
                   leads=[present.lead_to_dict(lead, purchases) for lead, purchases in found])


# -- manual actions on an order ----------------------------------------------------------


def _order_page(order_id: str, status: int = 200, error: str | None = None) -> Response:
    purchase = actions.get_purchase_by_order_id(order_id)
    lead = db.session.get(Lead, purchase.lead_id)
    return _render("self_billing/desk/order.html", status, purchase=purchase_to_dict(purchase),
                   customer=lead, error=error, cancel_form=ManualCancelForm(formdata=None),
                   refund_form=ManualRefundForm(formdata=None))


@bp.get("/orders/<order_id>")
def order(order_id: str) -> Response:
    return _order_page(order_id)


@bp.post("/orders/<order_id>/cancel")
def order_cancel(order_id: str) -> Response:
    actions.get_purchase_by_order_id(order_id)
    form = ManualCancelForm()
    if not form.validate_on_submit():
        return _order_page(order_id, 400, CSRF_MESSAGE)
    try:
        data = validate(CancelIn, {"when": form.when.data or "", "message": form.message.data})
    except BillingError as err:
        return _order_page(order_id, err.status, _form_problem(err, form, {"when": CHOOSE_WHEN}))
    try:
        actions.manual_cancel(order_id, actions.require_agent(), data.when, data.message or None)
    except BillingError as err:
        return _order_page(order_id, err.status, err.message)
    _notice("The subscription was cancelled." if data.when == "now"
           else "The subscription will end at the end of its paid period.")
    return redirect(url_for(".order", order_id=order_id))


@bp.post("/payments/<payment_id>/refunds")
def payment_refund(payment_id: str) -> Response:
    payment = actions.get_payment_by_id(payment_id)
    order_id = db.session.get(Purchase, payment.purchase_id).order_id
    form = ManualRefundForm()
    if not form.validate_on_submit():
        return _order_page(order_id, 400, CSRF_MESSAGE)
    try:
        data = validate(RefundIn, {"amount": form.amount.data or "", "message": form.message.data})
    except BillingError as err:
        return _order_page(order_id, err.status, _form_problem(err, form, {}))
    try:
        actions.manual_refund(payment_id, actions.require_agent(), data.amount_cents, data.message or None)
    except BillingError as err:
        return _order_page(order_id, err.status, err.message)
    _notice(f"Payment {payment_id} was refunded.")
    return redirect(url_for(".order", order_id=order_id))

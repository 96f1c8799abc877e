"""The portal's "Keep my subscription" page: undo a scheduled cancellation (Stripe's "Renew").

GET shows what confirming does (the subscription renews on the day it would have ended), POST does
it (CSRF) and comes back to My Orders with what happened. Whether it is offered is the policy's
answer (:func:`plugin.workflows.policy.can_resume`), the same as the JSON door's and the machine's.
"""
from __future__ import annotations

from flask import redirect, request

from . import actions
from .auth import require_lead
from .display import date
from .forms import CSRF_MESSAGE, ActionForm
from .notices import notify
from .pages import bp, csrf_failed, page_url, render

TITLE = "Keep my subscription"


@bp.route("/purchases/<order_id>/resume", methods=["GET", "POST"])
def resume(order_id: str):
    lead = require_lead()
    purchase = actions.own_purchase(lead.id, order_id)
    form = ActionForm()
    if request.method == "POST":
        if form.validate_on_submit():
            kept = actions.keep_own_subscription(purchase)
            notify(f"Your subscription to {kept.product} continues: it will not end. Your next payment is on "
                   f"{date(kept.next_payment_at)}.")
            return redirect(page_url("index"))
        status = 400
    else:
        status = 200
        actions.require_resume_offered(purchase)
    return render("resume.html", status, lead=lead, form=form, purchase=purchase, title=TITLE,
                  ends_on=date(purchase.cancels_at), error=CSRF_MESSAGE if csrf_failed(form) else None)

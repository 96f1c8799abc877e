"""The portal's paged payment history of one purchase: where "Show details" leads for older payments.

``GET /purchases/<order_id>/payments?after=<cursor>`` shows a page of the purchase's payments,
newest first, each row as on My Orders (invoice download, credit notes, refund), with links to the
newest and the next older page. Without JavaScript, My Orders' "Show more payments" is a link
here; with it, My Orders fetches the same page and moves its rows in place. Plain GET links that
change nothing, so no CSRF token is needed; another lead's order is the same 404 as elsewhere and
a cursor that is not ours a 400 page.
"""
from __future__ import annotations

from flask import request

from . import actions
from .auth import require_lead
from .pages import bp, render


@bp.get("/purchases/<order_id>/payments")
def payment_history(order_id: str):
    lead = require_lead()
    after = request.args.get("after") or None
    purchase, page = actions.payment_history(lead.id, order_id, after)
    return render("payments.html", lead=lead, purchase=purchase, payments=page["payments"], next=page["next"],
                  first_page=after is None, title=f"Payment history – {purchase.product}")

"""The customer help center: articles, and the "My Orders" tab where customers manage purchases.

``/help/`` lists the articles, ``/help/articles/<slug>`` shows one, and
``/help/my-orders`` is the tab slot the plugin's customer pages fill, inside
this help center's own layout (the ``base_template`` the demo gives the plugin).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, redirect, render_template, url_for

bp = Blueprint("help_center", __name__)


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    summary: str
    paragraphs: tuple[str, ...]


ARTICLES: tuple[Article, ...] = (
    Article(
        "find-your-order-id",
        "How do I log in to My Orders?",
        "You need an Order ID and the email you bought with.",
        (
            "Open the My Orders tab and enter two things: the Order ID of any payment you made, and the "
            "email address you used at checkout.",
            "The Order ID is in the top-right corner of every invoice, and in your purchase confirmation email.",
            "Both must belong to the same purchase history. If you bought with another email, use that one; "
            "if you are still stuck, write to us and an agent will look up your Order ID.",
        ),
    ),
    Article(
        "download-an-invoice",
        "Downloading an invoice",
        "Every completed payment has a PDF invoice.",
        (
            "In My Orders, open Show details on a purchase, then choose Download invoice next to the payment.",
            "The file is called invoice.pdf; your browser may save it straight to your Downloads folder.",
        ),
    ),
    Article(
        "cancel-a-subscription",
        "Cancelling a subscription",
        "Stop future payments of a subscription yourself.",
        (
            "Choose Cancel subscription next to the next scheduled payment, then confirm.",
            "Depending on the plan, the subscription ends at once or at the end of the period you paid for. "
            "Where cancellations are handled by our billing team, your request becomes a ticket and we reply "
            "by email.",
        ),
    ),
    Article(
        "request-a-refund",
        "Requesting a refund",
        "Payments within the refund window can be refunded.",
        (
            "Choose Request refund next to a payment, then confirm. The button shows only while the payment is "
            "within its refund window.",
            "Refunds are for the full remaining amount; for a partial refund, write to us.",
        ),
    ),
    Article(
        "update-card-or-address",
        "Updating your card or billing address",
        "Change the card or the bill-to address of future payments.",
        (
            "Choose Update credit card to add a card, pick the default, or remove one; an active subscription "
            "always keeps at least one card. We never see or store your full card number.",
            "Choose Update billing address to change the Bill to section of future invoices; invoices already "
            "issued keep the address they had.",
            "Paid with PayPal? Change the payment method under Manage automatic payments in your PayPal account.",
        ),
    ),
)
_BY_SLUG = {article.slug: article for article in ARTICLES}


@bp.get("/")
def home() -> Any:
    return render_template("helpdesk/help_home.html", articles=ARTICLES)


@bp.get("/articles/<slug>")
def article(slug: str) -> Any:
    found = _BY_SLUG.get(slug)
    if found is None:
        abort(404)
    return render_template("helpdesk/article.html", article=found)


@bp.get("/my-orders")
def my_orders() -> Any:
    """The My Orders tab: the plugin's customer pages (``register_my_orders_tab``), inside this layout."""
    return redirect(url_for("self_billing_my_orders.index"))

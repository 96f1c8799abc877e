"""My Orders (HTML) a page at a time: the lead's purchases, newest first, ``SELF_BILLING_PURCHASES_PAGE_SIZE`` each.

``GET {door}/?page=N`` shows page N (1, the default, the newest purchases). A page is read as
``size + 1`` rows in the order of :func:`plugin.presenters.purchases_for_lead` (``purchased_at``
then id, newest first): the extra row only says whether an older page exists, and is not shown.
With one COUNT of the lead's purchases (on the indexed ``lead_id``), the page says "Showing the
latest 10 of 30 purchases." Only the pages are paged: the portal JSON API still gives every
purchase. A ``page`` that is not a whole number from 1 up is :class:`InvalidInput` (a 400 page); a
page past the end is an ordinary page with no purchases on it (the template says so).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from ..db import db
from ..errors import InvalidInput
from ..ledger.models import Purchase
from ..presenters import lead_purchases, present_purchases

#: The largest page a host may configure (a page of purchases is read and rendered whole).
MAX_PAGE_SIZE = 100
#: Page numbers have at most this many digits: far past any lead's last page, and the offset always fits.
_PAGE_NUMBER = re.compile(r"[0-9]{1,9}")
BAD_PAGE_MESSAGE = ("This page of My Orders does not exist: 'page' must be a whole number from 1 up. Go back to "
                    "My Orders for your latest purchases.")


@dataclass(frozen=True)
class PurchasePage:
    """One page of My Orders: its purchases as contract P, and where it sits among the lead's purchases."""

    purchases: list[dict[str, Any]]
    #: 1 for the newest purchases.
    number: int
    #: Whether an older page follows (``number + 1``).
    has_older: bool
    #: How many purchases the lead has in all.
    total: int
    #: How many of the lead's purchases come before this page's first one (0 on page 1): the index
    #: that keeps the modules' heading ids unique when pages are joined in place.
    first_index: int
    #: Purchases per page.
    size: int


def page_size() -> int:
    """``SELF_BILLING_PURCHASES_PAGE_SIZE``, kept between 1 and :data:`MAX_PAGE_SIZE`."""
    return max(1, min(int(current_app.config["SELF_BILLING_PURCHASES_PAGE_SIZE"]), MAX_PAGE_SIZE))


def parse_page_number(value: str | None) -> int:
    """The page a ``page`` query value names: 1 when it is missing or empty; InvalidInput unless it is a whole
    number from 1 up (digits only, at most nine)."""
    if not value:
        return 1
    if not _PAGE_NUMBER.fullmatch(value) or int(value) < 1:
        raise InvalidInput(BAD_PAGE_MESSAGE, code="bad_page", fields={"page": "must be a whole number from 1 up"})
    return int(value)


def purchase_page(lead_id: int, number: int = 1) -> PurchasePage:
    """Page ``number`` (1 = newest) of the lead's purchases, newest first, as the customer's portal shows them."""
    if number < 1:
        raise InvalidInput(BAD_PAGE_MESSAGE, code="bad_page", fields={"page": "must be a whole number from 1 up"})
    size = page_size()
    first_index = (number - 1) * size
    rows = list(db.session.execute(lead_purchases(lead_id).offset(first_index).limit(size + 1)).scalars().all())
    total = db.session.execute(
        select(func.count()).select_from(Purchase).where(Purchase.lead_id == lead_id)
    ).scalar_one()
    shown = rows[:size]
    return PurchasePage(purchases=present_purchases(shown, for_customer=True), number=number,
                        has_older=len(rows) > size, total=total, first_index=first_index, size=size)

"""What merchants learn from the requests: the cancellations report, counted per reason.

:func:`cancellations_by_reason` counts the cancellation requests customers made in a time range,
per reason they picked from the merchant's list (``sb_requests.reason_choice``), the merchant's
current reasons first and in their order (zeros included), then reasons picked from an earlier
list; and how many picked none and how many wrote something. One grouped query; a range is
``[from, to)`` in UTC.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from ..db import db
from ..ledger.settings import cancellation_reasons
from ..timefmt import iso_utc
from .models import BillingRequest


def cancellations_by_reason(start: datetime, end: datetime) -> dict[str, Any]:
    """The cancellations report for ``[start, end)``."""
    rows = db.session.execute(
        select(BillingRequest.reason_choice, func.count(),
               func.sum(case((BillingRequest.reason != "", 1), else_=0)))
        .where(BillingRequest.type == "cancellation", BillingRequest.created_at >= start,
               BillingRequest.created_at < end)
        .group_by(BillingRequest.reason_choice)
    ).all()
    counts = {choice: count for choice, count, _written in rows}
    offered = cancellation_reasons()
    reasons = [{"reason": reason, "count": counts.get(reason, 0)} for reason in offered]
    reasons += [{"reason": choice, "count": count} for choice, count in sorted(
        ((choice, count) for choice, count in counts.items() if choice is not None and choice not in offered),
        key=lambda item: (-item[1], item[0]))]
    return {
        "from": iso_utc(start),
        "to": iso_utc(end),
        "total": sum(counts.values()),
        "reasons": reasons,
        "no_reason": counts.get(None, 0),
        "with_comment": sum(int(written or 0) for _choice, _count, written in rows),
    }

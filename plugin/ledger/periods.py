"""Billing periods: adding a price point's interval to a date."""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta


def add_interval(start: datetime, interval: str, count: int = 1) -> datetime:
    """``start`` plus ``count`` days, weeks, months or years; month ends clamp (Jan 31 + 1 month = Feb 28/29)."""
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    if interval == "month":
        months = start.month - 1 + count
        year, month = start.year + months // 12, months % 12 + 1
    elif interval == "year":
        year, month = start.year + count, start.month
    else:
        raise ValueError(f"unknown interval {interval!r}")
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)

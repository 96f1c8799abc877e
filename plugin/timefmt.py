"""Times as every JSON answer writes them: ISO 8601 in UTC, whole seconds, with a ``Z``."""
from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(value: datetime | None) -> str | None:
    """``2026-11-26T10:00:00Z``, or None. A naive time is taken as UTC (the database's times are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    # isoformat, not strftime("%Y"): the year has its four digits on every platform. Its first 19
    # characters are the date and the whole seconds (a page of payments writes hundreds of these).
    return value.isoformat(timespec="seconds")[:19] + "Z"

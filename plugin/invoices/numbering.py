"""Document numbers: an unbroken sequence per series, taken in the transaction that issues the document.

``SELF_BILLING_INVOICE_NUMBER_FORMAT`` (default ``INV-{year}-{seq:06d}``) and
``SELF_BILLING_CREDIT_NOTE_NUMBER_FORMAT`` (default ``CN-{year}-{seq:06d}``) are the
merchant's. A format with ``{year}`` starts a new series each calendar year; without it
the series never resets. The counter is a row (``sb_document_counters``) incremented
with an ``UPDATE``: on PostgreSQL that takes its row lock until the issuing transaction
ends, on SQLite the database's write lock, so two concurrent documents never get the same
number, and a transaction that rolls back gives its number back (no gap). Not ``max()+1``
(races) and not a database sequence (sequences leave gaps on rollback).
"""
from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from ..db import db
from .documents import DocumentCounter

FORMAT_KEYS = {"invoice": "SELF_BILLING_INVOICE_NUMBER_FORMAT", "credit_note": "SELF_BILLING_CREDIT_NOTE_NUMBER_FORMAT"}


def check_number_formats(config: dict) -> None:
    """Refuse, at start-up, a number format that cannot number documents: it must hold ``{seq}`` (else
    every number would be the same) and format with ``seq`` and ``year`` alone."""
    for key in FORMAT_KEYS.values():
        number_format = config.get(key)
        if not isinstance(number_format, str) or "{seq" not in number_format:
            raise RuntimeError(f"{key}={number_format!r} has no {{seq}}: every document would get the same number. "
                               f"Use a format such as 'INV-{{year}}-{{seq:06d}}'.")
        try:
            number_format.format(year=2026, seq=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise RuntimeError(f"{key}={number_format!r} cannot be formatted ({exc}); it may use only {{seq}} and "
                               f"{{year}}, e.g. 'INV-{{year}}-{{seq:06d}}'.") from None


def _series(kind: str, number_format: str, issued_at: datetime) -> str:
    return f"{kind}:{issued_at.year}" if "{year" in number_format else kind


def _take(series: str) -> int:
    """The next number of ``series``, under the counter row's lock, in the current transaction."""
    taken = db.session.execute(
        update(DocumentCounter).where(DocumentCounter.series == series)
        .values(last=DocumentCounter.last + 1).returning(DocumentCounter.last)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if taken is not None:
        return taken
    try:  # the series' first document: a concurrent first one may insert the row first
        with db.session.begin_nested():
            db.session.add(DocumentCounter(series=series, last=1))
        return 1
    except IntegrityError:
        return _take(series)


def next_number(kind: str, issued_at: datetime) -> str:
    """The next document number of ``kind`` (``invoice`` or ``credit_note``), formatted."""
    number_format = current_app.config[FORMAT_KEYS[kind]]
    seq = _take(_series(kind, number_format, issued_at))
    return number_format.format(year=issued_at.year, seq=seq)

"""A purchase's payments a page at a time, newest first: what My Orders reads of the history.

My Orders shows each purchase's latest page (:func:`latest_pages`: two statements for all the
purchases of the page, at most ``size`` payment rows each, with each purchase's total); "Show
details" goes further back a page at a time (:func:`older_page`) from an opaque cursor. A cursor
is the last payment shown, (``paid_at``, row id), base64url-encoded: the keyset of the order
``paid_at DESC, id DESC``, so a page costs the same however far back it is (an index range, no
OFFSET), and a payment recorded meanwhile neither repeats nor hides one on the next page. It
names a position, not a permission: the query is always bound to the purchase the caller owns.
Anything that is not a cursor this module made is :class:`InvalidInput` (400 ``bad_cursor``),
never a database error.
"""
from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import Integer, and_, column, func, or_, select, text

from .db import db
from .errors import InvalidInput
from .invoices.documents import Invoice
from .ledger.models import Payment
from .validation import is_row_id

#: The largest page a host may configure (a page is read and rendered whole).
MAX_PAGE_SIZE = 100
#: Longer than any cursor this module makes: longer ones are refused before decoding.
MAX_CURSOR_LENGTH = 80
BAD_CURSOR_MESSAGE = ("This 'after' value is not a cursor this API gave out. Ask for the first page without "
                      "'after', then pass the 'next' value of each page to get the one after it.")

#: What My Orders shows of a payment: read as plain rows, not ORM objects (a page of them per purchase),
#: without the bill-to snapshot, which only invoices need, and with its invoice's id and number (an
#: outer join on the invoice's unique payment id: None before the payment is invoiced).
_PAYMENT_COLUMNS = (
    Payment.id, Payment.payment_id, Payment.purchase_id, Payment.amount_cents, Payment.currency,
    Payment.paid_at, Payment.status, Payment.refunded_cents, Payment.period_start, Payment.period_end,
)
_INVOICE_COLUMNS = (Invoice.id.label("invoice_id"), Invoice.number.label("invoice_number"))
_NEWEST_FIRST = (Payment.paid_at.desc(), Payment.id.desc())


class PaymentRow:
    """A payment as My Orders reads it; has what the refund conditions ask of a payment."""

    __slots__ = ("id", "payment_id", "purchase_id", "amount_cents", "currency", "paid_at", "status",
                 "refunded_cents", "period_start", "period_end", "invoice_id", "invoice_number")

    def __init__(self, row: Any) -> None:
        (self.id, self.payment_id, self.purchase_id, self.amount_cents, self.currency, self.paid_at, self.status,
         self.refunded_cents, self.period_start, self.period_end, self.invoice_id, self.invoice_number) = row[:_FIELDS]

    @property
    def remaining_cents(self) -> int:
        return self.amount_cents - self.refunded_cents


#: A payment row's fields: a row may carry more after them (PostgreSQL's page has the purchase's count).
_FIELDS = len(PaymentRow.__slots__)


def page_size() -> int:
    """``SELF_BILLING_PAYMENTS_PAGE_SIZE``, kept between 1 and :data:`MAX_PAGE_SIZE`."""
    return max(1, min(int(current_app.config["SELF_BILLING_PAYMENTS_PAGE_SIZE"]), MAX_PAGE_SIZE))


def encode_cursor(payment: PaymentRow) -> str:
    raw = f"{payment.paid_at.astimezone(timezone.utc).isoformat()}~{payment.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """(paid_at, row id) of the last payment of the page before; InvalidInput for anything else."""
    bad = InvalidInput(BAD_CURSOR_MESSAGE, code="bad_cursor", fields={"after": "not a cursor from this API"})
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, row_id = text.partition("~")
        paid_at = datetime.fromisoformat(moment)
        number = int(row_id) if row_id.isascii() and row_id.isdigit() and len(row_id) <= 10 else -1
        if paid_at.tzinfo is None or not is_row_id(number):
            raise bad
        return paid_at.astimezone(timezone.utc), number
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):  # OverflowError: year 1, east of UTC
        raise bad from None


def latest_pages(purchase_ids: Iterable[int], size: int | None) -> tuple[dict[int, list[PaymentRow]], dict[int, int]]:
    """Each purchase's latest ``size`` payments, newest first, and how many it has.

    Each purchase reads its page from the index on (``purchase_id``, ``paid_at``) with ``ORDER BY ...
    LIMIT`` and never the rest of its history; its count comes from the index on ``purchase_id``.
    On PostgreSQL that is one statement (:func:`_lateral_statement`: a LATERAL page and count per
    purchase id of an array, one small plan); elsewhere two (one more per
    :data:`_PURCHASES_PER_STATEMENT` purchases): the counts, and one page per purchase joined by
    UNION ALL (:func:`_pages_statement`). (A window function over the purchases' payments,
    ``row_number() <= size``, numbers every payment of the history first: 13x slower for 30 x 50 on
    SQLite.) ``size`` None: every payment (the merchant's and the agents' views of a purchase).
    """
    ids = list(purchase_ids)
    pages: dict[int, list[PaymentRow]] = {pid: [] for pid in ids}
    totals: dict[int, int] = {pid: 0 for pid in ids}
    if not ids:
        return pages, totals
    if size is None:
        query = _with_invoices().where(Payment.purchase_id.in_(ids)).order_by(Payment.purchase_id, *_NEWEST_FIRST)
        for row in db.session.execute(query):
            pages[row.purchase_id].append(PaymentRow(row))
        totals.update({pid: len(rows) for pid, rows in pages.items()})
        return pages, totals
    if db.session.get_bind().dialect.name == "postgresql":
        for row in db.session.execute(_lateral_statement(), {"ids": ids, "size": size}).all():
            payment = PaymentRow(row)
            pages[payment.purchase_id].append(payment)
            totals[payment.purchase_id] = row[-1]
        return pages, totals
    totals.update(db.session.execute(
        select(Payment.purchase_id, func.count()).where(Payment.purchase_id.in_(ids)).group_by(Payment.purchase_id)
    ).all())
    having = [pid for pid in ids if totals[pid]]
    for start in range(0, len(having), _PURCHASES_PER_STATEMENT):
        chunk = having[start:start + _PURCHASES_PER_STATEMENT]
        params = {f"p{n}": pid for n, pid in enumerate(chunk)}
        for row in db.session.execute(_pages_statement(len(chunk)), {**params, "size": size}).all():
            payment = PaymentRow(row)
            pages[payment.purchase_id].append(payment)
    return pages, totals


#: Purchases per UNION ALL statement (SQLite allows 500 SELECTs in one compound statement).
_PURCHASES_PER_STATEMENT = 200


def _latest_page_sql(purchase: str) -> str:
    """The SELECT of one purchase's latest ``:size`` payments with their invoices, newest first, as My Orders
    reads them; ``purchase`` is the SQL that names the purchase's id (a parameter, or a column outside)."""
    columns = ", ".join(f"p.{column.key}" for column in _PAYMENT_COLUMNS)
    return (f"SELECT {columns}, i.id AS invoice_id, i.number AS invoice_number "
            f"FROM {Payment.__table__.name} AS p LEFT OUTER JOIN {Invoice.__table__.name} AS i ON i.payment_id = p.id "
            f"WHERE p.purchase_id = {purchase} ORDER BY p.paid_at DESC, p.id DESC LIMIT :size")


@lru_cache(maxsize=64)
def _pages_statement(purchases: int) -> Any:
    """``purchases`` latest-page SELECTs joined by UNION ALL (parameters p0..pN and size), typed as payments.

    Plain SQL, made once per count: the same statement built with SQLAlchemy's ``union_all`` costs
    more to compile and key for the cache than to run.
    """
    sql = " UNION ALL ".join(f"SELECT * FROM ({_latest_page_sql(f':p{n}')}) AS page_{n}" for n in range(purchases))
    return text(sql).columns(*_PAYMENT_COLUMNS, *_INVOICE_COLUMNS)


@lru_cache(maxsize=1)
def _lateral_statement() -> Any:
    """PostgreSQL: each purchase id of the array ``:ids`` with its payment count and latest ``:size``
    payments (a purchase without payments gives no row), as one statement.

    The UNION ALL of :func:`_pages_statement` plans every member on each request (about 2 ms for 30
    purchases: psycopg's prepared statements do not outlive the rollback that ends a read-only
    request), this one plan is about 0.1 ms.
    """
    sql = (f"SELECT page.*, counted.total FROM unnest(CAST(:ids AS integer[])) AS purchase(id) "
           f"CROSS JOIN LATERAL (SELECT count(*) AS total FROM {Payment.__table__.name} "
           f"WHERE purchase_id = purchase.id) AS counted "
           f"CROSS JOIN LATERAL ({_latest_page_sql('purchase.id')}) AS page")
    return text(sql).columns(*_PAYMENT_COLUMNS, *_INVOICE_COLUMNS, column("total", Integer))


def _with_invoices() -> Any:
    return select(*_PAYMENT_COLUMNS, *_INVOICE_COLUMNS).outerjoin(Invoice, Invoice.payment_id == Payment.id)


def older_page(purchase_id: int, after: str | None, size: int) -> tuple[list[PaymentRow], str | None]:
    """The ``size`` payments of the purchase after the cursor ``after`` (None: the latest), and the next cursor."""
    query = _with_invoices().where(Payment.purchase_id == purchase_id)
    if after is not None:
        paid_at, row_id = decode_cursor(after)
        query = query.where(or_(Payment.paid_at < paid_at, and_(Payment.paid_at == paid_at, Payment.id < row_id)))
    rows = [PaymentRow(row) for row in db.session.execute(query.order_by(*_NEWEST_FIRST).limit(size + 1))]
    if len(rows) > size:
        return rows[:size], encode_cursor(rows[size - 1])
    return rows, None


def next_cursor(page: list[PaymentRow], total: int) -> str | None:
    """The cursor of the payments older than ``page`` (a purchase's latest), None when it holds them all."""
    return encode_cursor(page[-1]) if page and total > len(page) else None

"""The queue's and the lead lookup's queries: pages of tickets, departments, leads with their orders.

Read-only; the agent API and the desk page them the same way.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from sqlalchemy import column, func, literal_column, or_, select, table
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased

from ..db import db, id_in
from ..ledger.models import Lead, Purchase
from .models import Department, Ticket


@dataclass
class TicketPage:
    """One page of the queue: rows of (ticket, order_id, email) and the cursor of the next page."""

    rows: list[tuple[Ticket, str, str]]
    next_before: int | None


def list_tickets(status: str | None = None, department: str | None = None, limit: int = 50,
                 before: int | None = None, plain: bool = False) -> TicketPage:
    """The queue, newest first, filtered by status and department, paged by ticket id.

    ``plain``: each ticket as a read-only row of its columns plus ``department_name`` instead of an ORM
    object (the agent API only reads them; building 50 objects cost more than the query).
    """
    tickets = Ticket.__table__
    first = (
        select(tickets, Department.name.label("department_name")).join(Department, Department.id == Ticket.department_id)
        if plain else select(Ticket)
    )
    query = (
        first.add_columns(Purchase.order_id, Lead.email)
        .join(Purchase, Purchase.id == Ticket.purchase_id)
        .join(Lead, Lead.id == Ticket.lead_id)
        .order_by(Ticket.id.desc())
        .limit(limit + 1)
    )
    if status:
        query = query.where(Ticket.status == status)
    if department:
        dept_id = db.session.execute(
            select(Department.id).where(func.lower(Department.name) == department.strip().lower())
        ).scalar()
        if dept_id is None:
            return TicketPage(rows=[], next_before=None)
        query = query.where(Ticket.department_id == dept_id)
    if before is not None:
        query = query.where(Ticket.id < before)
    if plain:
        rows = [(row, row.order_id, row.email) for row in db.session.execute(query).all()]
    else:
        rows = [(t, order_id, email) for t, order_id, email in db.session.execute(query).all()]
    next_before = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_before = rows[-1][0].id
    return TicketPage(rows=rows, next_before=next_before)


def list_departments() -> list[str]:
    return list(db.session.execute(select(Department.name).order_by(Department.name)).scalars())


def _exact_lead(needle: str, raw: str) -> list[Lead] | None:
    """The one lead an exact email or Order ID names (both indexed), or None to search by substring.

    Agents mostly paste what the customer gave them; this answers that from an index even among
    millions of leads, where a substring search has to read every lead.
    """
    lead = None
    if "@" in needle:
        lead = db.session.execute(select(Lead).where(Lead.email_normalized == needle)).scalar_one_or_none()
    if lead is None and raw:
        lead = db.session.execute(
            select(Lead).join(Purchase, Purchase.lead_id == Lead.id).where(Purchase.order_id == raw)
        ).scalar_one_or_none()
    return [lead] if lead is not None else None


#: SQLite's trigram full-text table of the leads (migration de1be973689f), kept by triggers on sb_leads.
LEAD_SEARCH_TABLE = "sb_leads_search"
_LEAD_SEARCH_TRIGGERS = tuple(f"{LEAD_SEARCH_TABLE}_{kind}" for kind in ("ai", "ad", "au"))
#: Per engine: does its SQLite database have the full-text table, its triggers, and FTS5 to read them?
_full_text: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _has_full_text() -> bool:
    """Whether the lead search may read ``sb_leads_search`` (SQLite); checked once per engine.

    Not when the database was made without the migrations (``create_all``), when the table lost its
    triggers (``sb_leads`` dropped and made again), or when this SQLite has no FTS5 trigram tokenizer.
    """
    engine = db.session.get_bind()
    known = _full_text.get(engine)
    if known is None:
        # On the session's own connection (an in-memory database has only one), through the driver's
        # cursor so that a page's statement count does not change on the engine's first search; on
        # SQLite a failed SELECT leaves the transaction as it was.
        conn = db.session.connection()
        cursor = conn.connection.dbapi_connection.cursor()
        names = (LEAD_SEARCH_TABLE, *_LEAD_SEARCH_TRIGGERS)
        try:
            marks = ", ".join("?" * len(names))
            cursor.execute(f"SELECT count(*) FROM sqlite_master WHERE name IN ({marks})", names)
            known = cursor.fetchone()[0] == len(names)
            if known:  # and FTS5 with the trigram tokenizer is there to read it
                cursor.execute(f"SELECT rowid FROM {LEAD_SEARCH_TABLE} WHERE {LEAD_SEARCH_TABLE} MATCH '\"abc\"' LIMIT 0")
                cursor.fetchall()
        except conn.dialect.loaded_dbapi.Error:
            known = False
        finally:
            cursor.close()
        _full_text[engine] = known
    return known


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matches(columns, needle: str):
    """The email or the full name contains ``needle`` (lower-case): the search's one definition."""
    pattern = _like_pattern(needle)
    # The full name holds both names, so one condition covers either; on PostgreSQL both expressions
    # have trigram indexes (migration *_trigram_lead_search_on_postgresql). The space is a literal, not
    # a bound parameter, so the expression is the index's own.
    full_name = func.lower(columns.first_name + literal_column("' '") + columns.last_name)
    return or_(columns.email_normalized.like(pattern, escape="\\"), full_name.like(pattern, escape="\\"))


#: PostgreSQL: the newest leads looked at one by one before the trigram indexes are asked, per lead asked for.
RECENT_WINDOW_PER_LEAD = 25
RECENT_WINDOW_MIN = 500


def _leads_containing(needle: str, limit: int) -> list[Lead]:
    """The newest ``limit`` leads whose email or name contains ``needle`` (lower-case), newest first.

    Newest first is what an agent wants of a common term, and unlike an order by email it lets each
    database stop early (issue 18: the same cost at 1,000 and 100,000 leads):

    * SQLite: the trigram full-text table ``sb_leads_search`` (SQLite 3.34+), read by rowid (the
      lead's id) descending, stops at the ``limit``-th hit for a common term and a rare one alike;
      each hit is checked with the ``LIKE`` below, so the matches are exactly the plain search's.
      Needles under 3 characters have no trigram and scan the leads newest first, as does a database
      without the table.
    * PostgreSQL: the newest leads (a bounded window) are filtered first, which answers a common
      term; when that finds fewer than ``limit``, the pg_trgm indexes are asked for every match and
      the newest taken. (``ORDER BY id DESC LIMIT`` on its own lets the planner walk the primary key
      backwards for a term it thinks common, which reads most leads when the matches are old.)
    """
    session = db.session
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        if len(needle) >= 3 and _has_full_text():
            search = table(LEAD_SEARCH_TABLE, column("rowid"))
            phrase = '"' + needle.replace('"', '""') + '"'  # an FTS5 string: no query syntax gets through
            query = (
                select(Lead).select_from(search).join(Lead, Lead.id == search.c.rowid)
                .where(literal_column(LEAD_SEARCH_TABLE).op("MATCH")(phrase), _matches(Lead, needle))
                .order_by(search.c.rowid.desc())
            )
        else:
            query = select(Lead).where(_matches(Lead, needle)).order_by(Lead.id.desc())
        leads = list(session.execute(query.limit(limit)).scalars())
    else:
        leads_table = Lead.__table__
        window = max(RECENT_WINDOW_MIN, RECENT_WINDOW_PER_LEAD * limit)
        recent = select(leads_table).order_by(leads_table.c.id.desc()).limit(window).subquery("recent")
        recent_lead = aliased(Lead, recent)
        leads = list(session.execute(
            select(recent_lead).where(_matches(recent.c, needle)).order_by(recent.c.id.desc()).limit(limit)
        ).scalars())
        if len(leads) < limit:
            # ``id + 0``: ordered by an expression, so the planner takes the trigram indexes' matches
            # and keeps the newest (a top-N sort), rather than walking the primary key backwards.
            leads = list(session.execute(
                select(Lead).where(_matches(Lead, needle)).order_by((Lead.id + 0).desc()).limit(limit)
            ).scalars())
    return leads


def search_leads(q: str, limit: int = 20) -> list[tuple[Lead, list[Purchase]]]:
    """The lead an exact email or Order ID names, else the newest ``limit`` leads whose email or name
    contains ``q`` (case-insensitive), newest first; each with its orders, newest first."""
    needle = (q or "").strip().lower()
    if not needle:
        return []
    leads = _exact_lead(needle, (q or "").strip())
    if leads is None:
        leads = _leads_containing(needle, limit)
    if not leads:
        return []
    purchases = db.session.execute(
        select(Purchase)
        .where(id_in(Purchase.lead_id, [lead.id for lead in leads]))
        .order_by(Purchase.purchased_at.desc(), Purchase.id.desc())
    ).scalars()
    by_lead: dict[int, list[Purchase]] = {lead.id: [] for lead in leads}
    for purchase in purchases:
        by_lead[purchase.lead_id].append(purchase)
    return [(lead, by_lead[lead.id]) for lead in leads]

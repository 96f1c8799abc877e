"""The queue's and the lead lookup's queries: pages of tickets, departments, leads with their orders.

Read-only; the agent API and the desk page them the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, literal_column, or_, select

from ..db import db
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


def _leads_containing(needle: str, limit: int) -> list[Lead]:
    """Leads whose email or name contains ``needle``, first ``limit`` by email."""
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    # The full name holds both names, so one condition covers either; on PostgreSQL both expressions
    # have trigram indexes (migration *_trigram_lead_search_on_postgresql), elsewhere this scans.
    # The space is a literal, not a bound parameter, so the expression is the index's own.
    full_name = func.lower(Lead.first_name + literal_column("' '") + Lead.last_name)
    return list(db.session.execute(
        select(Lead)
        .where(or_(
            Lead.email_normalized.like(pattern, escape="\\"),
            full_name.like(pattern, escape="\\"),
        ))
        .order_by(Lead.email_normalized)
        .limit(limit)
    ).scalars())


def search_leads(q: str, limit: int = 20) -> list[tuple[Lead, list[Purchase]]]:
    """The lead an exact email or Order ID names, else the leads whose email or name contains ``q``
    (case-insensitive); each with its orders, newest first."""
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
        .where(Purchase.lead_id.in_([lead.id for lead in leads]))
        .order_by(Purchase.purchased_at.desc(), Purchase.id.desc())
    ).scalars()
    by_lead: dict[int, list[Purchase]] = {lead.id: [] for lead in leads}
    for purchase in purchases:
        by_lead[purchase.lead_id].append(purchase)
    return [(lead, by_lead[lead.id]) for lead in leads]

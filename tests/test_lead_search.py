"""The agents' substring lead search: the newest matching leads, exactly the leads a plain ``LIKE`` finds.

On SQLite it reads the trigram full-text table ``sb_leads_search`` (migration de1be973689f), kept by
triggers; on PostgreSQL a window of the newest leads, then the pg_trgm indexes (tests/test_lead_search_plan.py).
Each case compares with the plain search run on the same database, so the semantics cannot drift:
a part of the email or of the full name, case-insensitive as the database's ``LIKE`` is, ``%`` and
``_`` literal, FTS5 syntax (quotes, ``*``, ``OR``) searched for as text.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import create_engine, event, text

from plugin.db import db
from plugin.ledger.models import Lead
from plugin.schema import alembic_config, upgrade_engine
from plugin.tickets import queries
from tests.conftest import PG_URL

sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="SQLite's full-text table")

FIRST = ["Ann", "Bo", "Zoë", "ZOË", "Lena", "O'Neil", "Jo", "Ivo"]
LAST = ["Lee", "Novak", "Chen", "50%off", "a_b", 'Qu"ote', "Or*Not", "Smith"]

NEEDLES = [
    "novak",            # common, everywhere
    "rareterm",         # one old lead
    "oldname",          # many leads, all old: the newest are far down
    "ee",               # under 3 characters: no trigram
    "o",                # one character
    "50%", "%", "_", "a_b", "a%b", "\\",  # LIKE's wildcards and escape, literally
    '"', 'qu"ote', '"qu', "o'neil", "or*not", "or", "ann* or bo", "near(",  # FTS5 syntax, literally
    "zoë", "élise", "élise l", "ann lee", "lee ann", "@example.com", ".novak1", "xyzzy",
]


def _plain(needle: str, limit: int) -> list[int]:
    """The plain search, written out by hand: ids of the newest ``limit`` leads it matches."""
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return list(db.session.execute(text(
        "SELECT id FROM sb_leads WHERE email_normalized LIKE :p ESCAPE '\\' "
        "OR lower(first_name || ' ' || last_name) LIKE :p ESCAPE '\\' ORDER BY id DESC LIMIT :n"),
        {"p": f"%{escaped}%", "n": limit}).scalars())


def _add_leads(count: int = 1200) -> None:
    now = datetime.now(timezone.utc)
    rows = []
    for n in range(1, count + 1):
        first, last = FIRST[n % len(FIRST)], LAST[(n // 3) % len(LAST)]
        if n == 7:
            last = "Rareterm"
        elif n <= 300 and n % 2:
            last = "Oldname"
        email = f"{first}.{last}{n}@Example.com".replace(" ", "")
        if n % 50 == 0:  # a name in capitals outside ASCII, not in the email: SQLite's LIKE folds ASCII only
            first, email = "ÉLISE", f"client{n}@example.com"
        rows.append({"email": email, "email_normalized": email.lower(), "first_name": first, "last_name": last,
                     "created_at": now})
    db.session.execute(Lead.__table__.insert(), rows)
    db.session.commit()


def _check(needle: str, limit: int) -> list[Lead]:
    found = queries._leads_containing(needle, limit)
    expected = _plain(needle, limit)
    assert [lead.id for lead in found] == expected, (needle, limit)  # the same leads, newest first
    return found


@pytest.mark.parametrize("limit", [1, 20, 100])
def test_the_newest_matches_are_the_plain_search_s(app, limit):
    with app.app_context():
        _add_leads()
        for needle in NEEDLES:
            _check(needle, limit)
        assert len(_check("novak", limit)) == limit
        assert [lead.id for lead in _check("rareterm", limit)] == [7]
        assert not _check("xyzzy", limit)
        # The oldest matches are not what a page of 20 shows: the newest are.
        if limit == 20:
            assert {lead.id for lead in _check("oldname", 20)} == set(range(299, 259, -2))


def test_search_leads_is_case_insensitive_and_trims(app):
    with app.app_context():
        _add_leads(50)
        for q in ("NOVAK", "  Novak  ", "nOvAk"):
            found = [lead.id for lead, _orders in queries.search_leads(q)]
            assert sorted(found) == sorted(_plain("novak", 20)), q


@sqlite_only
def test_sqlite_reads_the_full_text_table_newest_first(app):
    with app.app_context():
        _add_leads()
        engine = db.engine
        statements: list = []

        def keep(conn, cursor, statement, parameters, context, executemany):
            if "sb_leads" in statement:
                statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", keep)
        try:
            queries._leads_containing("rareterm", 20)
            queries._leads_containing("ee", 20)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert len(statements) == 2, statements
        with engine.connect() as conn:
            plans = ["\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s, p))
                     for s, p in statements]
        long_needle, short_needle = plans
        # The full-text table is the outer loop, read by rowid descending: no sort, no scan of sb_leads.
        outer, inner = long_needle.splitlines()
        assert outer.startswith("SCAN sb_leads_search VIRTUAL TABLE"), long_needle
        assert inner == "SEARCH sb_leads USING INTEGER PRIMARY KEY (rowid=?)", long_needle
        # Two characters make no trigram: the leads are scanned newest first, still without a sort.
        assert "VIRTUAL TABLE" not in short_needle and "TEMP B-TREE" not in short_needle, short_needle


@sqlite_only
def test_the_triggers_keep_the_full_text_table_in_step(app):
    with app.app_context():
        _add_leads(30)
        lead = db.session.get(Lead, 7)
        lead.first_name, lead.last_name = "Wilhelmina", "Quast"
        lead.email_normalized = "w.quast@example.net"
        db.session.commit()
        assert [found.id for found in _check("wilhelmina q", 20)] == [7]
        assert [found.id for found in _check("quast@example.n", 20)] == [7]
        assert _check("rareterm", 20) == []
        db.session.execute(text("DELETE FROM sb_leads WHERE id = 7"))
        db.session.commit()
        assert _check("quast", 20) == []
        rows = db.session.execute(text("SELECT count(*) FROM sb_leads_search")).scalar()
        assert rows == db.session.execute(text("SELECT count(*) FROM sb_leads")).scalar() == 29


@sqlite_only
def test_without_the_full_text_table_the_search_scans_with_the_same_results(app):
    with app.app_context():
        _add_leads(600)
        db.session.execute(text("DROP TRIGGER sb_leads_search_au"))  # a table no longer kept: not read
        db.session.commit()
        queries._full_text.pop(db.engine, None)
        try:
            assert not queries._has_full_text()
            for needle in NEEDLES:
                _check(needle, 20)
        finally:
            queries._full_text.pop(db.engine, None)


@sqlite_only
def test_the_migration_fills_the_table_from_existing_leads_and_its_downgrade_drops_it(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        upgrade_engine(engine)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "-1")
            names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
            assert not {name for name in names if name.startswith("sb_leads_search")}, names
            conn.exec_driver_sql(
                "INSERT INTO sb_leads (email, email_normalized, first_name, last_name, created_at) "
                "VALUES ('Old@Example.com', 'old@example.com', 'Olga', 'Before', '2026-01-01 00:00:00')")
        assert "Upgraded" in upgrade_engine(engine)
        with engine.connect() as conn:
            hits = conn.exec_driver_sql(
                "SELECT rowid FROM sb_leads_search WHERE sb_leads_search MATCH '\"olga bef\"'").scalars().all()
            assert hits == [1]
    finally:
        engine.dispose()

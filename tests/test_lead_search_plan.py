"""The agents' substring lead search on PostgreSQL reads a bounded window of the newest leads, then goes
through the trigram indexes (pg_trgm), so a part of a name or an email does not read every lead. Checked on
the queries the desk runs, with EXPLAIN. (SQLite's full-text table: tests/test_lead_search.py.)"""
from __future__ import annotations

import pytest
from sqlalchemy import event, text

from plugin.db import db
from plugin.tickets import queries
from tests.conftest import PG_URL


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (SQLite reads its full-text table: tests/test_lead_search.py)")
def test_a_substring_search_uses_the_trigram_indexes(app):
    with app.app_context():
        db.session.execute(text(
            "INSERT INTO sb_leads (email, email_normalized, first_name, last_name, created_at) "
            "SELECT 'u'||g||'@example.com', 'u'||g||'@example.com', 'Ann'||g, 'Lee'||g, now() "
            "FROM generate_series(1, 3000) g"))
        db.session.commit()
        engine = db.engine
        statements: list = []

        def keep(conn, cursor, statement, parameters, context, executemany):
            if "LIKE" in statement.upper() and "sb_leads" in statement:
                statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", keep)
        try:
            # Lead 1234 is older than the window of the newest leads (500 for a page of 20).
            found = queries._leads_containing("ann1234", 20)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert [lead.email for lead in found] == ["u1234@example.com"]
        assert len(statements) == 2, statements
        (window, window_parameters), (statement, parameters) = statements
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE sb_leads")
            first = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + window, window_parameters))
            # The window reads at most its newest leads, by the primary key.
            assert "Index Scan Backward using pk_sb_leads" in first and "Limit" in first, first
            # Can the trigram indexes answer the second? (On 3,000 rows the planner would rather scan; at
            # 100,000 leads it takes the bitmap on its own, docs/performance.md.) Ordered by id + 0, the
            # primary key cannot give the order, so it is not walked backwards over every lead.
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        assert "ix_sb_leads_name_trgm" in plan and "ix_sb_leads_email_trgm" in plan, plan

"""The agents' substring lead search on PostgreSQL goes through the trigram indexes (pg_trgm), so a part
of a name or an email does not read every lead. Checked on the query the desk runs, with EXPLAIN."""
from __future__ import annotations

import pytest
from sqlalchemy import event, text

from plugin.db import db
from plugin.tickets import queries
from tests.conftest import PG_URL


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (SQLite has no trigram index; its search scans)")
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
            found = queries._leads_containing("ann2999", 20)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert [lead.email for lead in found] == ["u2999@example.com"]
        assert statements, "the search ran no LIKE query"
        statement, parameters = statements[0]
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE sb_leads")
            # Can the trigram indexes answer it? (On 3,000 rows the planner would rather walk the email
            # index in order and filter; at 100,000 leads it takes the bitmap on its own, docs/performance.md.)
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_indexscan = off")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        assert "ix_sb_leads_name_trgm" in plan and "ix_sb_leads_email_trgm" in plan, plan

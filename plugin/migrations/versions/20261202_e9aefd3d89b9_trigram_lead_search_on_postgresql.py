"""trigram indexes for the agents' substring lead search, on PostgreSQL only

The desk's lead search matches a part of an email or a name (``LIKE '%ann%'``), which no B-tree
index answers: on 100,000 leads a rare term read every lead. pg_trgm's GIN indexes answer it
(plugin.tickets.queries). SQLite keeps the scan. When the database user may not create the
extension (it is "trusted" from PostgreSQL 13, so a database owner may), the indexes are left out
with a warning and search still works, by scanning; create the extension as a superuser and run
``flask self-billing init-db`` again after downgrading this revision, or create them by hand.
The indexes are named ``*_trgm`` and left out of the models' drift check (plugin.schema).

Revision ID: e9aefd3d89b9
Revises: 31730074193d
Create Date: 2026-12-02 17:20:00
"""
from __future__ import annotations

import logging
from typing import Sequence, Union

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = 'e9aefd3d89b9'
down_revision: Union[str, None] = '31730074193d'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

log = logging.getLogger("plugin.migrations")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        log.warning("Self-Billing: the pg_trgm extension could not be created (%s); the agents' substring lead "
                    "search scans the leads instead of using trigram indexes.", exc.orig)
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_sb_leads_email_trgm ON sb_leads USING gin (email_normalized gin_trgm_ops)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_sb_leads_name_trgm ON sb_leads "
               "USING gin ((lower(first_name || ' ' || last_name)) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_sb_leads_name_trgm")
    op.execute("DROP INDEX IF EXISTS ix_sb_leads_email_trgm")

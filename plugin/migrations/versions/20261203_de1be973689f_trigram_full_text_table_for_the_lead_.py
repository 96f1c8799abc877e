"""trigram full-text table for the agents' substring lead search, on SQLite only

The desk's lead search matches a part of an email or a name (``LIKE '%ann%'``), newest lead first.
On SQLite no B-tree index answers that: a rare term read every lead. An FTS5 table with the
``trigram`` tokenizer (SQLite 3.34 or later), ``sb_leads_search``, holds each lead's
``email_normalized`` and ``lower(first_name || ' ' || last_name)`` under the lead's id as rowid;
triggers on ``sb_leads`` keep it in step, and this revision fills it from the leads already there.
``plugin.tickets.queries`` reads it newest first (``ORDER BY rowid DESC LIMIT n`` stops early for a
common term and a rare one alike) and checks each hit with the same ``LIKE`` as before, so the
matches are exactly those of the plain search.

When the SQLite library has no FTS5 or no trigram tokenizer, nothing is created, with a warning, and
the search scans as before (the query checks once per engine whether the table is there). PostgreSQL
has its pg_trgm indexes (revision e9aefd3d89b9); there this revision does nothing. The table, its
shadow tables (``sb_leads_search_*``) and the triggers are not in the models and are left out of
the drift check (plugin.schema).

Revision ID: de1be973689f
Revises: cd8d5bcd5c87
Create Date: 2026-12-03 08:40:03.107339
"""
from __future__ import annotations

import logging
from typing import Sequence, Union

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = 'de1be973689f'
down_revision: Union[str, None] = 'cd8d5bcd5c87'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

log = logging.getLogger("plugin.migrations")

TABLE = "sb_leads_search"
NAME = "lower(first_name || ' ' || last_name)"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    try:
        # A statement that fails on SQLite leaves nothing behind and does not end the transaction.
        bind.exec_driver_sql(f"CREATE VIRTUAL TABLE {TABLE} USING fts5(email, name, tokenize='trigram')")
    except DBAPIError as exc:
        log.warning("Self-Billing: SQLite %s has no FTS5 trigram tokenizer (%s; 3.34 or later has it); the "
                    "agents' substring lead search scans the leads instead.",
                    bind.exec_driver_sql("SELECT sqlite_version()").scalar(), exc.orig)
        return
    bind.exec_driver_sql(
        f"CREATE TRIGGER {TABLE}_ai AFTER INSERT ON sb_leads BEGIN "
        f"INSERT INTO {TABLE} (rowid, email, name) VALUES (new.id, new.email_normalized, "
        f"lower(new.first_name || ' ' || new.last_name)); END")
    bind.exec_driver_sql(
        f"CREATE TRIGGER {TABLE}_ad AFTER DELETE ON sb_leads BEGIN "
        f"DELETE FROM {TABLE} WHERE rowid = old.id; END")
    bind.exec_driver_sql(
        f"CREATE TRIGGER {TABLE}_au AFTER UPDATE OF id, email_normalized, first_name, last_name ON sb_leads BEGIN "
        f"DELETE FROM {TABLE} WHERE rowid = old.id; "
        f"INSERT INTO {TABLE} (rowid, email, name) VALUES (new.id, new.email_normalized, "
        f"lower(new.first_name || ' ' || new.last_name)); END")
    bind.exec_driver_sql(f"INSERT INTO {TABLE} (rowid, email, name) SELECT id, email_normalized, {NAME} FROM sb_leads")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for trigger in ("ai", "ad", "au"):
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TABLE}_{trigger}")
    bind.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")

"""Alembic environment of Self-Billing.

Never run by the ``alembic`` command line: :mod:`plugin.schema` builds the
Alembic ``Config`` in code and hands over an open connection in
``config.attributes["connection"]`` (Alembic's "sharing a connection" recipe,
as Flask-Migrate does for a host's own schema). The options (own version table
``sb_alembic_version``, only ``sb_`` tables compared, batch mode for SQLite)
live in :func:`plugin.schema.migration_options`, shared with the drift check.
"""
from __future__ import annotations

from alembic import context

from plugin.schema import migration_options

if context.is_offline_mode():
    raise RuntimeError("Self-Billing migrations have no offline (SQL script) mode; use `flask self-billing init-db`.")

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError(
        "Self-Billing migrations run through `flask self-billing init-db` (plugin.schema.init_db), "
        "not the alembic command line."
    )
context.configure(**migration_options(_connection))
with context.begin_transaction():
    context.run_migrations()

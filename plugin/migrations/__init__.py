"""The plugin's Alembic migrations (``env.py``, ``script.py.mako``, ``versions/``).

Run through :func:`plugin.schema.init_db` (``flask self-billing init-db``); new
revisions come from ``scripts/make-migration "message"``. The version table is
``sb_alembic_version``, so a host's own Alembic history is never touched.
"""

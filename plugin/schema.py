"""Creating and upgrading the plugin's schema with Alembic.

:func:`init_db` (``flask self-billing init-db``) upgrades the app's database to
the newest revision in ``plugin/migrations/versions``. It is safe to run twice
and works on SQLite and PostgreSQL. The plugin keeps its own version table,
``sb_alembic_version``, so a host that runs its own Alembic (Flask-Migrate or
not) keeps its history apart from ours. Alembic is driven in code, the way
Flask-Migrate drives it, but Flask-Migrate itself is not used: it keeps one
``Migrate`` per app (``app.extensions["migrate"]``), and that one is the host's.

A database whose ``sb_`` tables were made by ``create_all`` before the plugin
had migrations has no version table. :func:`init_db` adopts it: when it already
matches the models it is stamped at the newest revision; when it holds the
first revision's tables it is stamped there and upgraded; when only whole
tables are missing they are created and it is stamped. Anything else stops
with an error that lists the differences, and nothing is changed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import ops
from alembic.script import ScriptDirectory
from sqlalchemy import ForeignKeyConstraint, create_engine, inspect
from sqlalchemy.engine import Connection, Engine

from . import models
from .db import Base, db
from .invoices.issuing import issue_missing
from .ledger.settings import create_settings_row
from .tickets.queries import LEAD_SEARCH_TABLE

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "sb_alembic_version"


class SchemaError(RuntimeError):
    """The database's plugin tables cannot be brought to the current schema automatically."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for the plugin's migrations, built in code (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    # Revision files named by date, so the history reads in order.
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _modelled_table(name: str | None) -> bool:
    # Not SQLite's full-text table of the lead search nor its shadow tables (``sb_leads_search_data``...),
    # made with their triggers by their migration (plugin.tickets.queries): they are not in the models.
    return bool(name) and name.startswith("sb_") and name != VERSION_TABLE and not name.startswith(LEAD_SEARCH_TABLE)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Only the plugin's own tables are compared; a host's tables are none of our business. The
    PostgreSQL-only trigram search indexes (``*_trgm``) and SQLite's full-text table of the lead
    search (``sb_leads_search*``), each made by its migration, are not in the models."""
    if type_ == "table":
        return _modelled_table(name)
    if type_ == "index":
        return not (name or "").endswith("_trgm")
    return True


def host_include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """For a host's own Alembic ``env.py``: leave Self-Billing's tables out of the host's autogenerate.

    The plugin's tables are not on the host's metadata, so without this the
    host's ``flask db migrate`` would write ``drop_table`` for each of them::

        context.configure(..., include_name=plugin.schema.host_include_name)
    """
    if type_ == "table":
        return not (name or "").startswith("sb_")
    return True


def _defer_cyclic_foreign_keys(context: Any, revision: Any, directives: list[Any]) -> None:
    """Autogenerate hook: create ``use_alter`` foreign keys after every table of the revision exists.

    Requests and tickets point at each other. SQLAlchemy leaves a ``use_alter``
    foreign key out of ``CREATE TABLE`` on PostgreSQL, and Alembic's
    ``create_table`` would then never add it; so such keys are taken out of the
    table and added at the end of the revision as a batch operation (an
    ``ALTER TABLE`` on PostgreSQL, a table copy on SQLite). Downgrades drop them first.
    """
    script = directives[0]
    for upgrade_ops in script.upgrade_ops_list:
        deferred: dict[str, list[Any]] = {}
        for op in upgrade_ops.ops:
            if not isinstance(op, ops.CreateTableOp):
                continue
            keys = [c for c in op.columns if isinstance(c, ForeignKeyConstraint) and c.use_alter]
            if keys:
                op.columns = [c for c in op.columns if not any(c is k for k in keys)]
                deferred.setdefault(op.table_name, []).extend(
                    ops.CreateForeignKeyOp.from_constraint(key) for key in keys
                )
        for table_name, key_ops in deferred.items():
            upgrade_ops.ops.append(ops.ModifyTableOps(table_name, key_ops))
    if any(script.upgrade_ops_list):
        script.downgrade_ops_list[:] = [u.reverse() for u in script.upgrade_ops_list]


def migration_options(connection: Connection) -> dict[str, Any]:
    """Options of Alembic's ``context.configure`` shared by upgrades, autogenerate and the drift check."""
    return {
        "connection": connection,
        "target_metadata": Base.metadata,
        "version_table": VERSION_TABLE,
        "include_name": include_name,
        # SQLite cannot ALTER most things: batch operations copy the table there;
        # on PostgreSQL they are plain ALTERs.
        "render_as_batch": True,
        "compare_type": True,
        "process_revision_directives": _defer_cyclic_foreign_keys,
    }


def head_revision() -> str | None:
    """The newest revision of the plugin's migrations."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _plugin_tables(connection: Connection) -> set[str]:
    return {name for name in inspect(connection).get_table_names() if _modelled_table(name)}


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when it has no version table yet."""
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def schema_differences(connection: Connection) -> list[Any]:
    """What Alembic's autogenerate sees between the database and the models (empty when in step)."""
    options = migration_options(connection)
    del options["connection"]
    context = MigrationContext.configure(connection, opts=options)
    return compare_metadata(context, Base.metadata)


def describe_differences(differences: list[Any]) -> list[str]:
    """One readable line per difference, e.g. ``add_column sb_leads.phone``."""
    return [_describe(diff) for diff in differences]


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(item) for item in diff)
    kind, *rest = diff
    names = []
    for item in rest:
        name = getattr(item, "name", None)
        if name is not None:
            table = getattr(getattr(item, "table", None), "name", None)
            names.append(f"{table}.{name}" if table and kind.endswith("column") else str(name))
        elif isinstance(item, str):
            names.append(item)
    return f"{kind} {' '.join(names)}".strip()


def _first_revision_tables() -> dict[str, set[str]]:
    """Table and column names the first revision creates, read off a scratch in-memory SQLite."""
    script = ScriptDirectory.from_config(alembic_config())
    first = script.get_base()
    if first is None:
        return {}
    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as connection:
            command.upgrade(alembic_config(connection), first)
            inspector = inspect(connection)
            return {
                name: {column["name"] for column in inspector.get_columns(name)}
                for name in _plugin_tables(connection)
            }
    finally:
        scratch.dispose()


def _adopt_unversioned(connection: Connection, config: Config) -> str:
    """Stamp a database whose plugin tables came from ``create_all``; see the module's doc."""
    differences = schema_differences(connection)
    if not differences:
        command.stamp(config, "head")
        return "Found Self-Billing tables made without migrations; they match the models, stamped at the newest revision."

    first = _first_revision_tables()
    inspector = inspect(connection)
    existing = {name: {c["name"] for c in inspector.get_columns(name)} for name in _plugin_tables(connection)}
    if first and all(name in existing and columns <= existing[name] for name, columns in first.items()):
        first_revision = ScriptDirectory.from_config(config).get_base()
        command.stamp(config, first_revision)
        command.upgrade(config, "head")
        return f"Found Self-Billing tables made without migrations; stamped at {first_revision} and upgraded."

    if all(isinstance(d, tuple) and d[0] in ("add_table", "add_index") for d in differences):
        # Alembic hands back copies; create from the models' own tables and indexes.
        missing = [Base.metadata.tables[d[1].name] for d in differences if d[0] == "add_table"]
        Base.metadata.create_all(connection, tables=missing, checkfirst=True)
        for diff in differences:
            if diff[0] == "add_index" and diff[1].table.name not in {t.name for t in missing}:
                table = Base.metadata.tables[diff[1].table.name]
                next(index for index in table.indexes if index.name == diff[1].name).create(connection)
        if schema_differences(connection):  # pragma: no cover - defensive
            raise SchemaError("Could not bring the Self-Billing tables in step with the models.")
        command.stamp(config, "head")
        added = ", ".join(t.name for t in missing) or "indexes"
        return f"Found Self-Billing tables made without migrations; created what was missing ({added}) and stamped."

    listed = "\n  ".join(describe_differences(differences[:20]))
    raise SchemaError(
        "The database has Self-Billing tables made without migrations, and they differ from the models:\n  "
        f"{listed}\nBack up the database, then either drop the sb_ tables and run init-db again, "
        f"or bring them in step by hand and record that with `alembic stamp` on table {VERSION_TABLE}."
    )


def upgrade_engine(engine: Engine) -> str:
    """Upgrade the plugin's schema on ``engine`` to the newest revision; returns what was done."""
    with engine.begin() as connection:
        config = alembic_config(connection)
        before = current_revision(connection)
        if before is None and _plugin_tables(connection):
            return _adopt_unversioned(connection, config)
        head = ScriptDirectory.from_config(config).get_current_head()
        if before == head:
            return f"Self-Billing schema is up to date (revision {head})."
        command.upgrade(config, "head")
        if before is None:
            return f"Created the Self-Billing schema (revision {head})."
        return f"Upgraded the Self-Billing schema from {before} to {head}."


def make_revision(message: str, database_url: str | None = None, reset: bool = False) -> str | None:
    """Autogenerate a revision from the models' difference to the newest revision; returns its path.

    The comparison runs on a scratch SQLite database upgraded to head, unless
    ``database_url`` names another (empty or at head) database. Returns None,
    writing nothing, when the models and migrations are already in step.
    ``reset=True`` first deletes every revision, so one initial revision is
    written again: only before a release, while no database in use has them.
    """
    if reset:
        for old in (MIGRATIONS_DIR / "versions").glob("*.py"):
            old.unlink()

    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(database_url or f"sqlite:///{folder}/scratch.db")
        try:
            upgrade_engine(engine)
            with engine.begin() as connection:
                if not schema_differences(connection):
                    return None
                config = alembic_config(connection)
                script = command.revision(config, message=message, autogenerate=True)
        finally:
            engine.dispose()
    if isinstance(script, list):  # pragma: no cover - only with several heads
        script = script[0]
    return script.path if script is not None else None


def init_db() -> str:
    """Create or upgrade the plugin's tables on the current app's database, the merchant's
    settings row (with the defaults) if it is missing, and an invoice for every payment that has
    none (oldest first: :func:`plugin.invoices.issuing.issue_missing`). Safe to run twice."""
    db.session.remove()  # nothing of ours may hold a transaction open while the schema changes
    done = upgrade_engine(db.engine)
    with db.engine.begin() as connection:
        if create_settings_row(connection):
            done += " Created the settings row with the defaults (self-service billing off)."
    numbered = issue_missing()
    if numbered:
        done += f" Numbered {numbered} invoice(s) of payments recorded before invoices were numbered."
    return done

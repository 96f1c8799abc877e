"""The schema through migrations: in step with the models, ``init-db`` safe twice, old databases adopted.

Each test runs on a database of its own: a SQLite file, or, when
``SELF_BILLING_TEST_DATABASE_URL`` is set, a fresh PostgreSQL database beside it.
"""
from __future__ import annotations

import itertools
import os

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from plugin import SelfBilling
from plugin.db import Base
from plugin.ledger import service
from plugin.schema import (
    VERSION_TABLE,
    alembic_config,
    describe_differences,
    head_revision,
    schema_differences,
)

PG_URL = os.environ.get("SELF_BILLING_TEST_DATABASE_URL")
_numbers = itertools.count()


@pytest.fixture
def fresh_url(tmp_path):
    """The URL of an empty database of the backend under test."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"sb_schema_test_{os.getpid()}_{next(_numbers)}"
    server = create_engine(make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture
def host(fresh_url):
    """A host app on the empty database, with the plugin mounted and no schema yet."""
    app = Flask("schema_host")
    app.config.update(TESTING=True, SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=fresh_url)
    SelfBilling(app)
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


def init_db(app: Flask):
    return app.test_cli_runner().invoke(args=["self-billing", "init-db"])


def differences(app: Flask) -> list:
    with app.app_context(), app.extensions["sqlalchemy"].engine.connect() as conn:
        return schema_differences(conn)


def revision_in_db(app: Flask) -> list[str]:
    with app.app_context(), app.extensions["sqlalchemy"].engine.connect() as conn:
        return [row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]


def make_lead(app: Flask, email: str = "keep@example.com") -> None:
    with app.app_context():
        service.find_or_create_lead(email, "Kee", "Pe")
        app.extensions["sqlalchemy"].session.commit()


def lead_emails(app: Flask) -> list[str]:
    with app.app_context(), app.extensions["sqlalchemy"].engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT email FROM sb_leads ORDER BY id"))]


def test_migrations_match_the_models(host):
    """Fails when a model or column changed without a revision: run scripts/make-migration "what changed"."""
    assert init_db(host).exit_code == 0
    drift = differences(host)
    assert drift == [], (
        "The models and plugin/migrations differ. Write a revision with "
        "`scripts/make-migration \"what changed\"` (or, before the first release, "
        "`scripts/make-migration --reset \"initial schema\"`) and review it. Differences:\n  "
        + "\n  ".join(describe_differences(drift))
    )


def test_init_db_twice_creates_then_leaves_schema_and_data_alone(host):
    first = init_db(host)
    assert first.exit_code == 0, first.output
    assert "Created the Self-Billing schema" in first.output
    make_lead(host)

    second = init_db(host)

    assert second.exit_code == 0, second.output
    assert "up to date" in second.output
    assert lead_emails(host) == ["keep@example.com"]
    assert revision_in_db(host) == [head_revision()]


def test_database_from_old_create_all_is_stamped_and_keeps_its_data(host):
    with host.app_context():
        Base.metadata.create_all(host.extensions["sqlalchemy"].engine)
    make_lead(host)

    result = init_db(host)

    assert result.exit_code == 0, result.output
    assert "made without migrations" in result.output
    assert revision_in_db(host) == [head_revision()]
    assert lead_emails(host) == ["keep@example.com"]
    assert differences(host) == []
    assert "up to date" in init_db(host).output


def test_old_create_all_missing_a_newer_table_gets_it(host):
    with host.app_context():
        engine = host.extensions["sqlalchemy"].engine
        Base.metadata.create_all(engine)
        Base.metadata.tables["sb_ticket_messages"].drop(engine)
    make_lead(host)

    result = init_db(host)

    assert result.exit_code == 0, result.output
    assert "sb_ticket_messages" in result.output
    assert differences(host) == []
    assert revision_in_db(host) == [head_revision()]
    assert lead_emails(host) == ["keep@example.com"]


def test_old_tables_that_differ_stop_with_an_explanation_and_change_nothing(host):
    with host.app_context():
        engine = host.extensions["sqlalchemy"].engine
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE sb_leads (id INTEGER PRIMARY KEY, email VARCHAR(320))"))

    result = init_db(host)

    assert result.exit_code != 0
    assert "differ from the models" in result.output
    assert "Back up the database" in result.output
    assert "Traceback" not in result.output
    with host.app_context():
        tables = set(inspect(host.extensions["sqlalchemy"].engine).get_table_names())
    assert tables == {"sb_leads"}


def test_host_alembic_history_and_tables_are_left_alone(host):
    with host.app_context():
        with host.extensions["sqlalchemy"].engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('host_rev_1')"))
            conn.execute(text("CREATE TABLE tickets (id INTEGER PRIMARY KEY, subject VARCHAR(200))"))

    assert init_db(host).exit_code == 0

    with host.app_context(), host.extensions["sqlalchemy"].engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))] == ["host_rev_1"]
        assert "tickets" in inspect(conn).get_table_names()
    assert revision_in_db(host) == [head_revision()]
    assert differences(host) == []


def test_migrations_downgrade_to_nothing_and_upgrade_again(host):
    assert init_db(host).exit_code == 0
    with host.app_context():
        engine = host.extensions["sqlalchemy"].engine
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        with engine.connect() as conn:
            assert [t for t in inspect(conn).get_table_names() if t != VERSION_TABLE] == []

    assert "Created the Self-Billing schema" in init_db(host).output
    assert differences(host) == []


def test_a_host_alembic_autogenerate_leaves_plugin_tables_out(host):
    """A host's own migrations, with host_include_name, see neither our tables nor our version table."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from plugin.schema import host_include_name

    assert init_db(host).exit_code == 0
    host_metadata = MetaData()
    Table("tickets", host_metadata, Column("id", Integer, primary_key=True), Column("subject", String(200)))
    with host.app_context():
        engine = host.extensions["sqlalchemy"].engine
        host_metadata.create_all(engine)
        with engine.connect() as conn:
            unfiltered = compare_metadata(MigrationContext.configure(conn), host_metadata)
            filtered = compare_metadata(
                MigrationContext.configure(conn, opts={"include_name": host_include_name}), host_metadata
            )
    assert any(diff[0] == "remove_table" and diff[1].name.startswith("sb_") for diff in unfiltered)
    assert filtered == []

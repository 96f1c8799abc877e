"""Which Flask-SQLAlchemy instance the plugin uses, whatever order the host sets things up in.

Flask-SQLAlchemy allows one instance per app, so the plugin never creates one the host
could still register. Three cases, decided in :func:`bind`:

- the host passes its instance (``init_app(app, db=db)``): it is used, and must be
  initialised on the app before the first request or CLI command;
- the host's instance is already registered: it is used;
- neither: the plugin waits until the app's first app context (the first request,
  CLI command or ``with app.app_context()``). If by then the host has called its own
  ``db.init_app(app)``, that instance is used; otherwise the plugin creates one from
  ``SQLALCHEMY_DATABASE_URI`` and tunes only that engine (WAL, busy timeout and
  foreign keys on SQLite). A host engine's settings are never touched.

``on_ready(sqlalchemy)`` runs once the instance is known (the after-commit email hook).
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Flask, appcontext_pushed
from sqlalchemy import event

OnReady = Callable[[Any], None]


def tune_sqlite(engine: Any) -> None:
    """WAL, a busy timeout and foreign keys on SQLite, so concurrent writers wait instead of failing."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()


def bind(app: Flask, db: Any, state: Any, on_ready: OnReady) -> None:
    """Use the host's instance (given or registered), or create the plugin's own at the first app context."""
    state.host_db = db
    state.own_db = False
    if db is not None:
        on_ready(db)
        return
    if "sqlalchemy" in app.extensions:
        on_ready(app.extensions["sqlalchemy"])
        return
    if not app.config.get("SQLALCHEMY_DATABASE_URI") and not app.config.get("SQLALCHEMY_BINDS"):
        raise RuntimeError(
            "Self-Billing needs a database: set SQLALCHEMY_DATABASE_URI "
            "(e.g. sqlite:///billing.db or postgresql+psycopg://user@host/db). If your app has its "
            "own Flask-SQLAlchemy, initialise it on the app too (before or after Self-Billing), "
            "or pass it: init_app(app, db=db)."
        )

    def on_first_context(sender: Flask, **_kwargs: Any) -> None:
        appcontext_pushed.disconnect(on_first_context, sender)
        if "sqlalchemy" not in sender.extensions:  # the host registered none: the plugin's own
            from flask_sqlalchemy import SQLAlchemy

            SQLAlchemy(sender)
            state.own_db = True
            tune_sqlite(sender.extensions["sqlalchemy"].engine)
        on_ready(sender.extensions["sqlalchemy"])

    appcontext_pushed.connect(on_first_context, app, weak=False)

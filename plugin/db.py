"""Database access for Self-Billing.

The plugin's models are plain SQLAlchemy 2 declarative classes on their own
``Base`` (own metadata, own table prefix ``sb_``), so they work with whichever
Flask-SQLAlchemy instance the host application already has. Flask-SQLAlchemy
allows one instance per app; when the host has none, :class:`plugin.SelfBilling`
creates one. Code inside the plugin always reaches the session through
:data:`db`, a proxy to the instance registered on the current app.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import ARRAY, DateTime, Integer, MetaData, TypeDecorator, any_, bindparam
from sqlalchemy.orm import DeclarativeBase
from werkzeug.local import LocalProxy

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Self-Billing model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend.

    SQLite keeps no offset; PostgreSQL keeps ``timestamptz``. Values are stored
    in UTC and always come back aware, so comparisons never mix naive and aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def id_in(column: Any, ids: Iterable[int]) -> Any:
    """``column IN (ids)`` for a page of row ids. On PostgreSQL ``column = ANY(:ids)``, one array
    parameter: a list of 50 parameters, each with its cast, takes PostgreSQL longer to parse and plan
    than the query takes to run, and every read-only request plans its statements afresh."""
    ids = list(ids)
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def utcnow() -> datetime:
    """The current time, aware, in UTC (microseconds dropped for stable round trips)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def _current_sqlalchemy() -> Any:
    try:
        return current_app.extensions["sqlalchemy"]
    except KeyError:
        state = current_app.extensions.get("self_billing")
        if state is not None and state.host_db is not None:
            raise RuntimeError(
                "Self-Billing was given your Flask-SQLAlchemy instance (init_app(app, db=db)), but it is not "
                "initialised on this app yet: call db.init_app(app) during app setup."
            ) from None
        raise RuntimeError(
            "Self-Billing needs Flask-SQLAlchemy on the app: call SelfBilling.init_app(app) first."
        ) from None


#: The Flask-SQLAlchemy instance of the current app (the host's or the plugin's own).
db: Any = LocalProxy(_current_sqlalchemy)

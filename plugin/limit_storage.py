"""Rate-limit counters in the app's own database: one count for every worker and machine.

Flask-Limiter keeps its counters in a ``limits`` storage. ``memory://`` counts per process, so
four gunicorn workers allowed four times the configured failed logins. This storage (scheme
``self-billing-db://``, the plugin's default ``SELF_BILLING_RATELIMIT_STORAGE_URI``) keeps them in
the table ``sb_rate_limits`` of the database the app already has, which every worker and machine
shares: no extra service. Each hit is one atomic ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` on its own short transaction (SQLite 3.35+ and PostgreSQL), so concurrent hits are
all counted. It serves Flask-Limiter's default fixed-window strategy; ``tick`` deletes expired rows.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from limits.storage import Storage
from sqlalchemy import BigInteger, String, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, db
from .tokens import digest

SCHEME = "self-billing-db"


class RateLimitCounter(Base):
    """One Flask-Limiter counter: its key, its count and when its window ends."""

    __tablename__ = "sb_rate_limits"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    #: When the window ends, in milliseconds since the epoch.
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _column_key(key: str) -> str:
    """The key as stored: Flask-Limiter's own, or for one too long for the column (an email of 320
    characters), its start and SHA-256."""
    if len(key) <= 255:
        return key
    return f"{key[:190]}#{digest(key)}"


def storage_settings(app: Any) -> tuple[str, dict[str, Any]]:
    """``(storage_uri, storage_options)`` for a Flask-Limiter of the plugin on ``app``."""
    uri = app.config.get("SELF_BILLING_RATELIMIT_STORAGE_URI") or f"{SCHEME}://"
    if uri.startswith(f"{SCHEME}://"):
        return uri, {"engine": lambda: db.engine}
    return uri, {}


class DatabaseStorage(Storage):
    """A ``limits`` storage on a SQLAlchemy engine (given as ``engine=<callable returning it>``)."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *,
                 engine: Callable[[], Engine] | None = None, **options: Any) -> None:
        if engine is None:
            raise ValueError(f"{SCHEME}:// needs storage_options={{'engine': <callable returning an engine>}}")
        self._engine = engine
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def _upsert(self, engine: Engine) -> Any:
        return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(RateLimitCounter)

    def incr(self, key: str, expiry: float, amount: int = 1, *, elastic_expiry: bool = False) -> int:
        """Add ``amount`` to the counter; its window ends ``expiry`` seconds after the first hit.

        ``limits`` 5 calls ``incr(key, expiry, amount=...)``; ``limits`` up to 4 call
        ``incr(key, expiry, elastic_expiry=..., amount=...)``, where ``elastic_expiry=True`` (the
        fixed-window-elastic-expiry strategy) moves the window's end on every hit.
        """
        engine = self._engine()
        now = _now_ms()
        ends = now + int(expiry * 1000)
        table = RateLimitCounter.__table__
        expired = table.c.expires_at_ms <= now
        statement = self._upsert(engine).values(key=_column_key(key), count=amount, expires_at_ms=ends)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"count": case((expired, amount), else_=table.c.count + amount),
                  "expires_at_ms": ends if elastic_expiry else case((expired, ends), else_=table.c.expires_at_ms)},
        ).returning(table.c.count)
        with engine.begin() as connection:
            return int(connection.execute(statement).scalar_one())

    def _row(self, key: str) -> tuple[int, int] | None:
        with self._engine().connect() as connection:
            row = connection.execute(select(RateLimitCounter.count, RateLimitCounter.expires_at_ms)
                                     .where(RateLimitCounter.key == _column_key(key))).first()
        if row is None or row.expires_at_ms <= _now_ms():
            return None
        return int(row.count), int(row.expires_at_ms)

    def get(self, key: str) -> int:
        row = self._row(key)
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row[1] / 1000 if row else time.time()

    def check(self) -> bool:
        try:
            with self._engine().connect() as connection:
                connection.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self._engine().begin() as connection:
            return connection.execute(delete(RateLimitCounter)).rowcount

    def clear(self, key: str) -> None:
        with self._engine().begin() as connection:
            connection.execute(delete(RateLimitCounter).where(RateLimitCounter.key == _column_key(key)))


def prune_counters(engine: Engine | None = None) -> int:
    """Delete counters whose window has ended (by the clock, which their windows are set by); how many.

    ``engine`` defaults to the app's (``db.engine``).
    """
    with (engine or db.engine).begin() as connection:
        return connection.execute(delete(RateLimitCounter).where(RateLimitCounter.expires_at_ms <= _now_ms())).rowcount

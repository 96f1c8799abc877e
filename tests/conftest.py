"""Shared fixtures: an app on a fresh database (SQLite by default, PostgreSQL when
``SELF_BILLING_TEST_DATABASE_URL`` is set), clients, and small action helpers.

``make_app(**config)`` builds another app on the same database with other config.
"""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from plugin import SelfBilling
from plugin.db import Base
from plugin.ledger import service
from plugin.ledger.schemas import OrderIn, PaymentIn, PricePointIn, SettingsIn

PG_URL = os.environ.get("SELF_BILLING_TEST_DATABASE_URL")
ADMIN_TOKEN = "test-admin-token"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def _migrations_behind(engine) -> bool:
    """True while models changed since the newest revision (test_schema.py fails then).

    The rest of the suite then runs on a ``create_all`` schema, so one missing
    revision shows as one failing test, not as every test failing.
    """
    from plugin.schema import schema_differences

    with engine.connect() as conn:
        return bool(schema_differences(conn))


@pytest.fixture(scope="session")
def _pg_schema():
    """On PostgreSQL: build the schema once per run through the migrations; tests truncate between them."""
    if not PG_URL:
        yield None
        return
    from sqlalchemy import inspect

    from plugin.schema import upgrade_engine

    engine = create_engine(PG_URL)

    def drop_ours() -> None:  # start clean: drop what an earlier run left, ours only
        with engine.begin() as conn:
            leftovers = [name for name in inspect(conn).get_table_names() if name.startswith("sb_")]
            if leftovers:
                conn.execute(text(f"DROP TABLE {', '.join(leftovers)} CASCADE"))

    drop_ours()
    upgrade_engine(engine)
    if _migrations_behind(engine):
        drop_ours()
        Base.metadata.create_all(engine)
    engine.dispose()
    yield PG_URL


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> str | None:
    """On SQLite: a database built once per run through the migrations; each test gets a copy."""
    if PG_URL:
        return None
    from plugin.schema import upgrade_engine

    path = tmp_path_factory.mktemp("schema") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade_engine(engine)
    behind = _migrations_behind(engine)
    engine.dispose()
    if behind:
        path.unlink()
        engine = create_engine(f"sqlite:///{path}")
        Base.metadata.create_all(engine)
        engine.dispose()
    return str(path)


def empty_database(pg_url: str | None, sqlite_template: str | None, sqlite_path: Path) -> str:
    """A database with the schema and no rows: PostgreSQL's tables emptied, or a copy of the SQLite template."""
    if pg_url:
        engine = create_engine(pg_url)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return pg_url
    shutil.copyfile(sqlite_template, sqlite_path)
    return f"sqlite:///{sqlite_path}"


@pytest.fixture
def database_url(tmp_path, _pg_schema, _sqlite_template) -> str:
    return empty_database(_pg_schema, _sqlite_template, tmp_path / "billing.db")


@pytest.fixture
def make_app(database_url, tmp_path) -> Callable[..., Flask]:
    apps: list[Flask] = []

    def _make(*, agent_loader: Callable[[], str | None] | None = None, base_template: str | None = None,
              **config: Any) -> Flask:
        app = Flask("test_host", instance_path=str(tmp_path / "instance"))
        app.config.update(
            TESTING=True,
            SECRET_KEY="test-secret",
            SQLALCHEMY_DATABASE_URI=database_url,
            SELF_BILLING_ADMIN_TOKEN=ADMIN_TOKEN,
            MAIL_SUPPRESS_SEND=True,
        )
        app.config.update(config)
        SelfBilling(app, agent_loader=agent_loader, base_template=base_template)
        with app.app_context():
            from plugin.schema import init_db

            if not PG_URL:
                init_db()
        apps.append(app)
        return app

    yield _make
    for app in apps:
        with app.app_context():
            ext = app.extensions["sqlalchemy"]
            ext.session.remove()
            ext.engine.dispose()


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Ledger:
    """Test data through the merchant's Python API."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def settings(self, **values: Any) -> None:
        with self.app.app_context():
            service.update_settings(SettingsIn.model_validate(values))

    def price(self, code: str = "pro-monthly", **values: Any) -> None:
        body = {"product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month",
                "interval_count": 1, "cancellation": "instant", "refund_window_days": 30}
        body.update(values)
        with self.app.app_context():
            service.upsert_price_point(code, PricePointIn.model_validate(body))

    def order(self, order_id: str, price_point: str = "pro-monthly", email: str = "ann@example.com",
              purchased_at: str = "2026-10-01T10:00:00Z", **values: Any) -> None:
        body = {
            "email": email, "first_name": "Ann", "last_name": "Lee", "price_point": price_point,
            "purchased_at": purchased_at,
            "billing_address": {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield",
                                "region": "IL", "postal_code": "62701", "country": "US"},
            "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12,
                               "exp_year": 2030},
        }
        body.update(values)
        with self.app.app_context():
            service.upsert_order(order_id, OrderIn.model_validate(body))

    def payment(self, order_id: str, payment_id: str, paid_at: str, amount: str | None = None) -> None:
        body: dict[str, Any] = {"payment_id": payment_id, "paid_at": paid_at}
        if amount is not None:
            body["amount"] = amount
        with self.app.app_context():
            service.record_payment(order_id, PaymentIn.model_validate(body))


@pytest.fixture
def ledger(app) -> Ledger:
    return Ledger(app)


class Customer:
    """A customer on the portal JSON API: logs in, then sends the session cookie and ``X-CSRFToken``."""

    def __init__(self, client: Any, prefix: str = "/billing/api/portal") -> None:
        self.client = client
        self.prefix = prefix
        self.csrf_token: str | None = None

    def login(self, order_id: str, email: str = "ann@example.com") -> Any:
        answer = self.client.post(f"{self.prefix}/login", json={"order_id": order_id, "email": email})
        if answer.status_code == 200:
            self.csrf_token = answer.get_json()["csrf_token"]
        return answer

    def _headers(self, kwargs: dict[str, Any]) -> dict[str, str]:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.csrf_token:
            headers.setdefault("X-CSRFToken", self.csrf_token)
        return headers

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(self.prefix + path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post(self.prefix + path, json=json if json is not None else {},
                                headers=self._headers(kwargs), **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.put(self.prefix + path, json=json, headers=self._headers(kwargs), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.client.delete(self.prefix + path, headers=self._headers(kwargs), **kwargs)


@pytest.fixture
def customer(client) -> Customer:
    return Customer(client)

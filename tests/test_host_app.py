"""A host helpdesk that no plugin test helper set up: its own Flask-SQLAlchemy (initialised after
the plugin, handed over with ``db=``), Flask-Login for its agents, a global Flask-WTF
``CSRFProtect`` and a Flask-Limiter with default limits (both set up after the plugin), mounted
under a sub-path (``SCRIPT_NAME=/support``, as behind a proxy). Through it the plugin's JSON login,
merchant API, agent API and card flow work; every URL it answers carries the sub-path; the host's
SQLite pragmas, session cookie settings and forms are as they were; the health check is not
throttled by the host's limits.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from jinja2 import DictLoader
from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column
from wtforms import StringField

from plugin import SelfBilling
from tests.conftest import PG_URL, Ledger

flask_login = pytest.importorskip("flask_login", reason="Flask-Login is a test dependency: pip install -e '.[test]'")
Migrate = pytest.importorskip("flask_migrate", reason="Flask-Migrate is a test dependency: pip install -e '.[test]'").Migrate

SUB = "/support"
ADMIN = {"Authorization": "Bearer host-admin-token"}
AGENT_TOKEN = "host-agent-token-0123456789"


class NoteForm(FlaskForm):
    text = StringField("Note")


def build_host(database_url: str, migrations: str) -> tuple[Flask, Any]:
    app = Flask("helpdesk_host")
    app.jinja_loader = DictLoader({"host/layout.html": (
        "<!doctype html><title>{% block title %}{% endblock %} · Host Helpdesk</title>"
        "<nav>Host Helpdesk</nav><main>{% block content %}{% endblock %}</main>")})
    app.config.update(SECRET_KEY="host-secret", SQLALCHEMY_DATABASE_URI=database_url,
                      SELF_BILLING_ADMIN_TOKEN="host-admin-token", MAIL_SUPPRESS_SEND=True,
                      SELF_BILLING_URL_PREFIX="billing")  # no leading slash: normalised
    db = SQLAlchemy()

    class HostNote(db.Model):
        __tablename__ = "host_notes"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str] = mapped_column(String(200))

    login_manager = flask_login.LoginManager()

    class Agent(flask_login.UserMixin):
        def __init__(self, email: str) -> None:
            self.id = email

    @login_manager.request_loader
    def _from_token(req: Any) -> Agent | None:
        return Agent("agent@host.test") if req.headers.get("Authorization") == f"Bearer {AGENT_TOKEN}" else None

    def current_agent() -> str | None:
        user = flask_login.current_user
        return user.id if user and user.is_authenticated else None

    billing = SelfBilling()
    billing.init_app(app, agent_loader=current_agent, base_template="host/layout.html", db=db)  # before the host's own db.init_app
    db.init_app(app)
    login_manager.init_app(app)
    Migrate(app, db, directory=migrations)  # after the plugin: it finds it anyway
    CSRFProtect(app)
    Limiter(get_remote_address, app=app, default_limits=["200 per minute", "5 per second"],
            storage_uri="memory://")
    billing.register_my_orders_tab(app, "/help/my-orders")

    @app.route("/notes", methods=["GET", "POST"])
    def notes() -> Any:
        form = NoteForm()
        if form.validate_on_submit():
            db.session.add(HostNote(text=form.text.data))
            db.session.commit()
            return "saved"
        return f'<form method="post">{form.csrf_token}</form>'

    @app.post("/logout")
    def host_logout() -> str:
        billing.logout_customer()
        session.pop("host_user", None)
        return "bye"

    with app.app_context():
        from plugin.schema import init_db

        db.create_all()
        if not PG_URL:
            init_db()
    return app, db


@pytest.fixture
def host(database_url, tmp_path):
    app, db = build_host(database_url, str(tmp_path / "host-migrations"))
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _get(client: Any, path: str, **kwargs: Any) -> Any:
    return client.get(path, base_url=f"http://localhost{SUB}", **kwargs)


def _send(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    return client.open(path, method=method, base_url=f"http://localhost{SUB}", **kwargs)


def _shop(host: Flask) -> None:
    ledger = Ledger(host)
    ledger.settings(enabled=True, portal="both", cancellation={"mode": "request"}, refunds={"mode": "request"})
    ledger.price("pro-monthly")
    ledger.order("ORD-1", email="ann@example.com", purchased_at="2026-11-20T10:00:00Z")
    ledger.payment("ORD-1", "PAY-1", "2026-11-20T10:00:00Z")


def test_the_plugin_works_inside_a_host_with_csrf_login_limiter_and_a_sub_path(host):
    _shop(host)
    client = host.test_client()
    # The merchant API (bearer token) is not refused by the host's CSRFProtect.
    assert _send(client, "PUT", "/billing/api/admin/settings", json={"enabled": True}, headers=ADMIN).status_code == 200
    # The portal's JSON login, and a card through the sandbox's token endpoint.
    login = _send(client, "POST", "/billing/api/portal/login", json={"order_id": "ORD-1", "email": "ann@example.com"})
    assert login.status_code == 200, login.get_data(as_text=True)
    csrf = login.get_json()["csrf_token"]
    token = _send(client, "POST", "/billing/sandbox/tokens", json={"number": "4242 4242 4242 4242", "exp_month": 12,
                                                                  "exp_year": 2035, "cvc": "123"})
    assert token.status_code == 201, token.get_data(as_text=True)
    card = _send(client, "POST", "/billing/api/portal/purchases/ORD-1/payment-methods",
                 json={"token": token.get_json()["token"]}, headers={"X-CSRFToken": csrf})
    assert card.status_code == 201, card.get_data(as_text=True)
    # Every URL in a My Orders answer carries the sub-path.
    purchases = _get(client, "/billing/api/portal/purchases").get_json()["purchases"]
    urls = [p["invoice_url"] for purchase in purchases for p in purchase["payments"]]
    assert urls and all(url.startswith(f"{SUB}/billing/portal/payments/") for url in urls), urls
    page = _get(client, "/billing/portal/purchases/ORD-1/cards/new").get_data(as_text=True)
    assert f"{SUB}/billing/sandbox/tokens" in page
    # The agent API, with the host's Flask-Login user.
    refund = _send(client, "POST", "/billing/api/agent/payments/PAY-1/refunds", json={"amount": "1.00"},
                   headers={"Authorization": f"Bearer {AGENT_TOKEN}"})
    assert refund.status_code == 200, refund.get_data(as_text=True)
    assert refund.get_json()["purchase"]["payments"][0]["invoice_url"].startswith(f"{SUB}/billing/")


def test_the_hosts_forms_keep_working_across_a_customer_login_and_logout(host):
    _shop(host)
    client = host.test_client()
    form = _get(client, "/notes").get_data(as_text=True)
    host_token = re.search(r'value="([^"]+)"', form).group(1)  # a host form open in another tab
    assert _send(client, "POST", "/billing/api/portal/login",
                 json={"order_id": "ORD-1", "email": "ann@example.com"}).status_code == 200
    assert _send(client, "POST", "/notes", data={"csrf_token": host_token, "text": "after login"}).data == b"saved"
    # The host's own logout ends the customer's My Orders session too (logout_customer()).
    assert _send(client, "POST", "/logout", data={"csrf_token": host_token}).data == b"bye"
    assert _get(client, "/billing/api/portal/purchases").status_code == 401
    assert _send(client, "POST", "/notes", data={"csrf_token": host_token, "text": "after logout"}).data == b"saved"


def test_a_stale_form_on_a_plugin_page_gets_the_plugins_own_message(host):
    _shop(host)
    client = host.test_client()
    answer = _send(client, "POST", "/help/my-orders/login", data={"csrf_token": "stale", "order_id": "ORD-1",
                                                                  "email": "ann@example.com"})
    assert answer.status_code == 400
    assert "My Orders" in answer.get_data(as_text=True) and "The CSRF token is missing" not in answer.get_data(as_text=True)


def test_health_checks_are_not_throttled_by_the_hosts_default_limits(host):
    client = host.test_client()
    answers = [_get(client, "/billing/healthz").status_code for _ in range(12)]
    assert answers == [200] * 12
    assert [_get(client, "/notes").status_code for _ in range(8)].count(429) >= 1  # the host's limit still holds


def test_the_hosts_engine_session_and_cookie_are_left_as_they_were(host):
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    assert host.config.get("SESSION_COOKIE_SAMESITE") is None  # the host chose nothing; nothing was chosen for it
    assert type(host.session_interface).__name__ == "SecureCookieSessionInterface"
    assert not event.contains(Session, "after_commit", __import__(
        "plugin.notifications.after_commit", fromlist=["_after_commit"])._after_commit)
    if PG_URL:
        return
    with host.app_context():
        sa = host.extensions["sqlalchemy"]
        with sa.engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 0
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "delete"


def test_the_hosts_flask_migrate_autogenerate_proposes_nothing_about_our_tables(host, tmp_path, monkeypatch):
    import logging.config

    # The generated env.py calls logging.config.fileConfig(alembic.ini), which disables every logger
    # that exists (the plugin's too) for the rest of the test run: keep the process's logging as it is.
    monkeypatch.setattr(logging.config, "fileConfig", lambda *args, **kwargs: None)
    runner = host.test_cli_runner()
    assert runner.invoke(args=["db", "init"]).exit_code == 0
    with host.app_context():
        host.extensions["sqlalchemy"].drop_all()  # the host's own table is new to its migrations
    result = runner.invoke(args=["db", "migrate", "-m", "host notes"])
    assert result.exit_code == 0, result.output
    [revision] = (tmp_path / "host-migrations" / "versions").glob("*.py")
    script = revision.read_text()
    assert "host_notes" in script  # the host's own change is there
    assert "sb_" not in script, script  # and none about the plugin's tables


def _bare_host(database_url: str, base_template: str | None) -> tuple[Flask, SelfBilling]:
    app = Flask("bare_host")
    app.jinja_loader = DictLoader({"layout.html": "{% block content %}{% endblock %}"})
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=database_url, MAIL_SUPPRESS_SEND=True)
    billing = SelfBilling(app, base_template=base_template)
    return app, billing


def test_mounting_the_tab_fails_at_once_with_a_missing_layout_or_a_taken_address(database_url):
    app, billing = _bare_host(database_url, "no/such/layout.html")
    with pytest.raises(RuntimeError, match="'no/such/layout.html' is not among your app's templates"):
        billing.register_my_orders_tab(app, "/help/my-orders")

    app, billing = _bare_host(database_url, "layout.html")
    app.add_url_rule("/help/my-orders/", "my_own_orders", lambda: "mine")
    with pytest.raises(RuntimeError, match=r"already has a route at /help/my-orders/ \(my_own_orders\)"):
        billing.register_my_orders_tab(app, "/help/my-orders")
    billing.register_my_orders_tab(app, "/account/orders")  # elsewhere it mounts
    assert any(rule.rule == "/account/orders/" for rule in app.url_map.iter_rules())


def test_the_hosts_own_database_is_found_when_it_is_initialised_after_the_plugin(database_url):
    from plugin.notifications import after_commit

    app = Flask("late_db_host")
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=database_url, MAIL_SUPPRESS_SEND=True,
                      SELF_BILLING_ADMIN_TOKEN="host-admin-token")
    SelfBilling(app)  # no db= given, and the host's instance does not exist yet
    db = SQLAlchemy()
    db.init_app(app)  # worked: the plugin created no instance of its own
    assert app.extensions["sqlalchemy"] is db
    with app.app_context():
        assert app.extensions["self_billing"].own_db is False
        assert event_contains(db.session, "after_commit", after_commit._after_commit)
        from plugin.schema import init_db

        if not PG_URL:
            init_db()
            with db.engine.connect() as connection:  # the host's engine, untuned
                assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 0
    client = app.test_client()
    assert client.get("/billing/api/admin/settings", headers=ADMIN).status_code == 200
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_without_a_host_database_the_plugin_creates_and_tunes_its_own(database_url):
    app = Flask("no_db_host")
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=database_url, MAIL_SUPPRESS_SEND=True)
    SelfBilling(app)
    assert "sqlalchemy" not in app.extensions  # nothing yet: the host may still register its own
    with app.app_context():
        sa = app.extensions["sqlalchemy"]
        assert app.extensions["self_billing"].own_db is True
        if not PG_URL:
            with sa.engine.connect() as connection:
                assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        sa.engine.dispose()
    with pytest.raises(RuntimeError, match="needs a database: set SQLALCHEMY_DATABASE_URI"):
        SelfBilling(Flask("nothing"))


def event_contains(target: Any, name: str, fn: Any) -> bool:
    from sqlalchemy import event

    return event.contains(target, name, fn)


def test_a_host_layout_that_prints_a_title_variable_gets_the_pages_title(database_url):
    app = Flask("title_host")
    app.jinja_loader = DictLoader({"layout.html": "<title>{{ title }} | Host</title>{% block content %}{% endblock %}"})
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=database_url, MAIL_SUPPRESS_SEND=True)
    billing = SelfBilling(app, base_template="layout.html")
    billing.register_my_orders_tab(app, "/help/my-orders")
    with app.app_context():
        from plugin.schema import init_db

        if not PG_URL:
            init_db()
    ledger = Ledger(app)
    ledger.settings(enabled=True, portal="both")
    page = app.test_client().get("/help/my-orders/")  # not logged in: the login form
    assert page.status_code == 200
    assert "<title>My Orders – log in | Host</title>" in page.get_data(as_text=True)
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()

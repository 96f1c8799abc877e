"""The demo host helpdesk: configuration, help center, agent desk login, agent loader."""
from __future__ import annotations

import os
import re
import stat

import pytest
from flask import session

from plugin.demo import LAYOUT, create_app
from plugin.demo.agents import SESSION_KEY, load_agent
from plugin.demo.settings import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD

TOKEN = "agent-token-0123456789abcdef"


@pytest.fixture
def demo_config(database_url):
    return {
        "TESTING": True,
        "SECRET_KEY": "demo-test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_SUPPRESS_SEND": True,
        "HELPDESK_AGENT_TOKENS": {TOKEN: DEMO_AGENT_EMAIL},
    }


@pytest.fixture
def demo(demo_config, tmp_path):
    app = create_app(demo_config, instance_path=str(tmp_path / "instance"))
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].session.remove()
        app.extensions["sqlalchemy"].engine.dispose()


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def sign_in(client, email=DEMO_AGENT_EMAIL, password=DEMO_AGENT_PASSWORD, next_url=""):
    page = client.get("/desk/login")
    return client.post("/desk/login", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "email": email, "password": password,
        "next": next_url,
    })


# -- configuration ---------------------------------------------------------------------------


def test_defaults_keep_database_and_generated_secret_in_instance_folder(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("FLASK_")]:
        monkeypatch.delenv(key)
    instance = tmp_path / "instance"

    first = create_app(instance_path=str(instance))
    second = create_app(instance_path=str(instance))

    assert first.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'helpdesk.db'}"
    assert first.config["MAIL_SERVER"] == "localhost" and first.config["MAIL_PORT"] == 25
    assert len(first.config["SECRET_KEY"]) >= 32
    assert second.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    assert stat.S_IMODE((instance / "secret_key").stat().st_mode) == 0o600
    assert first.config["SELF_BILLING_URL_PREFIX"] == "/billing"


def test_environment_overrides_defaults_and_test_config_overrides_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASK_HELPDESK_NAME", "Globex Support")
    monkeypatch.setenv("FLASK_MAIL_PORT", "2525")
    monkeypatch.setenv("FLASK_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("FLASK_HELPDESK_AGENT_TOKENS", '{"env-token-0123456789": "Env@Example.com"}')

    app = create_app({"MAIL_PORT": 587}, instance_path=str(tmp_path / "instance"))

    assert app.config["HELPDESK_NAME"] == "Globex Support"
    assert app.config["MAIL_PORT"] == 587
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert app.config["HELPDESK_AGENT_TOKENS"] == {"env-token-0123456789": "env@example.com"}
    assert not (tmp_path / "instance" / "secret_key").exists()


@pytest.mark.parametrize("config, words", [
    ({"HELPDESK_AGENTS": {"a@example.com": "plain-password"}}, "not a password hash"),
    ({"HELPDESK_AGENTS": ["a@example.com"]}, "JSON object of strings"),
    ({"HELPDESK_AGENT_TOKENS": {"short": "a@example.com"}}, "at least 16 characters"),
])
def test_config_that_cannot_work_fails_fast_with_how_to_fix(demo_config, tmp_path, config, words):
    with pytest.raises(RuntimeError, match=words):
        create_app({**demo_config, **config}, instance_path=str(tmp_path / "instance"))


def test_plugin_is_mounted_through_the_public_api_with_the_helpdesk_layout(demo):
    state = demo.extensions["self_billing"]
    assert state.base_template == LAYOUT
    assert state.agent_loader is load_agent
    assert demo.test_client().get("/billing/healthz").status_code == 200


# -- help center -----------------------------------------------------------------------------


def test_help_center_home_lists_articles_inside_the_layout(demo):
    client = demo.test_client()
    assert client.get("/").headers["Location"].endswith("/help/")
    page = client.get("/help/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'aria-label="Main"' in html
    for label in ("Help Center", "My Orders", "Agent desk"):
        assert f">{label}</a>" in html
    assert "How do I log in to My Orders?" in html
    assert page.headers["X-Frame-Options"] == "DENY"


def test_article_page_and_unknown_article(demo):
    client = demo.test_client()
    page = client.get("/help/articles/download-an-invoice")
    assert page.status_code == 200
    assert "invoice.pdf" in page.get_data(as_text=True)
    assert client.get("/help/articles/nope").status_code == 404


def test_my_orders_tab_renders_in_the_layout(demo):
    # The tab is the plugin's portal (register_my_orders_tab) inside the help center's layout;
    # self-service billing starts disabled, so it says so (403) and shows nothing else.
    page = demo.test_client().get("/help/my-orders", follow_redirects=True)
    html = page.get_data(as_text=True)
    assert page.request.path == "/help/my-orders/"
    assert page.status_code == 403
    assert "Self-service billing is not enabled" in html
    assert 'aria-current="page">My Orders</a>' in html.replace("\n", "").replace("  ", "")


# -- agent desk ------------------------------------------------------------------------------


def test_desk_sends_strangers_to_the_login(demo):
    answer = demo.test_client().get("/desk/")
    assert answer.status_code == 302
    assert "/desk/login" in answer.headers["Location"]


def test_agent_signs_in_sees_the_desk_in_the_layout_and_signs_out(demo):
    client = demo.test_client()
    answer = sign_in(client, email="  Agent@Example.com ")
    assert answer.status_code == 302
    desk = client.get("/desk/", follow_redirects=True)
    html = desk.get_data(as_text=True)
    assert desk.status_code == 200
    assert "Acme Helpdesk" in html and 'aria-label="Main"' in html
    assert DEMO_AGENT_EMAIL in html

    out = client.post("/desk/logout", data={"csrf_token": csrf_from(html)})
    assert out.status_code == 302
    assert client.get("/desk/").status_code == 302


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(demo):
    client = demo.test_client()
    assert sign_in(client, next_url="/desk/leads").headers["Location"] == "/desk/leads"
    other = demo.test_client()
    assert sign_in(other, next_url="//evil.example/x").headers["Location"] == "/desk/"


def test_wrong_password_and_unknown_agent_get_one_message(demo):
    client = demo.test_client()
    for email, password in ((DEMO_AGENT_EMAIL, "wrong"), ("nobody@example.com", DEMO_AGENT_PASSWORD)):
        answer = sign_in(client, email=email, password=password)
        assert answer.status_code == 401
        assert "do not match an agent" in answer.get_data(as_text=True)
    assert client.get("/desk/").status_code == 302


def test_sign_in_without_csrf_token_is_refused(demo):
    client = demo.test_client()
    answer = client.post("/desk/login", data={"email": DEMO_AGENT_EMAIL, "password": DEMO_AGENT_PASSWORD})
    assert answer.status_code == 400
    assert "form expired" in answer.get_data(as_text=True)
    assert client.get("/desk/").status_code == 302


def test_repeated_failed_sign_ins_are_rate_limited(demo_config, tmp_path):
    app = create_app({**demo_config, "HELPDESK_LOGIN_LIMIT": "2 per minute"}, instance_path=str(tmp_path / "i"))
    client = app.test_client()
    assert sign_in(client, password="bad").status_code == 401
    assert sign_in(client, password="bad").status_code == 401
    blocked = sign_in(client)
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.get_data(as_text=True)


def test_agent_loader_takes_a_bearer_token_or_the_desk_session(demo):
    with demo.test_request_context(headers={"Authorization": f"Bearer {TOKEN}"}):
        assert load_agent() == DEMO_AGENT_EMAIL
    with demo.test_request_context(headers={"Authorization": "Bearer wrong-token-0123456789"}):
        session[SESSION_KEY] = DEMO_AGENT_EMAIL
        assert load_agent() is None  # a wrong token is no agent, whatever the cookie says
    with demo.test_request_context():
        assert load_agent() is None
        session[SESSION_KEY] = DEMO_AGENT_EMAIL
        assert load_agent() == DEMO_AGENT_EMAIL
        session[SESSION_KEY] = "removed@example.com"
        assert load_agent() is None


def test_agent_api_accepts_a_helpdesk_token(demo):
    client = demo.test_client()
    assert client.get("/billing/api/agent/leads?q=ann").status_code == 401
    answer = client.get("/billing/api/agent/leads?q=ann", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.get_json()["leads"] == []


def test_hash_password_command_makes_a_hash_the_login_accepts(demo_config, tmp_path):
    app = create_app(demo_config, instance_path=str(tmp_path / "i"))
    result = app.test_cli_runner().invoke(args=["helpdesk", "hash-password"], input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    password_hash = result.output.strip().splitlines()[-1]
    other = create_app({**demo_config, "HELPDESK_AGENTS": {"new@example.com": password_hash}},
                       instance_path=str(tmp_path / "j"))
    assert sign_in(other.test_client(), email="new@example.com", password="s3cret-pass").status_code == 302

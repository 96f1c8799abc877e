"""The demo helpdesk's configuration: safe defaults, and checks once everything is loaded."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.wrappers import Response

#: The desk login of the demo data set (``flask --app plugin.demo self-billing seed-demo`` prints it).
#: Set HELPDESK_AGENTS to replace it.
DEMO_AGENT_EMAIL = "agent@example.com"
DEMO_AGENT_PASSWORD = "demo-agent-pass"
DEMO_AGENTS = {
    DEMO_AGENT_EMAIL: "scrypt:32768:8:1$hh4n549BMgRwxd46$205aeda61877af444acb1b627396dbf33ad8ec0dbda9a2fc3a2118bc"
    "ea548d5978d6c57ea448ebc4a09414fe495a6b203181ddc5cedbe36739f890529ae1331c",
}
SECRET_KEY_FILE = "secret_key"
DATABASE_FILE = "helpdesk.db"


def defaults(app: Flask) -> dict[str, Any]:
    """Safe defaults, applied first (the environment and test config override them)."""
    return {
        # A SQLite file in the instance folder.
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(app.instance_path) / DATABASE_FILE}",
        # Flask-Mail: a local mail server, nothing sent elsewhere by default.
        "MAIL_SERVER": "localhost",
        "MAIL_PORT": 25,
        "MAIL_USE_TLS": False,
        "MAIL_USERNAME": None,
        "MAIL_PASSWORD": None,
        "MAIL_DEFAULT_SENDER": "Acme Helpdesk <billing@example.com>",
        # Session cookie: not readable by scripts, not sent on cross-site POSTs, Secure over https.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SELF_BILLING_SESSION_COOKIE_DEFAULTS": True,
        # The merchant on invoices: the demo's is a made-up but complete one.
        "SELF_BILLING_MERCHANT_NAME": "Acme Software Inc.",
        "SELF_BILLING_MERCHANT_ADDRESS": ["500 Market Street, Suite 400", "San Francisco, CA 94105",
                                          "United States"],
        "SELF_BILLING_MERCHANT_EMAIL": "billing@example.com",
        "SELF_BILLING_MERCHANT_TAX_ID": "EIN 12-3456789",
        # Shown in the header and page titles.
        "HELPDESK_NAME": "Acme Helpdesk",
        # Desk agents: {"email": "werkzeug password hash"}; `flask --app plugin.demo helpdesk hash-password`.
        "HELPDESK_AGENTS": dict(DEMO_AGENTS),
        # Agent API tokens: {"token": "agent@example.com"}; unset = only the desk's own login.
        "HELPDESK_AGENT_TOKENS": {},
        # Failed desk logins allowed per client address (Flask-Limiter string).
        "HELPDESK_LOGIN_LIMIT": "10 per 15 minutes",
        # A Maildir folder the desk's "Sent email" page lists (`helpdesk serve` sets it to its catcher's).
        "HELPDESK_MAILBOX": None,
        # Failed desk logins allowed per agent email, from any address (Flask-Limiter string).
        "HELPDESK_LOGIN_LIMIT_PER_EMAIL": "5 per 15 minutes",
    }


def _instance_secret(instance: Path) -> str:
    """The secret key kept in the instance folder, generated on first use (owner-only file)."""
    path = instance / SECRET_KEY_FILE
    instance.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return key
        raise RuntimeError(f"{path} is empty: delete it and start again to generate a new secret key.") from None
    with os.fdopen(fd, "w") as handle:
        key = secrets.token_hex(32)
        handle.write(key + "\n")
    return key


def _dict_of_strings(app: Flask, key: str) -> dict[str, str]:
    value = app.config.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise RuntimeError(
            f"{key} must be a JSON object of strings, e.g. "
            + ('FLASK_HELPDESK_AGENT_TOKENS=\'{"a-long-random-token": "agent@example.com"}\''
               if key == "HELPDESK_AGENT_TOKENS"
               else 'FLASK_HELPDESK_AGENTS=\'{"agent@example.com": "<hash from: flask --app plugin.demo helpdesk '
                    'hash-password>"}\'')
        )
    return value


def finish(app: Flask) -> None:
    """Fill what depends on the final config and fail fast on a config that cannot work."""
    instance = Path(app.instance_path)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(instance)
    if app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / DATABASE_FILE}":
        instance.mkdir(parents=True, exist_ok=True)

    agents = _dict_of_strings(app, "HELPDESK_AGENTS")
    for email, password_hash in agents.items():
        if "$" not in password_hash:
            raise RuntimeError(
                f"HELPDESK_AGENTS[{email!r}] is not a password hash. Make one with "
                "`flask --app plugin.demo helpdesk hash-password` and put that in the config."
            )
    app.config["HELPDESK_AGENTS"] = {email.strip().lower(): h for email, h in agents.items()}
    tokens = _dict_of_strings(app, "HELPDESK_AGENT_TOKENS")
    for token in tokens:
        if len(token) < 16:
            raise RuntimeError("Every HELPDESK_AGENT_TOKENS token must be at least 16 characters long.")
    app.config["HELPDESK_AGENT_TOKENS"] = {t: email.strip().lower() for t, email in tokens.items()}


def security_headers(response: Response) -> Response:
    """Headers every page of the helpdesk carries (kept where a view set its own)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response

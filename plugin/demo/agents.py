"""Who the agent is: the desk's login session, or a bearer token for the agent API.

:func:`load_agent` is the ``agent_loader`` the demo gives the plugin. It returns
the agent's email from ``Authorization: Bearer <token>`` (looked up in
``HELPDESK_AGENT_TOKENS``) or, without that header, from the desk's session
(set by the login form, for agents still listed in ``HELPDESK_AGENTS``).
"""
from __future__ import annotations

import hmac

import click
from flask import current_app, has_request_context, request, session
from flask.cli import AppGroup
from werkzeug.security import check_password_hash, generate_password_hash

SESSION_KEY = "helpdesk_agent"
#: Compared against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = (
    "scrypt:32768:8:1$3uQkHWbgqPsJgrDB$4a5f3bab4839edbf19e4b692c2ef9c69490e38143a96ad0db0277c946f04e21c48fe7"
    "cafbcf3d2007c82f232f3ffcd78a9ad8ffba8fa02a9893610c4eacc52cc"
)


def verify_agent(email: str, password: str) -> str | None:
    """The agent's normalized email when the password is right, else None."""
    normalized = email.strip().lower()
    stored = current_app.config["HELPDESK_AGENTS"].get(normalized)
    matches = check_password_hash(stored or _DUMMY_HASH, password)
    return normalized if stored and matches else None


def session_agent() -> str | None:
    """The agent signed in to the desk in this browser, if still listed in HELPDESK_AGENTS."""
    if not has_request_context():
        return None
    email = session.get(SESSION_KEY)
    if isinstance(email, str) and email in current_app.config["HELPDESK_AGENTS"]:
        return email
    return None


def token_agent(header: str) -> str | None:
    """The agent a bearer token belongs to (constant-time comparison), else None."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip().encode()
    found = None
    for known, email in current_app.config["HELPDESK_AGENT_TOKENS"].items():
        if hmac.compare_digest(known.encode(), token):
            found = email
    return found


def load_agent() -> str | None:
    """The ``agent_loader`` given to the plugin: a bearer token if sent, else the desk session."""
    if not has_request_context():
        return None
    header = request.headers.get("Authorization")
    if header:
        return token_agent(header)  # a wrong token is no agent, whatever the cookie says
    return session_agent()


def sign_in(email: str) -> None:
    """Start the desk session: a fresh CSRF token, the agent's email; other session keys kept."""
    session.pop("csrf_token", None)
    session[SESSION_KEY] = email


def sign_out() -> None:
    session.pop(SESSION_KEY, None)
    session.pop("csrf_token", None)


helpdesk_cli = AppGroup("helpdesk", help="The demo helpdesk's own commands.")


@helpdesk_cli.command("hash-password")
@click.password_option(help="The agent's password (asked twice when not given).")
def hash_password_command(password: str) -> None:
    """Print a password hash for HELPDESK_AGENTS."""
    click.echo(generate_password_hash(password))

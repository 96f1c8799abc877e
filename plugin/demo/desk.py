"""The agent desk of the demo helpdesk: sign in and out, and where the ticket pages live.

The ticket pages themselves are the plugin's agent desk, mounted at ``/desk/``
with :meth:`plugin.SelfBilling.register_agent_desk` and sent to this login when
no agent is signed in. Failed sign-ins are rate limited per client address
(``HELPDESK_LOGIN_LIMIT``) and per agent email (``HELPDESK_LOGIN_LIMIT_PER_EMAIL``, so guesses
spread over many addresses still stop); past a limit the page answers 429 with ``Retry-After``.

``/desk/mail`` lists the email the demo's mail catcher received (``HELPDESK_MAILBOX``, set by
``flask --app plugin.demo helpdesk serve``), for signed-in agents: every message the customers
would have received, with its subject, recipient, text and HTML.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from plugin.limit_storage import storage_settings
from werkzeug.wrappers import Response

from . import agents, mailbox
from .forms import LoginForm, LogoutForm

bp = Blueprint("helpdesk_desk", __name__)

#: The endpoint of the desk's first page, kept in app.extensions by init_app.
EXTENSION_KEY = "helpdesk_desk"


def desk_home_url() -> str:
    return url_for(current_app.extensions[EXTENSION_KEY]["home"])


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no ``//``) may be the next page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if agents.session_agent() and request.method == "GET":
        return redirect(_safe_next(request.args.get("next")) or desk_home_url())
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    error = None
    status = 200
    if form.validate_on_submit():
        email = agents.verify_agent(form.email.data, form.password.data)
        if email:
            agents.sign_in(email)
            flash(f"Signed in as {email}.", "success")
            return redirect(_safe_next(form.next.data) or desk_home_url())
        g.desk_login_failed = True
        error = "That email and password do not match an agent. Check both and try again."
        status = 401
    elif request.method == "POST":
        if form.csrf_token.errors:
            error = "The form expired or came from another site. It has been renewed: sign in again."
        status = 400
    return render_template("helpdesk/desk_login.html", form=form, error=error), status


@bp.post("/logout")
def logout() -> Response:
    form = LogoutForm()
    if form.validate_on_submit():
        agents.sign_out()
        flash("You are signed out.", "success")
        return redirect(url_for("helpdesk_desk.login"))
    flash("The sign-out form expired. Try again.", "error")
    return redirect(desk_home_url())


def _mailbox_folder() -> Path | None:
    folder = current_app.config.get("HELPDESK_MAILBOX")
    return Path(folder) if folder else None


def _agent_or_login() -> Response | None:
    if agents.session_agent():
        return None
    return redirect(url_for("helpdesk_desk.login", next=request.full_path.rstrip("?")))


@bp.get("/mail")
def mail() -> Any:
    """Every email the demo's catcher received, newest first."""
    if (to_login := _agent_or_login()) is not None:
        return to_login
    folder = _mailbox_folder()
    messages = mailbox.caught_messages(folder) if folder else []
    return render_template("helpdesk/mailbox.html", messages=messages, folder=folder,
                           mail_server=f"{current_app.config.get('MAIL_SERVER')}:{current_app.config.get('MAIL_PORT')}")


@bp.get("/mail/<key>")
def mail_message(key: str) -> Any:
    """One caught email: its headers, its text part and its HTML part."""
    if (to_login := _agent_or_login()) is not None:
        return to_login
    folder = _mailbox_folder()
    message = mailbox.caught_message(folder, key) if folder else None
    if message is None:
        abort(404)
    return render_template("helpdesk/mail_message.html", message=message)


@bp.app_context_processor
def _desk_forms() -> dict[str, Any]:
    return {"logout_form": LogoutForm, "desk_home_url": desk_home_url,
            "demo_mailbox": bool(current_app.config.get("HELPDESK_MAILBOX"))}


def _retry_after_seconds() -> int:
    """Seconds until the breached sign-in limit resets (at least 1)."""
    limiter = current_app.extensions[EXTENSION_KEY].get("limiter")
    current = limiter.current_limit if limiter is not None else None
    return max(1, int(current.reset_at - time.time())) if current is not None else 60


@bp.errorhandler(429)
def _too_many(error: Any) -> Any:
    form = LoginForm()
    seconds = _retry_after_seconds()
    minutes = max(1, -(-seconds // 60))
    message = (f"Too many failed sign-ins for this account or from this address. "
               f"Wait {minutes} minute{'s' if minutes != 1 else ''}, then try again.")
    body = render_template("helpdesk/desk_login.html", form=form, error=message)
    return body, 429, {"Retry-After": str(seconds)}


def _email_key() -> str:
    return "email:" + (request.form.get("email") or "").strip().lower()[:320]


def _limit_failed_logins(app: Flask) -> Limiter:
    storage_uri, storage_options = storage_settings(app)
    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=storage_uri,
        storage_options=storage_options,
        key_prefix="helpdesk_desk",
        default_limits_exempt_when=lambda: True,
        application_limits_exempt_when=lambda: True,
        in_memory_fallback_enabled=True,  # shared storage down: agents can still sign in
    )
    limiter.init_app(app)
    endpoint = "helpdesk_desk.login"

    def failed(_response: Any) -> bool:
        return bool(g.get("desk_login_failed"))

    per_address = limiter.limit(lambda: current_app.config["HELPDESK_LOGIN_LIMIT"], deduct_when=failed,
                                methods=["POST"])
    per_email = limiter.limit(lambda: current_app.config["HELPDESK_LOGIN_LIMIT_PER_EMAIL"], key_func=_email_key,
                              deduct_when=failed, methods=["POST"])
    app.view_functions[endpoint] = per_address(per_email(app.view_functions[endpoint]))
    return limiter


def init_app(app: Flask, extension: Any) -> None:
    """Mount sign-in at ``/desk/login`` and the plugin's agent desk (the ticket pages) at ``/desk/``."""
    app.register_blueprint(bp, url_prefix="/desk")
    limiter = _limit_failed_logins(app)
    extension.register_agent_desk(app, "/desk", name="agent_desk", login_url="/desk/login")
    app.extensions[EXTENSION_KEY] = {"home": "agent_desk.queue", "limiter": limiter}

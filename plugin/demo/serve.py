"""``flask --app plugin.demo helpdesk serve``: the whole demo in one command, stopped by one Ctrl-C.

It runs, side by side:

- the demo helpdesk under gunicorn (a real WSGI server, several workers) on loopback;
- the plugin's outbox worker (``flask self-billing worker``), polling every second, so customer
  email leaves within a moment of the click that caused it;
- ``flask self-billing tick`` once a minute (delayed cancellations, sandbox renewals, retries);
- unless ``FLASK_MAIL_SERVER`` is set, the built-in mail catcher (:mod:`plugin.demo.mailbox`) on
  a free loopback port, which the worker sends to and the desk's "Sent email" page reads.

Children get their own process group, so Ctrl-C reaches this supervisor alone, which then stops
them in order and waits for each. If one of them dies, the others are stopped and the command
exits non-zero, saying which one.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click
from flask import current_app

from .mailbox import start_catcher

try:  # the ``demo`` extra (gunicorn, the mail catcher); the rest of the demo runs without it
    import gunicorn
except ImportError:  # pragma: no cover - the demo extra is missing
    gunicorn = None

#: Seconds between two runs of ``tick``.
TICK_EVERY_SECONDS = 60


def _flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "plugin.demo", *args]


def _gunicorn(host: str, port: int, workers: int) -> list[str]:
    if gunicorn is None:  # pragma: no cover - the demo extra is missing
        raise click.ClickException("The demo is served by gunicorn: pip install '.[demo]'")
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"{host}:{port}",
               "--access-logfile", "-", "--graceful-timeout", "5"]
    if int(gunicorn.__version__.split(".")[0]) >= 27:
        command.append("--no-control-socket")  # it would otherwise create ~/.gunicorn/
    return [*command, "plugin.demo:create_app()"]


class Supervisor:
    """Starts the demo's processes, and stops them all when one ends or on a signal."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.children[name] = subprocess.Popen(command, env=env, start_new_session=True)

    def run_ticks(self, env: dict[str, str]) -> None:
        while not self.stopping.wait(TICK_EVERY_SECONDS):
            subprocess.run(_flask("self-billing", "tick"), env=env, stdout=subprocess.DEVNULL, check=False)

    def wait(self) -> str | None:
        """Block until a signal or a child's end; the name of a child that ended by itself."""
        while not self.stopping.wait(0.5):
            for name, child in self.children.items():
                if child.poll() is not None:
                    return name
        return None

    def stop(self) -> None:
        self.stopping.set()
        for child in reversed(list(self.children.values())):  # the web server first, then the worker
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port of the demo.")
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers.")
def serve_command(host: str, port: int, workers: int) -> None:
    """Serve the demo with gunicorn, its outbox worker, its tick and a mail catcher, until Ctrl-C."""
    app = current_app._get_current_object()
    env = dict(os.environ)
    env.setdefault("FLASK_SELF_BILLING_WORKER_POLL_SECONDS", "1")
    catcher: Any = None
    if "FLASK_MAIL_SERVER" in env:
        click.echo(f"Email goes to your mail server, {env['FLASK_MAIL_SERVER']}:{app.config.get('MAIL_PORT')}.")
    else:
        folder = Path(app.config.get("HELPDESK_MAILBOX") or Path(app.instance_path) / "mail")
        catcher = start_catcher(folder)
        env.update(FLASK_MAIL_SERVER=catcher.hostname, FLASK_MAIL_PORT=str(catcher.port),
                   FLASK_MAIL_USE_TLS="false", FLASK_MAIL_USE_SSL="false", FLASK_HELPDESK_MAILBOX=str(folder))
        click.echo(f"Email is caught on {catcher.hostname}:{catcher.port} and listed at "
                   f"http://{host}:{port}/desk/mail (set FLASK_MAIL_SERVER to send it for real).")

    supervisor = Supervisor()
    previous = {sig: signal.signal(sig, lambda *_: supervisor.stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    died = None
    try:
        supervisor.start("outbox worker", _flask("self-billing", "worker"), env)
        supervisor.start("gunicorn", _gunicorn(host, port, workers), env)
        threading.Thread(target=supervisor.run_ticks, args=(env,), daemon=True).start()
        died = supervisor.wait()
    finally:
        supervisor.stop()
        if catcher is not None:
            catcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if died is not None:
        raise click.ClickException(f"The {died} stopped (exit status {supervisor.children[died].returncode}); "
                                   "the demo stopped with it. Its messages are above.")
    click.echo("Demo stopped.")

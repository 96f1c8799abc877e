"""The ``self-billing`` command group: ``flask --app <host> self-billing ...``.

Every host gets these (contract section 1): the schema, the demo data set, the worker and the
scheduler. ``seed-demo`` (:mod:`plugin.demo.seed`) refuses, changing nothing, a database that holds
any order that is not the demo's own, so on a shop's database it can never switch real orders to
automatic refunds.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from .api.idempotency import prune_idempotency_keys
from .invoices.cache import cache_folder
from .invoices.cache_prune import limit_bytes, prune_cache
from .limit_storage import prune_counters
from .notifications.worker import MailNotConfigured, run_worker
from .payments.interface import GatewayError
from .payments.stripe.importer import run_import as run_stripe_import
from .portal.auth import prune_sessions
from .portal.login_links import prune_login_links
from .schema import SchemaError, init_db
from .workflows.tick import run_tick

cli_group = AppGroup("self-billing", help="Self-Billing: schema, worker and scheduler.")

#: What ``tick`` deletes once it can no longer be used, in this order: (what it is, the function
#: that deletes it as of ``now`` and says how many). A new table of short-lived rows adds its row here.
PRUNED: tuple[tuple[str, Callable[[datetime], int]], ...] = (
    ("ended or expired portal session(s)", prune_sessions),
    # Counter windows are set by the clock, not by --now: they end when they end.
    ("expired login-limit counter(s)", lambda now: prune_counters()),
    ("used or expired login link(s)", prune_login_links),
    ("expired idempotency key(s)", prune_idempotency_keys),
    ("cached invoice file(s) beyond SELF_BILLING_INVOICE_CACHE_MAX_MB",
     lambda now: prune_cache(cache_folder(), limit_bytes())[0]),
)


@cli_group.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the schema (safe to run twice)."""
    try:
        message = init_db()
    except SchemaError as error:
        raise click.ClickException(str(error)) from None
    click.echo(message)


@cli_group.command("seed-demo")
@click.pass_context
def seed_demo_command(ctx: click.Context) -> None:
    """Load the demo data and print the logins to try it with (an empty or demo database only).

    Refuses (exit status 3, nothing changed) a database holding orders that are not the demo's.
    """
    from .demo.seed import seed_command  # the demo's data set, imported only when it is asked for

    ctx.invoke(seed_command)


@cli_group.command("worker")
@click.option("--once", is_flag=True, help="Drain what is due now, then exit.")
def worker_command(once: bool) -> None:
    """Send queued email and run queued jobs."""
    if not once:
        _show_worker_log()
    try:
        report = run_worker(once=once)
    except MailNotConfigured as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise click.ClickException(
            f"Database error, nothing was sent: {reason}. Check that the database is up "
            "(SQLALCHEMY_DATABASE_URI) and that `flask self-billing init-db` has run."
        ) from None
    click.echo(report.summary())


def _show_worker_log() -> None:
    """In loop mode, print the worker's log lines (sent, retried, failed) unless logging is set up."""
    logger = logging.getLogger("plugin.notifications")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use ISO 8601 with an offset, e.g. 2026-12-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        raise click.BadParameter("the time needs an offset, e.g. 2026-12-01T00:00:00Z")
    return parsed.astimezone(timezone.utc)


@cli_group.command("tick")
@click.option("--now", "now_text", default=None, help="ISO 8601 time to act as if it were now.")
def tick_command(now_text: str | None) -> None:
    """Apply what is due at that time: delayed cancellations, sandbox renewals, ended sessions."""
    now = _parse_now(now_text)
    for line in run_tick(now):
        click.echo(line)
    for what, prune in PRUNED:
        click.echo(f"Deleted {prune(now)} {what}.")


@cli_group.command("stripe-import")
@click.option("--restart", is_flag=True, help="Forget where an interrupted import stopped and start over.")
@click.option("--quiet", is_flag=True, help="No progress line, only the summary.")
def stripe_import_command(restart: bool, quiet: bool) -> None:
    """Backfill leads, purchases and payments from Stripe (resumable; safe to run twice)."""
    def progress(line: str) -> None:
        if not quiet:
            click.echo("\r" + line, nl=False)

    try:
        report = run_stripe_import(progress, restart=restart)
    except (GatewayError, RuntimeError) as exc:
        click.echo("")
        raise click.ClickException(
            f"{getattr(exc, 'message', exc)} Run the command again to go on where it stopped.") from None
    if not quiet:
        click.echo("")
    click.echo(report.summary())

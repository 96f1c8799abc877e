"""The merchant's settings: one row (id 1), read without writing, written by :func:`update_settings`.

``flask self-billing init-db`` creates the row (:func:`create_settings_row`). Reading never commits
(it may run while a purchase's row lock is held, which a commit would release): when the row is
somehow missing, :func:`get_settings` answers the defaults without writing them, and the first
:func:`update_settings` creates it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..db import db
from .models import Settings
from .schemas import SettingsIn, validate
from .transaction import one_transaction

SETTINGS_ID = 1
#: What a merchant who changed nothing has: self-service off, both portals, requests handled by hand.
DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "portal": "both",
    "cancellation_mode": "request",
    "refund_mode": "request",
    "department": "Billing",
}


#: ``session.info`` key holding the settings row for the session's lifetime.
_HELD = "self_billing.settings"


def get_settings() -> Settings:
    """The merchant's settings; the defaults (not added to the session) while the row is missing. Never writes.

    The row is held in ``session.info`` for as long as the session lives (one request): the session's
    identity map keeps rows only while something references them, and a request asks for the settings
    at each door it passes (access, rules, the machine) — one query, not one per question. A commit
    expires it as it expires every row, so what is read after a commit is fresh.
    """
    settings = db.session.get(Settings, SETTINGS_ID)
    if settings is None:
        return Settings(id=SETTINGS_ID, **DEFAULTS)
    db.session.info[_HELD] = settings
    return settings


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    return {
        "enabled": settings.enabled,
        "portal": settings.portal,
        "cancellation": {"mode": settings.cancellation_mode},
        "refunds": {"mode": settings.refund_mode},
        "department": settings.department,
    }


@one_transaction
def update_settings(data: SettingsIn | Mapping[str, Any]) -> Settings:
    """Apply any subset of the settings (creating the row with the defaults first if it is missing)."""
    data = validate(SettingsIn, data)
    settings = db.session.get(Settings, SETTINGS_ID)
    if settings is None:
        settings = Settings(id=SETTINGS_ID, **DEFAULTS)
        db.session.add(settings)
    if data.enabled is not None:
        settings.enabled = data.enabled
    if data.portal is not None:
        settings.portal = data.portal
    if data.cancellation is not None:
        settings.cancellation_mode = data.cancellation.mode
    if data.refunds is not None:
        settings.refund_mode = data.refunds.mode
    if data.department is not None:
        settings.department = data.department
    db.session.commit()
    return settings


def create_settings_row(connection: Connection) -> bool:
    """Insert the settings row with the defaults unless it exists (``init-db``); True when it was inserted."""
    table = Settings.__table__
    if connection.execute(select(table.c.id).where(table.c.id == SETTINGS_ID)).first() is not None:
        return False
    try:
        with connection.begin_nested():
            connection.execute(insert(table).values(id=SETTINGS_ID, **DEFAULTS))
    except IntegrityError:  # another init-db inserted it at the same moment
        return False
    return True

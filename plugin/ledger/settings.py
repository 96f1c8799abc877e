"""The merchant's settings: one row (id 1), read without writing, written by :func:`update_settings`.

``flask self-billing init-db`` creates the row (:func:`create_settings_row`). Reading never commits
(it may run while a purchase's row lock is held, which a commit would release): when the row is
somehow missing, :func:`get_settings` answers the defaults without writing them, and the first
:func:`update_settings` creates it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..db import db
from .models import Settings
from .schemas import SellerIn, SettingsIn, validate
from .tax import reverse_charge_applies
from .transaction import one_transaction

SETTINGS_ID = 1
#: What a merchant who changed nothing has: self-service off, both portals, requests handled by hand.
DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "portal": "both",
    "cancellation_mode": "request",
    "refund_mode": "request",
    "department": "Billing",
    "seller": {},
    "logo": "",
    "logo_sha": "",
    "reverse_charge": False,
}

#: The reasons the cancellation confirmation offers a merchant who set none (the customer may also write).
DEFAULT_CANCELLATION_REASONS = (
    "It costs too much",
    "I no longer need it",
    "It is missing something I need",
    "I am switching to another product",
    "Technical problems",
    "Another reason",
)

#: The seller profile's fields, in the order documents show them.
SELLER_FIELDS = ("name", "address", "email", "tax_id", "country")


#: Bumped in this process each time an update commits a new logo, so readers that cache the logo
#: (:func:`plugin.invoices.content.settings_logo`) read it again at once.
_logo_writes = [0]


def logo_writes() -> int:
    """How many logo changes this process committed (a cache's cue to read the logo again)."""
    return _logo_writes[0]
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
        "seller": {**{name: (settings.seller or {}).get(name, [] if name == "address" else "")
                      for name in SELLER_FIELDS}, "logo": settings.logo or ""},
        "tax": {"reverse_charge": bool(settings.reverse_charge)},
        "cancellation_reasons": cancellation_reasons(settings),
    }


def cancellation_reasons(settings: Settings | None = None) -> list[str]:
    """The reasons the cancellation confirmation offers, in the merchant's order."""
    chosen = (settings or get_settings()).cancellation_reasons
    return list(chosen) if chosen else list(DEFAULT_CANCELLATION_REASONS)


#: The configuration keys each seller field falls back to.
_SELLER_CONFIG = {"name": "SELF_BILLING_MERCHANT_NAME", "address": "SELF_BILLING_MERCHANT_ADDRESS",
                  "email": "SELF_BILLING_MERCHANT_EMAIL", "tax_id": "SELF_BILLING_MERCHANT_TAX_ID",
                  "country": "SELF_BILLING_MERCHANT_COUNTRY"}


def seller_profile(settings: Settings | None = None) -> dict[str, Any]:
    """The seller as documents name them now: each field from the settings' profile, else from the
    configuration. ``address_lines`` is a list of lines; ``country`` an ISO code or ""."""
    profile = dict((settings or get_settings()).seller or {})
    config = current_app.config
    values = {name: profile.get(name) or config.get(key) or "" for name, key in _SELLER_CONFIG.items()}
    address = values.pop("address")
    lines = address.splitlines() if isinstance(address, str) else [str(item) for item in address]
    values["address_lines"] = [line.strip() for line in lines if line and line.strip()]
    values["country"] = str(values["country"]).upper()
    return values


def reverse_charged(bill_to: Mapping[str, Any] | None, settings: Settings | None = None) -> bool:
    """Whether a document to ``bill_to`` is reverse-charged now: the merchant's switch and the seller's
    country as the settings say (:func:`plugin.ledger.tax.reverse_charge_applies`)."""
    settings = settings or get_settings()
    return reverse_charge_applies(settings.reverse_charge, seller_profile(settings)["country"], bill_to)


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
    if data.seller is not None:
        _apply_seller(settings, data.seller)
    if data.tax is not None and data.tax.reverse_charge is not None:
        settings.reverse_charge = data.tax.reverse_charge
    if data.cancellation_reasons is not None:  # [] goes back to the default list
        settings.cancellation_reasons = list(data.cancellation_reasons) or None
    db.session.commit()
    if data.seller is not None and data.seller.logo is not None:
        _logo_writes[0] += 1
    return settings


def _apply_seller(settings: Settings, seller: SellerIn) -> None:
    """Set the profile fields given ("" or [] clears one, so its configured value applies again)."""
    profile = dict(settings.seller or {})
    for name in SELLER_FIELDS:
        value = getattr(seller, name)
        if value is None:
            continue
        if name == "address":
            value = [line.strip() for line in value if line.strip()]
        if value:
            profile[name] = value
        else:
            profile.pop(name, None)
    settings.seller = profile  # a new dict: JSON columns see reassignment, not mutation
    if seller.logo is not None:
        settings.logo = seller.logo
        settings.logo_sha = hashlib.sha256(seller.logo.encode("ascii")).hexdigest() if seller.logo else ""


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

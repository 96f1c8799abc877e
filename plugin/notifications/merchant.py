"""Who customer email is from: the merchant's name, contact email and address, and the Reply-To.

Read once per worker batch from the seller profile (:func:`plugin.ledger.settings.seller_profile`:
the merchant settings API's ``seller``, else the ``SELF_BILLING_MERCHANT_*`` keys), so every email
is signed and footed with the merchant's details as they are when it is rendered.

* ``name``: the seller's name, else the display name of the sender address
  (``SELF_BILLING_MAIL_SENDER`` / ``MAIL_DEFAULT_SENDER``), else :data:`NO_NAME`.
* ``reply_to``: ``SELF_BILLING_MAIL_REPLY_TO``, else the seller's contact email (with its name),
  else None: the message then has no ``Reply-To`` header.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from ..db import db
from ..ledger.models import Settings
from ..ledger.settings import DEFAULTS, SETTINGS_ID, seller_profile

#: The name emails are signed with when neither the seller profile nor the sender names the merchant.
NO_NAME = "The billing team"


@dataclass(frozen=True)
class Merchant:
    """The merchant as customer email names it."""

    name: str
    email: str = ""
    address_lines: tuple[str, ...] = field(default_factory=tuple)
    reply_to: str | None = None

    def as_context(self) -> dict[str, Any]:
        """What the email templates get as ``merchant``."""
        return {"name": self.name, "email": self.email, "address_lines": list(self.address_lines),
                "reply_to": self.reply_to}


def sender_display_name(sender: Any) -> str:
    """``Shop Billing`` of ``"Shop Billing <billing@shop.test>"`` or ``("Shop Billing", "...")``; else ""."""
    if isinstance(sender, (tuple, list)) and sender:
        return str(sender[0] or "").strip()
    if isinstance(sender, str):
        return parseaddr(sender)[0].strip()
    return ""


def load_merchant(session: Session | None = None, sender: Any = None) -> Merchant:
    """The merchant now, read with ``session`` (the worker's; default ``db.session``). Needs an app context."""
    config = current_app.config
    if sender is None:
        sender = config.get("SELF_BILLING_MAIL_SENDER") or config.get("MAIL_DEFAULT_SENDER")
    row = (session or db.session).get(Settings, SETTINGS_ID)
    profile = seller_profile(row if row is not None else Settings(id=SETTINGS_ID, **DEFAULTS))
    own_name = " ".join(str(profile.get("name") or "").split())  # one line: it goes into a header
    contact = str(profile.get("email") or "").strip()
    reply_to = config.get("SELF_BILLING_MAIL_REPLY_TO") or (formataddr((own_name, contact)) if contact else None)
    return Merchant(
        name=own_name or sender_display_name(sender) or NO_NAME,
        email=contact,
        address_lines=tuple(profile.get("address_lines") or ()),
        reply_to=reply_to or None,
    )

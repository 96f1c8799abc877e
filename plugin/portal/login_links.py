"""One-time login links: the way in when the login is paused for an email.

Failed logins are limited per email (:mod:`.limits`), so anyone who knows a customer's email can
pause that customer's login. The customer still gets in: "Email me a login link" takes the same
Order ID and email, and when they belong together it emails the customer a link that logs in once,
within ``SELF_BILLING_LOGIN_LINK_MINUTES``. The answer is the same whether or not they match (so it
reveals nothing), requests are limited on their own (``SELF_BILLING_LOGIN_LINK_LIMIT``, never
counted as failed logins), and opening the link shows a button: only its POST uses the link, so a
mail scanner that fetches it changes nothing.

Links are kept by the SHA-256 of their token (the table alone opens nothing); using one is a single
``UPDATE ... WHERE used_at IS NULL AND expires_at > now``, so two clicks at once log in once.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, db, utcnow
from ..ledger.models import Lead, Purchase
from ..notifications import enqueue
from .login import purchase_for_login
from ..tokens import digest, new_token

#: What every "send me a link" answer says, matching pair or not.
LINK_SENT_MESSAGE = ("If that Order ID and email address belong to the same purchase, we have emailed a login "
                     "link to that address. It works once, for {minutes} minutes. Check your spam folder too.")
LINK_UNUSABLE_MESSAGE = ("This login link has expired or was already used. Ask for a new one on the login page, "
                         "or log in with your Order ID and email.")


class LoginLink(Base):
    """A one-time login link: whose, for which purchase, until when, and whether it was used."""

    __tablename__ = "sb_login_links"

    #: SHA-256 (hex) of the token in the emailed link.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("sb_leads.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("sb_purchases.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def link_minutes() -> int:
    return max(1, int(current_app.config["SELF_BILLING_LOGIN_LINK_MINUTES"]))


def sent_message() -> str:
    return LINK_SENT_MESSAGE.format(minutes=link_minutes())


def send_login_link(order_id: str, email: str, link_for: Callable[[str], str]) -> None:
    """Email a one-time login link when ``order_id`` and ``email`` belong to one lead; else nothing.

    ``link_for(token)`` is the absolute URL of the link's page. The caller answers the same either way.
    """
    found = purchase_for_login(order_id, email)
    if found is None:
        return
    purchase = found[0]
    token = new_token()
    now = utcnow()
    minutes = link_minutes()
    db.session.add(LoginLink(token_hash=digest(token), lead_id=purchase.lead_id, purchase_id=purchase.id,
                             created_at=now, expires_at=now + timedelta(minutes=minutes)))
    enqueue("login_link", purchase, extra={"link": link_for(token), "minutes": minutes})
    db.session.commit()


def use_login_link(token: str) -> Lead | None:
    """The lead a still-unused, unexpired link belongs to, marking it used; None for any other token."""
    if not token or len(token) > 100:
        return None
    now = utcnow()
    token_hash = digest(token)
    used = db.session.execute(
        update(LoginLink).where(LoginLink.token_hash == token_hash, LoginLink.used_at.is_(None),
                                LoginLink.expires_at > now).values(used_at=now)
    )
    if used.rowcount != 1:
        db.session.rollback()
        return None
    lead_id = db.session.execute(select(LoginLink.lead_id).where(LoginLink.token_hash == token_hash)).scalar_one()
    db.session.commit()
    return db.session.get(Lead, lead_id)


def prune_login_links(now: datetime) -> int:
    """Delete links that can no longer be used; how many."""
    result = db.session.execute(delete(LoginLink).where((LoginLink.used_at.is_not(None))
                                                        | (LoginLink.expires_at <= now)))
    db.session.commit()
    return result.rowcount or 0

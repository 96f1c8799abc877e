"""Portal sessions, kept server-side so that logging out really ends them.

The customer's cookie carries a random token (under ``self_billing_session`` in the host's Flask
session) and the time it was last used; the row is found by the token's SHA-256, so the table
alone lets nobody in. A session is live while its row is not ended and began within
``SELF_BILLING_SESSION_MAX_HOURS`` (and the cookie was used within
``SELF_BILLING_SESSION_IDLE_MINUTES``). Logout ends the row: a copy of the cookie taken before the
logout opens nothing afterwards. Rows are written at login and logout only; ``tick`` deletes the
ones that can no longer be live.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class PortalSession(Base):
    """One customer login: who, since when, and whether it was ended."""

    __tablename__ = "sb_portal_sessions"

    #: SHA-256 (hex) of the token in the customer's cookie.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("sb_leads.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: When logout (or the host's ``logout_customer()``) ended it; None while it may be live.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

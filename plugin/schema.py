"""Creating and upgrading the plugin's schema."""
from __future__ import annotations

from .db import Base, db


def init_db() -> str:
    """Create the plugin's tables where missing. Safe to run twice."""
    from . import models  # noqa: F401

    Base.metadata.create_all(db.engine)
    return "Self-Billing schema is up to date."

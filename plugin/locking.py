"""The one locking primitive of money-moving and card-changing steps: the purchase's row lock.

Every such step begins with :func:`lock_purchase`, an ``UPDATE`` of the
purchase's ``lock_version``. On PostgreSQL that takes the row lock (a
concurrent step on the same purchase waits for our commit); on SQLite the first
write of a transaction takes the database's write lock (others wait up to the
busy timeout). Either way, what is read after the lock is current, and the
step's checks and writes happen as one, in one transaction.

Never call a payment processor while holding the lock on SQLite: the sandbox
writes its own records on another connection. Commit first, call, then lock again
to record the result (see ``docs/architecture.md``).
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from .db import db
from .ledger.models import Purchase


def lock_purchase(purchase_id: int) -> Purchase:
    """Take the purchase's row lock in the current transaction and return it freshly loaded, with its
    price point (whose rules every step reads) in the same query."""
    db.session.execute(
        update(Purchase)
        .where(Purchase.id == purchase_id)
        .values(lock_version=Purchase.lock_version + 1)
        .execution_options(synchronize_session=False)
    )
    return db.session.execute(
        select(Purchase).options(joinedload(Purchase.price_point)).where(Purchase.id == purchase_id)
        .execution_options(populate_existing=True)
    ).scalar_one()

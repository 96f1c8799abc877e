"""The ledger's write transaction: all or nothing, and a raced unique key answered as a repeat."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from ..db import db

F = TypeVar("F", bound=Callable[..., Any])


def one_transaction(fn: F) -> F:
    """Run ``fn`` as one transaction that writes all or nothing.

    On failure whatever ``fn`` left in the session is rolled back. When a
    concurrent call created the same lead, price point, order, payment or the
    settings row first (a unique key raced), ``fn`` runs once more and then finds
    that row, so the same request sent twice at once still answers as a repeat.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            try:
                return fn(*args, **kwargs)
            except IntegrityError:
                db.session.rollback()
                if attempt == 2:
                    raise
            except BaseException:
                db.session.rollback()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper  # type: ignore[return-value]

"""The database rate-limit storage takes the calls of every ``limits`` release setup.cfg allows.

``limits`` 5 calls ``incr(key, expiry, amount=...)``; ``limits`` 2.8 to 4 call
``incr(key, expiry, elastic_expiry=..., amount=...)``. The lowest-versions CI run
(.ci/constraints-lowest.txt) drives it through an old ``limits`` end to end.
"""
from __future__ import annotations

import time

from limits import parse
from limits.strategies import FixedWindowRateLimiter

from plugin.db import db
from plugin.limit_storage import DatabaseStorage


def _storage() -> DatabaseStorage:
    return DatabaseStorage("self-billing-db://", engine=lambda: db.engine)


def test_incr_takes_both_call_forms(app):
    with app.app_context():
        storage = _storage()
        assert storage.incr("k", 60) == 1
        assert storage.incr("k", 60, amount=2) == 3  # limits 5
        assert storage.incr("k", 60, 1) == 4
        assert storage.incr("k", 60, elastic_expiry=False, amount=1) == 5  # limits 2.8 to 4
        assert storage.get("k") == 5


def test_elastic_expiry_moves_the_window_and_the_fixed_window_stays(app):
    with app.app_context():
        storage = _storage()
        storage.incr("fixed", 5, elastic_expiry=False)
        ends = storage.get_expiry("fixed")
        storage.incr("fixed", 600, elastic_expiry=False)
        assert storage.get_expiry("fixed") == ends < time.time() + 10
        storage.incr("elastic", 5, elastic_expiry=True)
        storage.incr("elastic", 600, elastic_expiry=True)
        assert storage.get_expiry("elastic") > time.time() + 500
        assert storage.get("elastic") == 2 and storage.get("fixed") == 2


def test_the_installed_limits_strategy_counts_through_it(app):
    with app.app_context():
        storage = _storage()  # older limits keep only a weak reference to it
        limiter = FixedWindowRateLimiter(storage)
        item = parse("2/minute")
        assert limiter.hit(item, "who") and limiter.hit(item, "who")
        assert not limiter.hit(item, "who")
        assert limiter.hit(item, "someone else")

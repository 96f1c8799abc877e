"""``flask self-billing stripe-import`` against localstripe: backfill, progress line, resumable, safe twice."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from plugin.db import db
from plugin.ledger.models import Lead, Payment, Purchase
from plugin.ledger.service import update_settings
from plugin.payments.stripe import sync as sync_module
from plugin.payments.stripe.models import StripeLink
from tests.conftest import Customer
from tests.stripe_server import _localstripe_server, client, localstripe_url, need_stripe, stripe_config  # noqa: F401
from tests.test_stripe_gateway import card, stripe_subscription

need_stripe()


@pytest.fixture
def shop(make_app, localstripe_url):  # noqa: F811
    app = make_app(**stripe_config(localstripe_url))
    with app.app_context():
        update_settings({"enabled": True})
    api = client(localstripe_url)
    subs = [stripe_subscription(api, email=f"c{i}@example.com", order_id=f"ORD-{i}") for i in range(3)]
    method = card(api)
    buyer = api.customers.create(params={"email": "once@example.com", "payment_method": method})
    pi = api.payment_intents.create(params={"amount": 2500, "currency": "usd", "customer": buyer.id,
                                            "payment_method": method, "confirm": True,
                                            "metadata": {"order_id": "ONE-9"}})
    return app, api, subs, pi


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Lead, Purchase, Payment))


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["self-billing", "stripe-import", *args])


def test_the_import_backfills_leads_purchases_and_payments_and_is_safe_twice(shop):
    app, _api, subs, pi = shop
    first = run(app)
    assert first.exit_code == 0, first.output
    assert "subscriptions: 3 read, 3 imported" in first.output  # the progress line
    # four PaymentIntents: the three invoices' (their payments) and the one-time purchase
    assert "3 subscription(s) (3 imported), 4 PaymentIntent(s) (1 one-time purchase(s) imported)" in first.output
    assert counts(app) == (4, 4, 4)  # 3 subscriptions (their first invoices) and a one-time purchase
    again = run(app)
    assert again.exit_code == 0, again.output
    assert counts(app) == (4, 4, 4)
    customer = Customer(app.test_client())
    assert customer.login("ONE-9", "once@example.com").status_code == 200
    [purchase] = customer.get("/purchases").get_json()["purchases"]
    assert (purchase["kind"], purchase["payments"][0]["payment_id"]) == ("one_time", pi.id)
    assert Customer(app.test_client()).login("ORD-1", "c1@example.com").status_code == 200


def test_an_interrupted_import_goes_on_where_it_stopped(shop, monkeypatch):
    app, _api, _subs, _pi = shop
    calls = {"n": 0}
    real = sync_module.Sync.subscription

    def flaky(self, sub, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the connection dropped")
        return real(self, sub, **kwargs)

    monkeypatch.setattr(sync_module.Sync, "subscription", flaky)
    broken = run(app)
    assert broken.exit_code != 0
    with app.app_context():
        cursor = db.session.scalar(select(StripeLink.stripe_id).where(StripeLink.kind == "cursor"))
    assert cursor and cursor.startswith("sub_")
    monkeypatch.setattr(sync_module.Sync, "subscription", real)
    resumed = run(app)
    assert resumed.exit_code == 0, resumed.output
    assert f"Resumed subscriptions after {cursor}" in resumed.output
    assert "2 subscription(s)" in resumed.output  # the one done before the stop is not read again
    assert counts(app) == (4, 4, 4)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StripeLink).where(StripeLink.kind == "cursor")) == 0

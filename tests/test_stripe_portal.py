"""The card page on the Stripe gateway: Stripe.js and Elements collect the card, the page posts a ``pm_...``.

localstripe serves a fake Stripe.js (``{api}/js.stripe.com/v3/``) that the page loads here, but its
``createPaymentMethod`` does nothing, so the browser half is not driven: what is checked is the
page Stripe.js needs, and that the PaymentMethod id it posts is attached in Stripe.
"""
from __future__ import annotations

import re

import pytest

from plugin.ledger.service import update_settings
from tests.conftest import Customer
from tests.stripe_server import PUBLISHABLE_KEY, _localstripe_server, client, localstripe_url, need_stripe, stripe_config  # noqa: F401
from tests.test_stripe_gateway import card, imported, stripe_subscription

need_stripe()
PAGE = "/billing/portal/purchases/ORD-1/cards"


@pytest.fixture
def logged_in(make_app, localstripe_url):  # noqa: F811
    app = make_app(**stripe_config(localstripe_url))
    api = client(localstripe_url)
    made = stripe_subscription(api)
    imported(app, made["subscription"])
    with app.app_context():
        update_settings({"enabled": True})
    customer = Customer(app.test_client())
    assert customer.login("ORD-1").status_code == 200
    return app, api, customer, made, localstripe_url


def test_the_card_page_loads_stripe_js_and_has_no_card_inputs_of_its_own(logged_in):
    _app, _api, customer, _made, url = logged_in
    page = customer.client.get(PAGE + "/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'<script src="{url}/js.stripe.com/v3/"></script>' in html
    assert f'data-stripe-key="{PUBLISHABLE_KEY}"' in html
    assert 'id="sb-card-element"' in html and "createPaymentMethod" in html
    assert "sandbox/tokens" not in html and "sb-card-number" not in html
    assert customer.client.get(url + "/js.stripe.com/v3/") is not None


def test_the_payment_method_the_page_posts_is_attached_in_stripe(logged_in):
    _app, api, customer, made, _url = logged_in
    html = customer.client.get(PAGE + "/new").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    method = card(api, "5555555555554444")  # another card than the subscription's Visa 4242
    answer = customer.client.post(PAGE, data={"csrf_token": csrf, "token": method})
    assert answer.status_code == 302
    assert api.payment_methods.retrieve(method).customer == made["customer"]
    declined = customer.client.post(PAGE, data={"csrf_token": csrf, "token": card(api, "4000000000000002")})
    assert declined.status_code == 402
    assert "declined" in declined.get_data(as_text=True)


def test_the_sandbox_card_page_is_unchanged(app, ledger, customer):
    ledger.settings(enabled=True)
    ledger.price()
    ledger.order("SUB-1")
    customer.login("SUB-1")
    html = customer.client.get("/billing/portal/purchases/SUB-1/cards/new").get_data(as_text=True)
    assert "sandbox/tokens" in html and "js.stripe.com" not in html

"""Tax on invoices and credit notes, read back from the PDFs: net, tax and gross per rate rounded once per
document, exclusive prices charged with their tax, credit notes reversing exactly the invoice's tax,
customers' VAT IDs checked per country, reverse charge for EU businesses, and the seller profile in the
merchant settings API. Bad input is a 400 naming the field, with nothing written."""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.ledger.tax import REVERSE_CHARGE_NOTE, TaxRule, credit_split, split, tax_on_net
from tests.conftest import ADMIN_TOKEN, Customer
from tests.parts import need_wkhtmltopdf
from tests.test_invoices import pdf_text, tiny_png

PREFIX = "/billing"
API = PREFIX + "/api/admin"
YEAR = datetime.now(timezone.utc).year
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VAT19 = {"name": "VAT", "rate": "19.00", "inclusive": True}
BERLIN = {"name": "Ann Lee GmbH", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}
PARIS = {"name": "Marie SARL", "line1": "1 rue de Rivoli", "city": "Paris", "postal_code": "75001", "country": "FR"}


@pytest.fixture
def shop_app(make_app, tmp_path):
    return make_app(SELF_BILLING_INVOICE_CACHE_DIR=str(tmp_path / "invoices"),
                    SELF_BILLING_MERCHANT_NAME="Beispiel GmbH", SELF_BILLING_MERCHANT_TAX_ID="DE136695976",
                    SELF_BILLING_MERCHANT_COUNTRY="DE", SELF_BILLING_MERCHANT_ADDRESS="Unter den Linden 1\n10117 Berlin")


class Shop:
    def __init__(self, app):
        self.app = app
        self.http = app.test_client()

    def put(self, path: str, body):
        return self.http.put(API + path, json=body, headers=HEADERS)

    def price(self, code: str, tax, amount: str = "49.00", **extra):
        body = {"product": "Pro Plan", "amount": amount, "currency": "EUR", "interval": "month", **extra}
        if tax is not None:
            body["tax"] = tax
        return self.put(f"/price-points/{code}", body)

    def order(self, order_id: str, price_point: str, email: str = "ann@example.com", address=BERLIN):
        answer = self.put(f"/orders/{order_id}", {
            "email": email, "first_name": "Ann", "price_point": price_point, "purchased_at": "2026-10-01T10:00:00Z",
            "billing_address": address,
            "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}})
        assert answer.status_code in (200, 201), answer.get_json()
        return answer

    def pay(self, order_id: str, payment_id: str, paid_at: str = "2026-10-01T10:00:00Z", **extra):
        answer = self.http.post(f"{API}/orders/{order_id}/payments", headers=HEADERS,
                                json={"payment_id": payment_id, "paid_at": paid_at, **extra})
        assert answer.status_code in (200, 201), answer.get_json()
        return answer.get_json()

    def invoice_text(self, payment_id: str) -> str:
        answer = self.app.test_client().get(f"{PREFIX}/api/agent/payments/{payment_id}/invoice.pdf")
        assert answer.status_code == 200, answer.data[:300]
        return pdf_text(answer.data)

    def refund(self, payment_id: str, amount: str) -> dict:
        answer = self.app.test_client().post(f"{PREFIX}/api/agent/payments/{payment_id}/refunds",
                                             json={"amount": amount})
        assert answer.status_code in (200, 201, 202), answer.get_json()
        return answer.get_json()

    def credit_note_text(self, number: str) -> str:
        answer = self.app.test_client().get(f"{PREFIX}/api/agent/credit-notes/{number}/credit-note.pdf")
        assert answer.status_code == 200
        return pdf_text(answer.data)


@pytest.fixture
def shop(shop_app):
    shop_app.extensions["self_billing"].agent_loader = lambda: "agent@helpdesk.example.com"
    shop = Shop(shop_app)
    assert shop.put("/settings", {"enabled": True}).status_code == 200
    return shop


# -- the arithmetic ----------------------------------------------------------------------------


def test_a_19_percent_inclusive_price_of_49_is_41_18_net_and_7_82_tax():
    result = split(4900, TaxRule("VAT", Decimal("19"), True))
    assert (result.net_cents, result.tax_cents, result.gross_cents) == (4118, 782, 4900)
    assert result.taxes == [{"name": "VAT", "rate": "19.00", "category": "S", "net_cents": 4118, "tax_cents": 782,
                             "gross_cents": 4900}]


@settings(max_examples=300, deadline=None)
@given(net=st.integers(0, 10**9), rate=st.decimals("0", "100", places=2))
def test_an_exclusive_charge_splits_back_into_its_net_and_tax(net, rate):
    rule = TaxRule("VAT", rate, False)
    gross = net + tax_on_net(net, rate)
    result = split(gross, rule)
    assert (result.net_cents, result.tax_cents) == (net, gross - net)


@settings(max_examples=300, deadline=None)
@given(gross=st.integers(1, 10**9), rate=st.decimals("0", "100", places=2), cuts=st.lists(st.integers(1, 10**9),
                                                                                           max_size=6))
def test_refunds_adding_up_to_the_payment_reverse_exactly_its_tax(gross, rate, cuts):
    invoice = split(gross, TaxRule("VAT", rate, True))
    assert invoice.net_cents + invoice.tax_cents == gross
    amounts, left = [], gross
    for cut in cuts:
        part = min(left, cut)
        if part:
            amounts.append(part)
            left -= part
    if left:
        amounts.append(left)
    credited = taxed = 0
    for amount in amounts:
        note = credit_split(amount, invoice.taxes, gross, credited)
        assert note.net_cents + note.tax_cents == amount and 0 <= note.tax_cents <= amount
        credited += amount
        taxed += note.tax_cents
    assert taxed == invoice.tax_cents


# -- price points ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("tax", "field"), [
    ({"name": "VAT", "rate": "100.01", "inclusive": True}, "tax.rate"),
    ({"name": "VAT", "rate": "-1", "inclusive": True}, "tax.rate"),
    ({"name": "VAT", "rate": "19.001", "inclusive": True}, "tax.rate"),
    ({"name": "VAT", "rate": 19, "inclusive": True}, "tax.rate"),
    ({"name": "VAT", "rate": "19.00", "inclusive": "sometimes"}, "tax.inclusive"),
    ({"name": "VAT", "rate": "19.00", "inclusive": True, "behaviour": "compound"}, "tax.behaviour"),
    ({"name": "", "rate": "19.00", "inclusive": True}, "tax.name"),
    ({"rate": "19.00", "inclusive": True}, "tax.name"),
])
def test_a_bad_tax_is_a_400_naming_the_field_and_writes_nothing(shop, tax, field):
    answer = shop.price("taxed", tax)
    assert answer.status_code == 400
    assert field in answer.get_json()["error"]["fields"], answer.get_json()
    assert shop.http.get(f"{API}/price-points/taxed", headers=HEADERS).status_code == 404


def test_a_price_point_keeps_its_tax(shop):
    answer = shop.price("taxed", {"name": "VAT", "rate": "7", "inclusive": False})
    assert answer.status_code == 201
    assert answer.get_json()["tax"] == {"name": "VAT", "rate": "7.00", "inclusive": False}
    assert shop.http.get(f"{API}/price-points/taxed", headers=HEADERS).get_json()["tax"]["rate"] == "7.00"


# -- invoices and credit notes ---------------------------------------------------------------------


def test_inclusive_vat_on_the_invoice_and_on_each_credit_note(shop):
    need_wkhtmltopdf()
    shop.price("taxed", VAT19)
    shop.order("ORD-1", "taxed")
    shop.pay("ORD-1", "pay_1")
    before = shop.invoice_text("pay_1")
    for expected in ("VAT 19% €41.18 €7.82 €49.00", "Total net €41.18", "Total VAT €7.82", "Total €49.00",
                     "Tax ID: DE136695976"):
        assert expected in before, (expected, before)
    assert REVERSE_CHARGE_NOTE not in before

    shop.refund("pay_1", "10.00")
    shop.refund("pay_1", "39.00")
    first = shop.credit_note_text(f"CN-{YEAR}-000001")
    second = shop.credit_note_text(f"CN-{YEAR}-000002")
    # 7.82 of VAT in all: 10.00 reverses 1.60 (7.82 x 10/49, rounded), the rest the remaining 6.22
    for expected in (f"Corrects invoice INV-{YEAR}-000001", "VAT 19% −€8.40 −€1.60 −€10.00",
                     "Net credited −€8.40", "VAT credited −€1.60", "Total credited −€10.00"):
        assert expected in first, (expected, first)
    for expected in ("VAT 19% −€32.78 −€6.22 −€39.00", "Total credited −€39.00"):
        assert expected in second, (expected, second)
    assert shop.invoice_text("pay_1") == before  # the invoice never changes


def test_an_exclusive_price_is_charged_with_its_tax(shop):
    need_wkhtmltopdf()
    shop.price("net", {"name": "VAT", "rate": "20.00", "inclusive": False}, amount="100.00")
    shop.order("ORD-1", "net")
    payment = shop.pay("ORD-1", "pay_1")
    assert payment["amount"] == "120.00"
    text = shop.invoice_text("pay_1")
    for expected in ("VAT 20% €100.00 €20.00 €120.00", "Total net €100.00", "Total VAT €20.00", "Total €120.00"):
        assert expected in text, (expected, text)


def test_a_price_without_tax_has_no_tax_lines(shop):
    need_wkhtmltopdf()
    shop.price("plain", None)
    shop.order("ORD-1", "plain")
    shop.pay("ORD-1", "pay_1")
    text = shop.invoice_text("pay_1")
    assert "Total €49.00" in text
    assert "VAT" not in text and "Total net" not in text


# -- VAT IDs ----------------------------------------------------------------------------------------


def _customer(shop, order_id: str = "ORD-1", email: str = "ann@example.com") -> Customer:
    customer = Customer(shop.app.test_client())
    assert customer.login(order_id, email).status_code == 200
    return customer


@pytest.mark.parametrize(("vat_id", "country"), [("DE123", "DE"), ("FR40303265045", "DE"), ("DE136695977", "DE"),
                                                  ("not a number!", "US")])
def test_a_bad_vat_id_is_a_400_and_the_address_stays(shop, vat_id, country):
    shop.price("taxed", VAT19)
    shop.order("ORD-1", "taxed")
    customer = _customer(shop)
    answer = customer.put("/purchases/ORD-1/billing-address", {**BERLIN, "country": country, "vat_id": vat_id})
    assert answer.status_code == 400
    assert list(answer.get_json()["error"]["fields"]) == ["vat_id"], answer.get_json()
    order = shop.http.get(f"{API}/orders/ORD-1", headers=HEADERS).get_json()
    assert order["billing_address"] == {**BERLIN, "line2": "", "region": ""}


def test_a_vat_id_is_kept_in_its_canonical_form_and_shown_on_future_invoices(shop):
    need_wkhtmltopdf()
    shop.price("taxed", VAT19)
    shop.order("ORD-1", "taxed")
    shop.pay("ORD-1", "pay_1")
    customer = _customer(shop)
    answer = customer.put("/purchases/ORD-1/billing-address", {**BERLIN, "vat_id": "de 136 695 976"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["billing_address"]["vat_id"] == "DE136695976"
    shop.pay("ORD-1", "pay_2", "2026-11-01T10:00:00Z")
    assert "VAT ID: DE136695976" in shop.invoice_text("pay_2")
    assert "VAT ID: DE" not in shop.invoice_text("pay_1")  # issued before: unchanged


# -- reverse charge ----------------------------------------------------------------------------------


def test_an_eu_business_in_another_country_is_reverse_charged_when_the_merchant_turns_it_on(shop):
    need_wkhtmltopdf()
    shop.price("incl", VAT19)
    shop.price("excl", {"name": "VAT", "rate": "19.00", "inclusive": False}, amount="100.00")
    business = {**PARIS, "vat_id": "FR40303265045"}
    shop.order("ORD-1", "incl", address=business)
    shop.order("ORD-2", "excl", email="marie@example.com", address=business)
    shop.order("ORD-3", "excl", email="otto@example.com", address={**BERLIN, "vat_id": "DE136695976"})

    assert shop.pay("ORD-2", "pay_off")["amount"] == "119.00"  # switched off: VAT is charged
    assert shop.put("/settings", {"tax": {"reverse_charge": True}}).get_json()["tax"] == {"reverse_charge": True}

    shop.pay("ORD-1", "pay_1")
    text = shop.invoice_text("pay_1")
    for expected in ("VAT ID: FR40303265045", "VAT 0% (reverse charge) €49.00 €0.00 €49.00", "Total VAT €0.00",
                     "Total €49.00", REVERSE_CHARGE_NOTE):
        assert expected in text, (expected, text)
    assert shop.pay("ORD-2", "pay_2", "2026-11-01T10:00:00Z")["amount"] == "100.00"  # net only
    # a business in the seller's own country pays VAT as usual
    assert shop.pay("ORD-3", "pay_3")["amount"] == "119.00"
    assert REVERSE_CHARGE_NOTE not in shop.invoice_text("pay_3")
    # the refund's credit note is reverse-charged like its invoice
    shop.refund("pay_1", "49.00")
    note = shop.credit_note_text(f"CN-{YEAR}-000001")
    assert "VAT credited −€0.00" in note and REVERSE_CHARGE_NOTE in note


# -- the seller profile -------------------------------------------------------------------------------


def test_the_seller_profile_is_part_of_the_settings_api_and_frozen_into_each_invoice(shop):
    need_wkhtmltopdf()
    shop.price("taxed", VAT19)
    shop.order("ORD-1", "taxed")
    shop.pay("ORD-1", "pay_1")
    before = shop.invoice_text("pay_1")
    logo = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    answer = shop.put("/settings", {"seller": {"name": "Neuer Name AG", "address": ["Hafenstr. 9", "20457 Hamburg"],
                                               "email": "rechnung@neu.example", "tax_id": "DE811907980",
                                               "country": "de", "logo": logo}})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["seller"] == {"name": "Neuer Name AG", "address": ["Hafenstr. 9", "20457 Hamburg"],
                                           "email": "rechnung@neu.example", "tax_id": "DE811907980",
                                           "country": "DE", "logo": logo}
    shop.pay("ORD-1", "pay_2", "2026-11-01T10:00:00Z")
    after = shop.invoice_text("pay_2")
    for expected in ("Neuer Name AG", "Hafenstr. 9", "20457 Hamburg", "rechnung@neu.example", "Tax ID: DE811907980"):
        assert expected in after, (expected, after)
    assert shop.invoice_text("pay_1") == before  # issued with the old seller
    # "" clears a field: the configured value applies again
    cleared = shop.put("/settings", {"seller": {"name": ""}}).get_json()["seller"]
    assert cleared["name"] == "" and cleared["tax_id"] == "DE811907980"
    shop.pay("ORD-1", "pay_3", "2026-12-01T10:00:00Z")
    assert "Beispiel GmbH" in shop.invoice_text("pay_3")


@pytest.mark.parametrize(("seller", "field"), [
    ({"logo": "http://example.com/logo.png"}, "seller.logo"),
    ({"logo": "data:text/html;base64,PGI+"}, "seller.logo"),
    ({"country": "XX"}, "seller.country"),
    ({"email": "not-an-email"}, "seller.email"),
    ({"name": None}, "seller.name"),
    ({"address": "one string"}, "seller.address"),
    ({"nickname": "x"}, "seller.nickname"),
])
def test_a_bad_seller_profile_is_a_400_naming_the_field(shop, seller, field):
    before = shop.http.get(f"{API}/settings", headers=HEADERS).get_json()
    answer = shop.put("/settings", {"seller": seller, "enabled": False})
    assert answer.status_code == 400
    assert field in answer.get_json()["error"]["fields"], answer.get_json()
    assert shop.http.get(f"{API}/settings", headers=HEADERS).get_json() == before


def test_a_number_format_without_seq_stops_the_app_with_what_to_do(make_app):
    with pytest.raises(RuntimeError, match=r"SELF_BILLING_INVOICE_NUMBER_FORMAT='INV-\{year\}' has no \{seq\}"):
        make_app(SELF_BILLING_INVOICE_NUMBER_FORMAT="INV-{year}")
    with pytest.raises(RuntimeError, match="may use only"):
        make_app(SELF_BILLING_CREDIT_NOTE_NUMBER_FORMAT="CN-{month}-{seq}")

"""E-invoices: every invoice and credit note PDF carries its EN 16931 data as Factur-X XML.

Through HTTP: the downloaded PDF holds ``factur-x.xml``, valid against the Factur-X EN 16931 XSD, with
the number, total, currency and parties the PDF shows, and the same text as a PDF without it. Then
the XML builder on hand-made frozen contents: taxed, reverse-charged, untaxed, hostile text, amounts.
"""
from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import facturx
import pytest
from flask import Flask
from sqlalchemy import select

from plugin.db import db
from plugin.invoices import cache, einvoice
from plugin.invoices.content import invoice_html
from plugin.invoices.documents import CreditNote, Invoice
from plugin.invoices.render import render_pdf
from plugin.ledger.tax import REVERSE_CHARGE_NOTE
from tests.conftest import Ledger
from tests.test_invoices import PREFIX, _agent_refund, address, cache_files, login, pdf_text
from tests.test_tax import BERLIN, PARIS, VAT19, Shop
from tests.parts import need_wkhtmltopdf

NS = {"rsm": einvoice.NS["rsm"], "ram": einvoice.NS["ram"], "udt": einvoice.NS["udt"], "qdt": einvoice.NS["qdt"]}
SETTLEMENT = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
TOTALS = f"{SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
AGREEMENT = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
LINE = "rsm:SupplyChainTradeTransaction/ram:IncludedSupplyChainTradeLineItem"
HOSTILE = '<b>Acme & "Sons"</b>'


def xml_root(xml: bytes) -> ET.Element:
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    return ET.fromstring(xml)


def value(root: ET.Element, path: str) -> str | None:
    found = root.find(path, NS)
    return None if found is None else found.text


def values(root: ET.Element, path: str) -> list[str | None]:
    return [element.text for element in root.findall(path, NS)]


def embedded(pdf: bytes) -> ET.Element:
    """The PDF's ``factur-x.xml`` (the way an accountant's tool reads it), checked against the XSD."""
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml", "no valid Factur-X XML in the PDF"
    return xml_root(xml)


# -- through HTTP ------------------------------------------------------------------------------


@pytest.fixture
def shop_app(make_app, tmp_path):
    need_wkhtmltopdf()
    app = make_app(SELF_BILLING_INVOICE_CACHE_DIR=str(tmp_path / "invoices"), SELF_BILLING_MERCHANT_NAME="Acme Tools Ltd",
                   SELF_BILLING_MERCHANT_ADDRESS="1 Market Way\nLondon EC1A 1AA", SELF_BILLING_MERCHANT_TAX_ID="GB123456789",
                   SELF_BILLING_MERCHANT_EMAIL="billing@acme.example.com")
    app.extensions["self_billing"].agent_loader = lambda: "agent@helpdesk.example.com"
    ledger = Ledger(app)
    ledger.settings(enabled=True)
    ledger.price("lifetime", product="Lifetime License", amount="199.00", currency="EUR", interval=None)
    ledger.order("ORD-1", price_point="lifetime", email="ann@example.com",
                 billing_address=address(name="Ann Lee", country="IE", region=""))
    ledger.payment("ORD-1", "pay_1", "2026-10-05T09:00:00Z")
    return app


@pytest.fixture
def customer(shop_app):
    client = shop_app.test_client()
    login(client, shop_app)
    return client


def test_the_invoice_pdf_carries_its_en16931_xml(shop_app, customer, tmp_path):
    pdf = customer.get(f"{PREFIX}/portal/payments/pay_1/invoice.pdf")
    assert pdf.status_code == 200
    text = pdf_text(pdf.data)
    number = re.search(r"Invoice number: (\S+)", text).group(1)
    root = embedded(pdf.data)
    assert value(root, "rsm:ExchangedDocument/ram:ID") == number
    assert value(root, "rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert value(root, f"{TOTALS}/ram:GrandTotalAmount") == "199.00" and "€199.00" in text
    assert value(root, f"{TOTALS}/ram:DuePayableAmount") == "0.00"  # paid already
    assert value(root, f"{SETTLEMENT}/ram:InvoiceCurrencyCode") == "EUR"
    assert value(root, f"{AGREEMENT}/ram:SellerTradeParty/ram:Name") == "Acme Tools Ltd"
    assert value(root, f"{AGREEMENT}/ram:BuyerTradeParty/ram:Name") == "Ann Lee"
    assert value(root, f"{AGREEMENT}/ram:SellerOrderReferencedDocument/ram:IssuerAssignedID") == "ORD-1"
    # a document from before taxes: not subject to VAT; the seller's country is the bill-to's (none configured)
    assert values(root, f"{SETTLEMENT}/ram:ApplicableTradeTax/ram:CategoryCode") == ["O"]
    assert value(root, f"{AGREEMENT}/ram:SellerTradeParty/ram:PostalTradeAddress/ram:CountryID") == "IE"

    # the embedded XML leaves the document's text as wkhtmltopdf made it
    with shop_app.app_context():
        content = db.session.execute(select(Invoice.content)).scalar_one()
        render_pdf(invoice_html(content), str(tmp_path / "plain.pdf"))
    assert text == pdf_text((tmp_path / "plain.pdf").read_bytes())


def test_a_credit_note_pdf_carries_its_en16931_xml(shop_app, customer):
    _agent_refund(shop_app, "pay_1", "25.50")
    [order] = customer.get(f"{PREFIX}/api/portal/purchases").get_json()["purchases"]
    [paid] = order["payments"]
    [note] = paid["credit_notes"]
    agent = shop_app.test_client().get(f"{PREFIX}/api/agent/credit-notes/{note['number']}/credit-note.pdf")
    assert agent.status_code == 200
    text = pdf_text(agent.data)
    assert f"Credit note number: {note['number']}" in text and "−€25.50" in text
    root = embedded(agent.data)
    assert value(root, "rsm:ExchangedDocument/ram:ID") == note["number"]
    assert value(root, "rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert value(root, f"{SETTLEMENT}/ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == paid["invoice_number"]
    assert value(root, f"{TOTALS}/ram:GrandTotalAmount") == "25.50"  # credit notes state positive amounts
    assert value(root, f"{SETTLEMENT}/ram:InvoiceCurrencyCode") == "EUR"
    assert value(root, f"{AGREEMENT}/ram:BuyerTradeParty/ram:Name") == "Ann Lee"
    assert value(root, f"{LINE}/ram:SpecifiedTradeProduct/ram:Name") == "Lifetime License"


def test_taxed_and_reverse_charged_invoices_state_their_vat(make_app, tmp_path):
    need_wkhtmltopdf()
    app = make_app(SELF_BILLING_INVOICE_CACHE_DIR=str(tmp_path / "taxed"), SELF_BILLING_MERCHANT_NAME="Beispiel GmbH",
                   SELF_BILLING_MERCHANT_TAX_ID="DE136695976", SELF_BILLING_MERCHANT_COUNTRY="DE")
    app.extensions["self_billing"].agent_loader = lambda: "agent@helpdesk.example.com"
    shop = Shop(app)
    assert shop.put("/settings", {"enabled": True, "tax": {"reverse_charge": True}}).status_code == 200
    shop.price("incl", VAT19)
    shop.order("ORD-DE", "incl", address=BERLIN)
    shop.order("ORD-FR", "incl", email="marie@example.com", address={**PARIS, "vat_id": "FR40303265045"})
    shop.pay("ORD-DE", "pay_de")
    shop.pay("ORD-FR", "pay_fr")
    agent = app.test_client()
    standard = embedded(agent.get(f"{PREFIX}/api/agent/payments/pay_de/invoice.pdf").data)
    assert header_tax(standard) == {"CalculatedAmount": "7.82", "TypeCode": "VAT", "BasisAmount": "41.18",
                                    "CategoryCode": "S", "RateApplicablePercent": "19.00"}
    reverse = embedded(agent.get(f"{PREFIX}/api/agent/payments/pay_fr/invoice.pdf").data)
    assert header_tax(reverse)["CategoryCode"] == "AE" and header_tax(reverse)["CalculatedAmount"] == "0.00"
    assert value(reverse, f"{AGREEMENT}/ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == "FR40303265045"
    assert values(reverse, "rsm:ExchangedDocument/ram:IncludedNote/ram:Content") == [REVERSE_CHARGE_NOTE]

    shop.refund("pay_de", "10.00")
    with app.app_context():
        number = db.session.execute(select(CreditNote.number)).scalar_one()
    note = embedded(agent.get(f"{PREFIX}/api/agent/credit-notes/{number}/credit-note.pdf").data)
    assert header_tax(note)["BasisAmount"] == "8.40" and header_tax(note)["CalculatedAmount"] == "1.60"
    assert value(note, f"{TOTALS}/ram:GrandTotalAmount") == "10.00"


def test_the_same_html_with_other_xml_is_another_cached_file(shop_app):
    html = "<html><body><p>one page</p></body></html>"
    first, second = einvoice.invoice_xml(untaxed()), einvoice.invoice_xml({**untaxed(), "number": "INV-2"})
    assert len({cache.cache_key(html), cache.cache_key(html, first), cache.cache_key(html, second)}) == 3
    with shop_app.app_context():
        paths = [cache.pdf_for_html(html, first), cache.pdf_for_html(html, second), cache.pdf_for_html(html, first)]
    assert paths[0] != paths[1] and paths[0] == paths[2]
    assert [value(embedded(path.read_bytes()), "rsm:ExchangedDocument/ram:ID") for path in paths[:2]] == [
        "INV-2026-000001", "INV-2"]


def test_xml_that_cannot_be_embedded_is_503_and_nothing_is_cached(shop_app, customer, monkeypatch, caplog):
    def broken(_pdf_path: str, _xml: bytes, output_path: str) -> None:
        with open(output_path, "wb") as half_written:  # a half-written output must not be kept either
            half_written.write(b"%PDF-1.4 half")
        raise ValueError("The Factur-X XML file is not valid against the official XML Schema Definition")

    monkeypatch.setattr(einvoice, "embed_file", broken)
    with caplog.at_level("ERROR", logger="plugin.invoices.cache"):
        response = customer.get(f"{PREFIX}/portal/payments/pay_1/invoice.pdf")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "pdf_failed"
    assert cache_files(shop_app) == [] and "e-invoice XML could not be embedded" in caplog.text
    monkeypatch.undo()
    assert embedded(customer.get(f"{PREFIX}/portal/payments/pay_1/invoice.pdf").data) is not None


# -- the XML from frozen content -----------------------------------------------------------------


SELLER = {"name": "Werkzeug GmbH", "address_lines": ["Hauptstr. 5", "10115 Berlin", "Deutschland"],
          "tax_id": "DE123456789", "email": "billing@werkzeug.example.com"}
BILL_TO = {"name": "Eva Schmidt", "line1": "Rue 1", "line2": "", "city": "Paris", "region": "",
           "postal_code": "75001", "country": "FR"}


def untaxed(**changes: Any) -> dict[str, Any]:
    """An invoice's content as issued before taxes (no tax keys at all)."""
    content = {
        "number": "INV-2026-000001", "order_id": "ORD-1", "payment_id": "pay_1", "issued_at": "2026-12-02T10:00:00Z",
        "paid_at": "2026-12-01T09:00:00Z", "locale": "en_US", "seller": dict(SELLER), "bill_to": dict(BILL_TO),
        "currency": "EUR", "total_cents": 4900,
        "lines": [{"description": "Pro Plan", "kind": "subscription", "period_start": "2026-12-01T09:00:00Z",
                   "period_end": "2027-01-01T09:00:00Z", "amount_cents": 4900}],
    }
    content.update(changes)
    return content


def taxed(category: str = "S") -> dict[str, Any]:
    """49.00 including 19% VAT (net 41.18, VAT 7.82); reverse-charged ("AE"): all of it net, no VAT."""
    reverse = category == "AE"
    net, tax = (4900, 0) if reverse else (4118, 782)
    content = untaxed(seller={**SELLER, "country": "DE"}, bill_to={**BILL_TO, "vat_id": "FR12345678901"})
    content["lines"][0].update(net_cents=net, tax_cents=tax, tax={"name": "VAT", "rate": "19.00", "inclusive": True})
    content.update(taxes=[{"name": "VAT", "rate": "0.00" if reverse else "19.00", "category": category,
                           "net_cents": net, "tax_cents": tax, "gross_cents": 4900}],
                   net_cents=net, tax_cents=tax, reverse_charge=reverse,
                   tax_note="Reverse charge: VAT to be accounted for by the recipient." if reverse else "")
    return content


def header_tax(root: ET.Element) -> dict[str, str | None]:
    [tax] = root.findall(f"{SETTLEMENT}/ram:ApplicableTradeTax", NS)
    return {child.tag.split("}")[1]: child.text for child in tax}


def test_a_taxed_invoice_states_net_vat_and_gross():
    root = xml_root(einvoice.invoice_xml(taxed("S")))
    assert header_tax(root) == {"CalculatedAmount": "7.82", "TypeCode": "VAT", "BasisAmount": "41.18",
                                "CategoryCode": "S", "RateApplicablePercent": "19.00"}
    assert value(root, f"{LINE}/ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice/ram:ChargeAmount") == "41.18"
    assert value(root, f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode") == "S"
    assert [value(root, f"{TOTALS}/ram:{name}") for name in ("LineTotalAmount", "TaxBasisTotalAmount", "TaxTotalAmount",
                                                             "GrandTotalAmount")] == ["41.18", "41.18", "7.82", "49.00"]
    assert root.find(f"{TOTALS}/ram:TaxTotalAmount", NS).get("currencyID") == "EUR"
    seller_vat = root.find(f"{AGREEMENT}/ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID", NS)
    assert (seller_vat.text, seller_vat.get("schemeID")) == ("DE123456789", "VA")
    assert value(root, f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod/ram:StartDateTime/"
                       "udt:DateTimeString") == "20261201"


def test_a_reverse_charged_invoice_is_category_ae_with_the_buyers_vat_id():
    root = xml_root(einvoice.invoice_xml(taxed("AE")))
    assert header_tax(root) == {"CalculatedAmount": "0.00", "TypeCode": "VAT", "ExemptionReason": "Reverse charge",
                                "BasisAmount": "49.00", "CategoryCode": "AE", "ExemptionReasonCode": "VATEX-EU-AE",
                                "RateApplicablePercent": "0.00"}
    buyer_vat = root.find(f"{AGREEMENT}/ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID", NS)
    assert (buyer_vat.text, buyer_vat.get("schemeID")) == ("FR12345678901", "VA")
    assert values(root, "rsm:ExchangedDocument/ram:IncludedNote/ram:Content") == [
        "Reverse charge: VAT to be accounted for by the recipient."]
    assert value(root, f"{TOTALS}/ram:TaxTotalAmount") == "0.00"


@pytest.mark.parametrize("content", [untaxed(), {**untaxed(), "taxes": [], "net_cents": 4900, "tax_cents": 0,
                                                 "reverse_charge": False, "tax_note": ""}], ids=["old", "no-tax"])
def test_an_untaxed_invoice_is_not_subject_to_vat(content):
    content = copy.deepcopy(content)
    content["bill_to"]["vat_id"] = "FR12345678901"
    root = xml_root(einvoice.invoice_xml(content))
    assert header_tax(root) == {"CalculatedAmount": "0.00", "TypeCode": "VAT", "ExemptionReason": "Not subject to VAT",
                                "BasisAmount": "49.00", "CategoryCode": "O", "ExemptionReasonCode": "VATEX-EU-O"}
    assert root.find(f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent",
                     NS) is None
    # no VAT identifiers beside "not subject to VAT": the seller's tax ID as identifier and tax registration
    assert root.find(f"{AGREEMENT}/ram:BuyerTradeParty/ram:SpecifiedTaxRegistration", NS) is None
    seller = root.find(f"{AGREEMENT}/ram:SellerTradeParty", NS)
    assert value(seller, "ram:ID") == "DE123456789"
    assert seller.find("ram:SpecifiedTaxRegistration/ram:ID", NS).get("schemeID") == "FC"
    assert value(seller, "ram:PostalTradeAddress/ram:CountryID") == "FR"  # no seller country: the bill-to's
    assert value(root, f"{TOTALS}/ram:GrandTotalAmount") == "49.00"


def test_a_credit_note_names_the_invoice_and_splits_like_it():
    content = {**{key: taxed()[key] for key in ("order_id", "payment_id", "locale", "seller", "bill_to", "currency")},
               "number": "CN-2026-000001", "invoice_number": "INV-2026-000001",
               "invoice_issued_at": "2026-12-02T10:00:00Z", "issued_at": "2026-12-03T10:00:00Z",
               "refunded_at": "2026-12-03T09:00:00Z", "description": "Pro Plan", "amount_cents": 1000,
               "reason": "Too expensive", "net_cents": 840, "tax_cents": 160, "reverse_charge": False, "tax_note": "",
               "taxes": [{"name": "VAT", "rate": "19.00", "category": "S", "net_cents": 840, "tax_cents": 160,
                          "gross_cents": 1000}]}
    root = xml_root(einvoice.credit_note_xml(content))
    assert value(root, "rsm:ExchangedDocument/ram:TypeCode") == "381"
    reference = f"{SETTLEMENT}/ram:InvoiceReferencedDocument"
    assert value(root, f"{reference}/ram:IssuerAssignedID") == "INV-2026-000001"
    assert value(root, f"{reference}/ram:FormattedIssueDateTime/qdt:DateTimeString") == "20261202"
    assert header_tax(root)["BasisAmount"] == "8.40" and header_tax(root)["CalculatedAmount"] == "1.60"
    assert value(root, f"{TOTALS}/ram:GrandTotalAmount") == "10.00"
    assert values(root, "rsm:ExchangedDocument/ram:IncludedNote/ram:Content") == ["Reason: Too expensive"]


def test_hostile_text_is_escaped_and_reads_back_the_same():
    content = untaxed(seller={**SELLER, "name": HOSTILE}, bill_to={**BILL_TO, "name": '<&>"', "line1": "a\x00b\x1fc"})
    content["lines"][0]["description"] = "</ram:Name><ram:Evil/>"
    xml = einvoice.invoice_xml(content)
    assert b"<ram:Evil" not in xml and b"&lt;&amp;&gt;" in xml
    root = xml_root(xml)
    assert value(root, f"{AGREEMENT}/ram:SellerTradeParty/ram:Name") == HOSTILE
    assert value(root, f"{AGREEMENT}/ram:BuyerTradeParty/ram:Name") == '<&>"'
    assert value(root, f"{AGREEMENT}/ram:BuyerTradeParty/ram:PostalTradeAddress/ram:LineOne") == "abc"
    assert value(root, f"{LINE}/ram:SpecifiedTradeProduct/ram:Name") == "</ram:Name><ram:Evil/>"


@pytest.mark.parametrize(("cents", "currency", "expected"), [
    (4900, "EUR", "49.00"), (0, "USD", "0.00"), (4900, "JPY", "49"), (4950, "JPY", "49.50"), (4900, "KWD", "49.000"),
])
def test_amounts_have_the_currencys_digits(cents, currency, expected):
    assert einvoice.amount(cents, currency) == expected


def test_embedding_keeps_the_pages(tmp_path):
    need_wkhtmltopdf()
    app = Flask("plain")
    app.config.update(SELF_BILLING_WKHTMLTOPDF="wkhtmltopdf", SELF_BILLING_PDF_TIMEOUT=30)
    with app.app_context():
        render_pdf("<html><body><p>Invoice INV-2026-000001 Total 49.00</p></body></html>", str(tmp_path / "p.pdf"))
    plain = Path(tmp_path / "p.pdf").read_bytes()
    both = einvoice.embed(plain, einvoice.invoice_xml(untaxed()))
    assert pdf_text(both) == pdf_text(plain) == "Invoice INV-2026-000001 Total 49.00"
    assert value(embedded(both), "rsm:ExchangedDocument/ram:ID") == "INV-2026-000001"

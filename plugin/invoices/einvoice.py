"""E-invoices: each document's EN 16931 data as Factur-X / ZUGFeRD XML, embedded in its PDF.

:func:`invoice_xml` (TypeCode 380) and :func:`credit_note_xml` (TypeCode 381, naming the invoice it
corrects) build UN/CEFACT CII XML in the Factur-X EN 16931 profile from a document's frozen
``content`` (:mod:`.issuing`) and nothing else, so the XML says what the PDF says and never changes.
:func:`embed` attaches it to a rendered PDF as ``factur-x.xml`` with the ``factur-x`` library, which
checks it against the profile's XSD first. :mod:`.cache` calls it after wkhtmltopdf, before the file
is put in place.

Tax (documents issued before taxes lack the keys; they are untaxed, all of it net):

- each ``taxes`` entry is one VAT breakdown with its category: ``S`` (standard rate), ``Z`` (zero
  rate) or ``AE`` (reverse charge: rate 0, exemption reason "Reverse charge", VATEX-EU-AE);
- a document without taxes is category ``O`` ("not subject to VAT", VATEX-EU-O, no rate); EN 16931
  then forbids VAT identifiers, so the seller's tax ID is given as its identifier and tax
  registration (BT-29, BT-32 ``FC``) and the buyer's VAT ID is left out;
- every line takes the breakdown of its rate (the only one when there is one).

The delivery date (BT-72) is an invoice's payment date and a credit note's refund date (when the
correction takes effect), and the bill-to country is the deliver-to country (BT-80). A party's country is mandatory in EN 16931: when the seller's is unknown the bill-to country is used,
and the other way round; with neither, the address is left out (the XSD allows it).

Amounts are integer cents written as decimals with the currency's digits (Babel), never floats;
text is escaped by :mod:`xml.etree.ElementTree`, with the characters XML cannot hold removed.
"""
from __future__ import annotations

import importlib.metadata
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import facturx
from babel.numbers import get_currency_precision

FLAVOR, LEVEL = "factur-x", "en16931"
#: EN 16931 (BT-24): the specification the document conforms to.
GUIDELINE = "urn:cen.eu:en16931:2017"
INVOICE, CREDIT_NOTE = "380", "381"
#: What the embedding depends on besides the XML (part of the cache key, see :mod:`.cache`).
EMBEDDER = f"factur-x {importlib.metadata.version('factur-x')} {FLAVOR} {LEVEL}"

NOT_SUBJECT = "O"
#: Exemption reasons (BT-120 text, BT-121 code) of the categories that must state one.
EXEMPTIONS = {
    "AE": ("Reverse charge", "VATEX-EU-AE"),
    NOT_SUBJECT: ("Not subject to VAT", "VATEX-EU-O"),
}
#: Categories whose rate is 0 whatever the entry says.
ZERO_RATED = {"Z", "AE"}

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

#: Characters XML 1.0 cannot carry (control characters other than tab, newline, carriage return).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# -- small builders ---------------------------------------------------------------------------


def _tag(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def _clean(value: Any) -> str:
    return _NOT_XML.sub("", str(value if value is not None else "")).strip()


def _add(parent: ET.Element, name: str, text: Any = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, _tag(name), attrib)
    if text is not None:
        element.text = _clean(text)
    return element


def _add_if(parent: ET.Element, name: str, text: Any, **attrib: str) -> None:
    if _clean(text):
        _add(parent, name, text, **attrib)


def amount(cents: int, currency: str) -> str:
    """Integer cents as the currency's decimal (``4900, "EUR" -> "49.00"``; ``"JPY" -> "49"``), with
    more places only when the amount has them."""
    value = Decimal(int(cents)).scaleb(-2)
    digits = get_currency_precision(currency)
    exact = value.quantize(Decimal(1).scaleb(-digits))
    return f"{exact if exact == value else value.quantize(Decimal('0.01'))}"


def _date(iso: str | None) -> str:
    """``2026-10-01T10:00:00Z`` as EN 16931's ``20261001`` (format 102)."""
    return _clean(iso)[:10].replace("-", "")


def _add_date(parent: ET.Element, name: str, iso: str | None, data_type: str = "udt") -> None:
    _add(_add(parent, name), f"{data_type}:DateTimeString", _date(iso), format="102")


# -- tax --------------------------------------------------------------------------------------


def breakdown(content: Mapping[str, Any], gross_cents: int) -> list[dict[str, Any]]:
    """The document's VAT breakdown: its ``taxes``, or one "not subject to VAT" entry of all of it."""
    taxes = content.get("taxes") or []
    if not taxes:
        return [{"category": NOT_SUBJECT, "rate": None, "net_cents": gross_cents, "tax_cents": 0}]
    return [{**entry, "rate": "0" if entry.get("category") in ZERO_RATED else entry.get("rate")}
            for entry in taxes]


def _rate(rate: Any) -> str:
    return f"{Decimal(str(rate)):.2f}"


def _entry_of(line: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The breakdown a line belongs to: the only one, else the one of the line's rate."""
    if len(entries) > 1 and line.get("tax"):
        rate = Decimal(str(line["tax"].get("rate", "0")))
        for entry in entries:
            if entry.get("rate") is not None and Decimal(str(entry["rate"])) == rate:
                return entry
    return entries[0]


def _add_header_tax(settlement: ET.Element, entry: Mapping[str, Any], currency: str) -> None:
    category = entry.get("category") or NOT_SUBJECT
    exemption = EXEMPTIONS.get(category)
    tax = _add(settlement, "ram:ApplicableTradeTax")
    _add(tax, "ram:CalculatedAmount", amount(entry["tax_cents"], currency))
    _add(tax, "ram:TypeCode", "VAT")
    if exemption:
        _add(tax, "ram:ExemptionReason", exemption[0])
    _add(tax, "ram:BasisAmount", amount(entry["net_cents"], currency))
    _add(tax, "ram:CategoryCode", category)
    if exemption:
        _add(tax, "ram:ExemptionReasonCode", exemption[1])
    if category != NOT_SUBJECT:
        _add(tax, "ram:RateApplicablePercent", _rate(entry.get("rate") or 0))


def _add_line_tax(settlement: ET.Element, entry: Mapping[str, Any]) -> None:
    category = entry.get("category") or NOT_SUBJECT
    tax = _add(settlement, "ram:ApplicableTradeTax")
    _add(tax, "ram:TypeCode", "VAT")
    _add(tax, "ram:CategoryCode", category)
    if category != NOT_SUBJECT:
        _add(tax, "ram:RateApplicablePercent", _rate(entry.get("rate") or 0))


# -- parties ----------------------------------------------------------------------------------


def _countries(content: Mapping[str, Any]) -> tuple[str, str]:
    """The seller's and the buyer's country codes, each falling back to the other's."""
    seller = _clean((content.get("seller") or {}).get("country")).upper()
    buyer = _clean((content.get("bill_to") or {}).get("country")).upper()
    return seller or buyer, buyer or seller


def _add_seller(agreement: ET.Element, seller: Mapping[str, Any], country: str, untaxed: bool) -> None:
    party = _add(agreement, "ram:SellerTradeParty")
    tax_id = _clean(seller.get("tax_id"))
    if tax_id and untaxed:  # a VAT ID (BT-31) may not stand beside "not subject to VAT": the seller ID names them
        _add(party, "ram:ID", tax_id)
    _add(party, "ram:Name", seller.get("name"))
    if country:
        address = _add(party, "ram:PostalTradeAddress")
        lines = [_clean(line) for line in seller.get("address_lines") or [] if _clean(line)]
        for name, text in zip(("ram:LineOne", "ram:LineTwo"), lines[:2]):
            _add(address, name, text)
        _add_if(address, "ram:LineThree", ", ".join(lines[2:]))
        _add(address, "ram:CountryID", country)
    if _clean(seller.get("email")):
        _add(_add(party, "ram:URIUniversalCommunication"), "ram:URIID", seller["email"], schemeID="EM")
    if tax_id:  # BT-31 (VAT ID), or BT-32 (tax registration) when untaxed
        _add(_add(party, "ram:SpecifiedTaxRegistration"), "ram:ID", tax_id, schemeID="FC" if untaxed else "VA")


def _add_buyer(agreement: ET.Element, bill_to: Mapping[str, Any], country: str, untaxed: bool) -> None:
    party = _add(agreement, "ram:BuyerTradeParty")
    _add(party, "ram:Name", bill_to.get("name"))
    if country:
        address = _add(party, "ram:PostalTradeAddress")
        for name, key in (("ram:PostcodeCode", "postal_code"), ("ram:LineOne", "line1"), ("ram:LineTwo", "line2"),
                          ("ram:CityName", "city")):
            _add_if(address, name, bill_to.get(key))
        _add(address, "ram:CountryID", country)
        _add_if(address, "ram:CountrySubDivisionName", bill_to.get("region"))
    if _clean(bill_to.get("vat_id")) and not untaxed:
        _add(_add(party, "ram:SpecifiedTaxRegistration"), "ram:ID", bill_to["vat_id"], schemeID="VA")


# -- the document -----------------------------------------------------------------------------


def _add_line(transaction: ET.Element, position: int, line: Mapping[str, Any], entry: Mapping[str, Any],
              currency: str) -> None:
    item = _add(transaction, "ram:IncludedSupplyChainTradeLineItem")
    _add(_add(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", position)
    _add(_add(item, "ram:SpecifiedTradeProduct"), "ram:Name", line.get("description") or "-")
    net = amount(line["net_cents"], currency)
    _add(_add(_add(item, "ram:SpecifiedLineTradeAgreement"), "ram:NetPriceProductTradePrice"), "ram:ChargeAmount", net)
    _add(_add(item, "ram:SpecifiedLineTradeDelivery"), "ram:BilledQuantity", "1", unitCode="C62")
    settlement = _add(item, "ram:SpecifiedLineTradeSettlement")
    _add_line_tax(settlement, entry)
    if line.get("period_start") and line.get("period_end"):
        period = _add(settlement, "ram:BillingSpecifiedPeriod")
        _add_date(period, "ram:StartDateTime", line["period_start"])
        _add_date(period, "ram:EndDateTime", line["period_end"])
    _add(_add(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation"), "ram:LineTotalAmount", net)


def _document(content: Mapping[str, Any], type_code: str, gross_cents: int,
              lines: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]], entries: Sequence[Mapping[str, Any]],
              notes: Sequence[str], supplied_at: str | None = None,
              referenced: tuple[str, str | None] | None = None) -> bytes:
    currency = _clean(content.get("currency")).upper()
    untaxed = any(entry.get("category") == NOT_SUBJECT for entry in entries)
    root = ET.Element(_tag("rsm:CrossIndustryInvoice"))
    _add(_add(_add(root, "rsm:ExchangedDocumentContext"), "ram:GuidelineSpecifiedDocumentContextParameter"),
         "ram:ID", GUIDELINE)
    header = _add(root, "rsm:ExchangedDocument")
    _add(header, "ram:ID", content["number"])
    _add(header, "ram:TypeCode", type_code)
    _add_date(header, "ram:IssueDateTime", content.get("issued_at"))
    for note in notes:
        if _clean(note):
            _add(_add(header, "ram:IncludedNote"), "ram:Content", note)

    transaction = _add(root, "rsm:SupplyChainTradeTransaction")
    net_total = 0
    for position, (line, entry) in enumerate(lines, start=1):
        _add_line(transaction, position, line, entry, currency)
        net_total += int(line["net_cents"])

    seller_country, buyer_country = _countries(content)
    agreement = _add(transaction, "ram:ApplicableHeaderTradeAgreement")
    _add_seller(agreement, content.get("seller") or {}, seller_country, untaxed)
    _add_buyer(agreement, content.get("bill_to") or {}, buyer_country, untaxed)
    if _clean(content.get("order_id")):
        _add(_add(agreement, "ram:SellerOrderReferencedDocument"), "ram:IssuerAssignedID", content["order_id"])
    delivery = _add(transaction, "ram:ApplicableHeaderTradeDelivery")
    if buyer_country:  # BT-80 (with BT-72, what Factur-X 1.08's BR-FX-EN-04 asks of lines without a period)
        _add(_add(_add(delivery, "ram:ShipToTradeParty"), "ram:PostalTradeAddress"), "ram:CountryID", buyer_country)
    if supplied_at:
        _add_date(_add(delivery, "ram:ActualDeliverySupplyChainEvent"), "ram:OccurrenceDateTime", supplied_at)

    settlement = _add(transaction, "ram:ApplicableHeaderTradeSettlement")
    _add_if(settlement, "ram:PaymentReference", content.get("payment_id"))
    _add(settlement, "ram:InvoiceCurrencyCode", currency)
    for entry in entries:
        _add_header_tax(settlement, entry, currency)
    tax_total = sum(int(entry["tax_cents"]) for entry in entries)
    totals = _add(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _add(totals, "ram:LineTotalAmount", amount(net_total, currency))
    _add(totals, "ram:TaxBasisTotalAmount", amount(net_total, currency))
    _add(totals, "ram:TaxTotalAmount", amount(tax_total, currency), currencyID=currency)
    _add(totals, "ram:GrandTotalAmount", amount(gross_cents, currency))
    _add(totals, "ram:TotalPrepaidAmount", amount(gross_cents, currency))  # paid (or refunded) already
    _add(totals, "ram:DuePayableAmount", amount(0, currency))
    if referenced is not None:
        document = _add(settlement, "ram:InvoiceReferencedDocument")
        _add(document, "ram:IssuerAssignedID", referenced[0])
        if referenced[1]:
            _add_date(document, "ram:FormattedIssueDateTime", referenced[1], data_type="qdt")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def invoice_xml(content: Mapping[str, Any]) -> bytes:
    """The invoice's CII XML (TypeCode 380) from its frozen content."""
    entries = breakdown(content, int(content["total_cents"]))
    lines = [{**line, "net_cents": line.get("net_cents", line["amount_cents"])} for line in content.get("lines") or []]
    paired = [(line, _entry_of(line, entries)) for line in lines]
    return _document(content, INVOICE, int(content["total_cents"]), paired, entries, [content.get("tax_note") or ""],
                     supplied_at=content.get("paid_at"))


def credit_note_xml(content: Mapping[str, Any]) -> bytes:
    """The credit note's CII XML (TypeCode 381, the corrected invoice as ``InvoiceReferencedDocument``):
    one line per VAT breakdown, amounts positive as EN 16931 writes credit notes."""
    entries = breakdown(content, int(content["amount_cents"]))
    lines = [({"description": content.get("description"), "net_cents": entry["net_cents"]}, entry)
             for entry in entries]
    reason = _clean(content.get("reason"))
    notes = [content.get("tax_note") or "", f"Reason: {reason}" if reason else ""]
    return _document(content, CREDIT_NOTE, int(content["amount_cents"]), lines, entries, notes,
                     supplied_at=content.get("refunded_at"), referenced=(content["invoice_number"], content.get("invoice_issued_at")))


def embed(pdf_bytes: bytes, xml_bytes: bytes) -> bytes:
    """The PDF with ``xml_bytes`` attached as ``factur-x.xml`` (and Factur-X XMP metadata); raises when
    the XML fails the Factur-X EN 16931 XSD. The pages, and so the text, are the PDF's own."""
    return facturx.generate_from_binary(pdf_bytes, xml_bytes, flavor=FLAVOR, level=LEVEL, check_xsd=True)


def embed_file(pdf_path: str, xml_bytes: bytes, output_path: str) -> None:
    """:func:`embed` from one PDF file into another (the cache's render). factur-x's in-memory form
    copies the PDF into a temporary file and reads it back through its wrapper, a few thousand small
    reads: about 1 ms of a first render, spared here."""
    facturx.generate_from_file(pdf_path, xml_bytes, flavor=FLAVOR, level=LEVEL, check_xsd=True,
                               output_pdf_file=output_path)

"""Tax on a price: the rule a price point carries, what a payment charges, and how a charge splits.

Pure functions on integer cents and :class:`~decimal.Decimal` rates; no database, no Flask.

- A price point may carry a rule (``{"name": "VAT", "rate": "19.00", "inclusive": true}``). An
  *inclusive* price already contains the tax; an *exclusive* one has it added on top, so the
  customer is charged ``amount + tax``.
- **Reverse charge** (Directive 2006/112/EC art. 196): when the merchant turns it on, a business
  customer (a bill-to address with a VAT ID) in another EU country than the seller's is charged no
  VAT; the invoice says that the customer accounts for it. An inclusive price is charged as it is
  (all of it net), an exclusive one without its tax.
- :func:`split` divides what was charged into net and tax per rate, rounding **once per
  document** (half up, to the cent), so the lines always add up to the total charged.
- :func:`credit_split` divides a refund the same way, in proportion to the invoice it corrects,
  counting the credit notes already issued so that refunds adding up to the whole payment reverse
  exactly the invoice's tax.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

#: The member states of the European Union (ISO 3166-1 alpha-2; Greece is GR here, EL in VAT IDs).
EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})

#: The wording a reverse-charged document carries (art. 226(11a) asks for the mention).
REVERSE_CHARGE_NOTE = ("Reverse charge: VAT to be accounted for by the recipient "
                       "(Article 196, Council Directive 2006/112/EC).")

#: EN 16931 VAT category codes: standard rate, zero rate, reverse charge.
STANDARD, ZERO, REVERSE_CHARGE = "S", "Z", "AE"


@dataclass(frozen=True)
class TaxRule:
    """A price point's tax: its name on documents, its rate in percent, and whether the price contains it."""

    name: str
    rate: Decimal
    inclusive: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rate": f"{self.rate:.2f}", "inclusive": self.inclusive}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TaxRule | None:
        if not data:
            return None
        return cls(name=str(data["name"]), rate=Decimal(str(data["rate"])), inclusive=bool(data["inclusive"]))


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def tax_on_net(net_cents: int, rate: Decimal) -> int:
    """The tax on a net amount, rounded half up to the cent."""
    return _round(Decimal(net_cents) * rate / 100)


def tax_in_gross(gross_cents: int, rate: Decimal) -> int:
    """The tax contained in a gross amount, rounded half up to the cent."""
    return _round(Decimal(gross_cents) * rate / (100 + rate))


def reverse_charge_applies(enabled: bool, seller_country: str, bill_to: Mapping[str, Any] | None) -> bool:
    """Whether a document to ``bill_to`` is reverse-charged: the merchant turned it on, both parties are
    in the EU, in different countries, and the customer gave a VAT ID."""
    bill_to = bill_to or {}
    buyer_country = str(bill_to.get("country") or "").upper()
    seller_country = (seller_country or "").upper()
    return bool(
        enabled and bill_to.get("vat_id") and seller_country in EU_COUNTRIES
        and buyer_country in EU_COUNTRIES and buyer_country != seller_country
    )


def charge_cents(price_cents: int, rule: TaxRule | None, reverse_charge: bool) -> int:
    """What the customer is charged for a price: exclusive tax is added unless reverse-charged."""
    if rule is None or rule.inclusive or reverse_charge:
        return price_cents
    return price_cents + tax_on_net(price_cents, rule.rate)


@dataclass(frozen=True)
class Split:
    """An amount divided into net and tax: per rate (``taxes``) and in all."""

    taxes: list[dict[str, Any]]
    net_cents: int
    tax_cents: int
    gross_cents: int
    reverse_charge: bool

    @property
    def note(self) -> str:
        return REVERSE_CHARGE_NOTE if self.reverse_charge else ""


def _category(rule: TaxRule, reverse_charge: bool) -> str:
    if reverse_charge:
        return REVERSE_CHARGE
    return ZERO if rule.rate == 0 else STANDARD


def split(gross_cents: int, rule: TaxRule | None, reverse_charge: bool = False) -> Split:
    """Divide a charge into net and tax. Without a rule there is no tax line (all of it is net).

    An exclusive price's net is the amount whose tax brings it to the charge: since the tax of a
    net N rounds to within half a cent, ``round(gross * 100 / (100 + rate))`` gives N back.
    """
    if rule is None:
        return Split([], gross_cents, 0, gross_cents, False)
    rate = Decimal(0) if reverse_charge else rule.rate
    tax = tax_in_gross(gross_cents, rate)
    entry = {"name": rule.name, "rate": f"{rate:.2f}", "category": _category(rule, reverse_charge),
             "net_cents": gross_cents - tax, "tax_cents": tax, "gross_cents": gross_cents}
    return Split([entry], gross_cents - tax, tax, gross_cents, reverse_charge)


def credit_split(amount_cents: int, invoice_taxes: Sequence[Mapping[str, Any]], invoice_total_cents: int,
                 credited_before_cents: int, reverse_charge: bool = False) -> Split:
    """Divide a refund of ``amount_cents`` like the invoice it corrects.

    Each rate's share of the tax is ``round(tax * credited / total)`` counted cumulatively: this note
    reverses what the refunds so far reach minus what earlier notes reversed, so notes that add up
    to the payment reverse exactly the invoice's tax (never a cent more or less).
    """
    if not invoice_taxes or invoice_total_cents <= 0:
        return Split([], amount_cents, 0, amount_cents, False)
    after = credited_before_cents + amount_cents
    taxes, gross_left = [], amount_cents
    for position, entry in enumerate(invoice_taxes):
        share = Decimal(entry["gross_cents"]) / invoice_total_cents
        if position == len(invoice_taxes) - 1:
            gross = gross_left
        else:
            gross = _round(share * after) - _round(share * credited_before_cents)
        gross_left -= gross
        tax = (_round(Decimal(entry["tax_cents"]) * after / invoice_total_cents)
               - _round(Decimal(entry["tax_cents"]) * credited_before_cents / invoice_total_cents))
        taxes.append({"name": entry["name"], "rate": entry["rate"], "category": entry["category"],
                      "net_cents": gross - tax, "tax_cents": tax, "gross_cents": gross})
    tax_total = sum(item["tax_cents"] for item in taxes)
    return Split(taxes, amount_cents - tax_total, tax_total, amount_cents, reverse_charge)

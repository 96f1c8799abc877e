"""``flask self-billing stripe-import``: backfill leads, purchases and payments from Stripe.

Two lists, in this order: subscriptions (every status, each with its paid invoices), then
succeeded one-time PaymentIntents. Each object is applied through :mod:`.sync` (idempotent: safe
to run twice) and the list's cursor, the last id done, is kept in ``sb_stripe_links`` (kind
``cursor``) after each one, so an interrupted run goes on where it stopped. A run that reaches the
end of both lists forgets the cursors: the next run reads everything again (and changes nothing
that is already right).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...db import db
from ..processor import gateway
from . import links
from .client import plain
from .gateway import StripeGateway
from .sync import Sync

LISTS = ("subscriptions", "payment_intents")
PAGE = 100


@dataclass
class ImportReport:
    seen: dict[str, int] = field(default_factory=lambda: {name: 0 for name in LISTS})
    applied: dict[str, int] = field(default_factory=lambda: {name: 0 for name in LISTS})
    resumed_after: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{self.seen['subscriptions']} subscription(s) ({self.applied['subscriptions']} imported)",
                 f"{self.seen['payment_intents']} PaymentIntent(s) "
                 f"({self.applied['payment_intents']} one-time purchase(s) imported)"]
        resumed = "".join(f" Resumed {name} after {last}." for name, last in self.resumed_after.items())
        return "Stripe import done: " + ", ".join(parts) + "." + resumed


def _page(processor: StripeGateway, name: str, after: str | None) -> tuple[list[dict], bool]:
    params: dict = {"limit": PAGE}
    if name == "subscriptions":
        params["status"] = "all"
    if after:
        params["starting_after"] = after
    listed = plain(processor._call(f"listing {name}", getattr(processor.api, name).list, params=params))
    return list(listed.get("data") or []), bool(listed.get("has_more"))


def run_import(progress: Callable[[str], None] = lambda line: None, *, restart: bool = False) -> ImportReport:
    """Import everything from Stripe; ``progress`` gets a line after each object."""
    processor = gateway()
    if not isinstance(processor, StripeGateway):
        processor = StripeGateway()
    sync = Sync(processor, notify=False)  # an import loads history: no receipts
    report = ImportReport()
    if restart:
        for name in LISTS:
            links.drop("cursor", name)
        db.session.commit()
    for name in LISTS:
        after = links.get("cursor", name)
        if after:
            report.resumed_after[name] = after
        while True:
            items, more = _page(processor, name, after)
            for item in items:
                if name == "subscriptions":
                    done = sync.subscription(item, invoices=True) is not None
                else:
                    done = sync.payment_intent(item) is not None
                report.seen[name] += 1
                report.applied[name] += int(done)
                after = item["id"]
                links.put("cursor", name, after)
                db.session.commit()
                progress(f"{name}: {report.seen[name]} read, {report.applied[name]} imported (last {after})")
            if not more or not items:
                break
    for name in LISTS:
        links.drop("cursor", name)
    db.session.commit()
    return report

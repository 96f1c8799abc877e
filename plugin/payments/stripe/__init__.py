"""Stripe as the payment processor and as a source of the ledger (docs/stripe.md).

- :mod:`.gateway`: the adapter (refunds, cancellations, cards) behind the gateway interface;
- :mod:`.webhook`: ``POST {prefix}/webhooks/stripe``, signed events applied once each;
- :mod:`.importer`: ``flask self-billing stripe-import``, the backfill;
- :mod:`.sync`: how a Stripe customer, subscription, invoice, PaymentIntent or refund becomes ledger rows;
- :mod:`.models`, :mod:`.links`: the links between our rows and Stripe's ids.

Needs the optional ``stripe`` package (``pip install 'self-billing[stripe]'``).
"""
from __future__ import annotations

from .gateway import StripeGateway, make_gateway

__all__ = ["StripeGateway", "make_gateway"]

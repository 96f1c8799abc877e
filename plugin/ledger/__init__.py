"""The billing ledger: leads, price points, purchases, payments, refunds, cards, settings."""

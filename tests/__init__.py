"""Self-Billing test suite."""

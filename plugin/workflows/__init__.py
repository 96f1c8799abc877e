"""Cancellation and refund requests driven by `transitions` state machines."""

"""Helpdesk tickets for requests handled by hand, and the adapter a host helpdesk implements."""

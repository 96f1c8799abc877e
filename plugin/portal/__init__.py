"""The customer portal pages: Order-ID login and the My Orders tab, standalone or in the helpdesk."""

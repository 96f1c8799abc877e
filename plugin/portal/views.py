"""HTML pages of the customer portal."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("self_billing_portal", __name__)

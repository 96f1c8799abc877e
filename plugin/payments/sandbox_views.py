"""HTTP side of the sandbox processor: the card token endpoint."""
from __future__ import annotations

from flask import Blueprint

from ..api.common import install_json_errors

bp = Blueprint("self_billing_sandbox", __name__)
install_json_errors(bp)

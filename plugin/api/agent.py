"""The agent JSON API (contract: ../shared/contract.md)."""
from __future__ import annotations

from flask import Blueprint

from .common import install_json_errors

bp = Blueprint("self_billing_api_agent", __name__)
install_json_errors(bp)

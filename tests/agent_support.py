"""Helpers of the agent tests: a host whose agents sign in with bearer tokens, and small actions.

The host's ``agent_loader`` reads ``Authorization: Bearer <token>`` the way the
demo host does; a customer's portal session is not an agent.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, request
from sqlalchemy import select

from plugin.db import db
from plugin.ledger.models import Payment, Purchase

def days_ago(days: int) -> str:
    """An ISO time ``days`` before now: payments stay inside their refund window whenever tests run."""
    return (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


AGENTS = {"tok-alice": "alice@helpdesk.test", "tok-bob": "bob@helpdesk.test"}
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}


def bearer_agent() -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return AGENTS.get(header[len("Bearer "):].strip())


@pytest.fixture
def agent_app(make_app) -> Flask:
    return make_app(agent_loader=bearer_agent)


@pytest.fixture
def agent_client(agent_app):
    return agent_app.test_client()


class Shop:
    """Test data and customer actions through the public Python APIs."""

    def __init__(self, app: Flask, ledger: Any) -> None:
        self.app = app
        self.ledger = ledger

    def subscription(self, order_id: str = "ORD-1001", payment_id: str = "PAY-1", email: str = "ann@example.com",
                     paid_at: str | None = None, **price: Any) -> None:
        paid_at = paid_at or days_ago(5)
        self.ledger.price("pro-monthly", **price)
        self.ledger.order(order_id, price_point="pro-monthly", email=email, purchased_at=paid_at)
        self.ledger.payment(order_id, payment_id, paid_at)

    def one_time(self, order_id: str = "ORD-2001", payment_id: str = "PAY-21", email: str = "ann@example.com",
                 paid_at: str | None = None) -> None:
        paid_at = paid_at or days_ago(5)
        self.ledger.price("ebook", product="Cookbook", amount="100.00", interval=None)
        self.ledger.order(order_id, price_point="ebook", email=email, purchased_at=paid_at)
        self.ledger.payment(order_id, payment_id, paid_at)

    def customer_cancels(self, order_id: str = "ORD-1001", reason: str = "Too expensive") -> dict[str, Any]:
        from plugin.presenters import request_to_dict
        from plugin.workflows.service import submit_cancellation

        with self.app.app_context():
            purchase = db.session.execute(select(Purchase).where(Purchase.order_id == order_id)).scalar_one()
            return request_to_dict(submit_cancellation(purchase, reason=reason))

    def customer_asks_refund(self, payment_id: str = "PAY-1", reason: str = "Did not use it") -> dict[str, Any]:
        from plugin.presenters import request_to_dict
        from plugin.workflows.service import submit_refund

        with self.app.app_context():
            payment = db.session.execute(select(Payment).where(Payment.payment_id == payment_id)).scalar_one()
            return request_to_dict(submit_refund(payment, reason=reason))

    def portal_request(self, path: str, order_id: str = "ORD-1001", email: str = "ann@example.com",
                       reason: str = "") -> dict[str, Any]:
        """A customer logs in to the portal API and sends a cancellation or refund request (202)."""
        client = self.app.test_client()
        login = client.post("/billing/api/portal/login", json={"order_id": order_id, "email": email})
        assert login.status_code == 200, login.get_json()
        response = client.post("/billing/api/portal" + path, json={"reason": reason} if reason else {},
                               headers={"X-CSRFToken": login.get_json()["csrf_token"]})
        assert response.status_code == 202, response.get_json()
        return response.get_json()["request"]

    def emails(self, order_id: str, kind: str | None = None) -> list[Any]:
        from plugin.notifications.outbox import list_emails

        with self.app.app_context():
            rows = list_emails(order_id=order_id)
            return [row for row in rows if kind is None or row.kind == kind]


@pytest.fixture
def shop(agent_app) -> Shop:
    from tests.conftest import Ledger

    ledger = Ledger(agent_app)
    ledger.settings(enabled=True, cancellation={"mode": "request"}, refunds={"mode": "request"},
                    department="Billing")
    return Shop(agent_app, ledger)

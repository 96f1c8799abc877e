"""The HelpdeskAdapter interface, driven by a fake host helpdesk written against the public API only.

The fake records every call the plugin makes and gives each ticket its own id
("HD-1", ...); its agents' replies come back through ``plugin.tickets.agent_replied``.
"""
from __future__ import annotations

from typing import Any

import pytest

from plugin import tickets as self_billing_tickets
from plugin.errors import InvalidInput, NotFound
from plugin.tickets.adapter import TicketData
from tests.agent_support import ALICE, Shop, agent_app, bearer_agent, shop  # noqa: F401  (fixtures)

API = "/billing/api/agent"


class FakeHostHelpdesk:
    """A host helpdesk: keeps its own tickets and records what the plugin told it."""

    instances: list[FakeHostHelpdesk] = []

    def __init__(self, fail_on: str | None = None) -> None:
        self.tickets: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail_on = fail_on
        FakeHostHelpdesk.instances.append(self)

    def open_ticket(self, ticket: TicketData) -> str | None:
        self.calls.append(("open_ticket", ticket))
        if self.fail_on == "open_ticket":
            raise ConnectionError("host helpdesk is down")
        ref = f"HD-{len(self.tickets) + 1}"
        self.tickets[ref] = {"subject": ticket.subject, "status": "open", "thread": [ticket.body]}
        return ref

    def add_message(self, external_ref: str, author: str, body: str, internal: bool) -> None:
        self.calls.append(("add_message", (external_ref, author, body, internal)))
        self.tickets[external_ref]["thread"].append(f"{author}: {body}")

    def close_ticket(self, external_ref: str, note: str) -> None:
        self.calls.append(("close_ticket", (external_ref, note)))
        if self.fail_on == "close_ticket":
            raise RuntimeError("host refused to close")
        self.tickets[external_ref]["status"] = "closed"


def make_fake() -> FakeHostHelpdesk:
    """The factory named in SELF_BILLING_HELPDESK_ADAPTER."""
    return FakeHostHelpdesk()


@pytest.fixture
def host(make_app):
    FakeHostHelpdesk.instances.clear()
    app = make_app(agent_loader=bearer_agent,
                   SELF_BILLING_HELPDESK_ADAPTER="tests.test_helpdesk_adapter:make_fake")
    from tests.conftest import Ledger

    ledger = Ledger(app)
    ledger.settings(enabled=True, cancellation={"mode": "request"}, refunds={"mode": "request"},
                    department="Billing")
    shop = Shop(app, ledger)
    shop.subscription()
    (helpdesk,) = FakeHostHelpdesk.instances
    return app, shop, helpdesk


class HelpdeskWithoutClose:
    """A host's adapter that forgot ``close_ticket``."""

    def open_ticket(self, ticket: TicketData) -> str | None:
        return "HD-1"

    def add_message(self, external_ref: str, author: str, body: str, internal: bool) -> None:
        return None


def make_incomplete() -> HelpdeskWithoutClose:
    return HelpdeskWithoutClose()


@pytest.mark.parametrize("spec", ["tests.test_helpdesk_adapter:make_incomplete", HelpdeskWithoutClose()])
def test_an_adapter_missing_a_method_fails_at_start_not_at_the_first_resolution(make_app, spec):
    """The host hears of the missing method when the app starts, not when a customer's request is resolved."""
    with pytest.raises(RuntimeError, match="lacks open_ticket, add_message or close_ticket"):
        make_app(SELF_BILLING_HELPDESK_ADAPTER=spec)


def test_request_opens_a_ticket_in_the_host_helpdesk(host):
    app, shop, helpdesk = host
    request = shop.customer_cancels(reason="Budget cuts")
    assert [name for name, _ in helpdesk.calls] == ["open_ticket"]
    data = helpdesk.calls[0][1]
    assert data.subject == "Cancellation request for order ORD-1001"
    assert (data.department, data.order_id, data.email, data.request_type) == (
        "Billing", "ORD-1001", "ann@example.com", "cancellation")
    assert data.request_id == request["id"] and data.ticket_id == request["ticket_id"]
    assert "Budget cuts" in data.body and "We have received your cancellation request" in data.body

    detail = app.test_client().get(f"{API}/tickets/{request['ticket_id']}", headers=ALICE).get_json()
    assert detail["external_ref"] == "HD-1"


def test_desk_reply_and_resolution_reach_the_host(host):
    app, shop, helpdesk = host
    ticket_id = shop.customer_cancels()["ticket_id"]
    client = app.test_client()
    client.post(f"{API}/tickets/{ticket_id}/replies", headers=ALICE, json={"message": "On it."})
    client.post(f"{API}/tickets/{ticket_id}/events", headers=ALICE, json={"event": "cancel_now"})

    names = [name for name, _ in helpdesk.calls]
    assert names == ["open_ticket", "add_message", "close_ticket"]
    assert helpdesk.calls[1][1] == ("HD-1", "alice@helpdesk.test", "On it.", False)
    ref, note = helpdesk.calls[2][1]
    assert ref == "HD-1" and note == "Resolved: Cancelled (Cancelled now, by alice@helpdesk.test)."
    assert helpdesk.tickets["HD-1"]["status"] == "closed"


def test_host_agent_reply_comes_back_through_the_public_function(host):
    app, shop, helpdesk = host
    ticket_id = shop.customer_cancels()["ticket_id"]
    with app.app_context():
        ticket = self_billing_tickets.agent_replied("HD-1", "carol@host.test", "Your plan ends today.")
        assert ticket.id == ticket_id
    detail = app.test_client().get(f"{API}/tickets/{ticket_id}", headers=ALICE).get_json()
    assert (detail["messages"][-1]["author"], detail["messages"][-1]["body"]) == (
        "carol@host.test", "Your plan ends today.")
    assert [name for name, _ in helpdesk.calls] == ["open_ticket"]  # not echoed back to the host
    assert shop.emails("ORD-1001", "agent_reply") == []  # the host mails its own replies

    with app.app_context():
        self_billing_tickets.agent_replied("HD-1", "carol@host.test", "And a copy by email.",
                                           notify_customer=True)
    assert len(shop.emails("ORD-1001", "agent_reply")) == 1


def test_agent_replied_refuses_unknown_refs_and_bad_bodies(host):
    app, shop, helpdesk = host
    shop.customer_cancels()
    with app.app_context():
        with pytest.raises(NotFound):
            self_billing_tickets.agent_replied("HD-404", "carol@host.test", "hello")
        with pytest.raises(InvalidInput):
            self_billing_tickets.agent_replied("HD-1", "carol@host.test", "  ")
        with pytest.raises(InvalidInput):
            self_billing_tickets.agent_replied("HD-1", "carol@host.test", "x" * 10_001)
        with pytest.raises(InvalidInput):
            self_billing_tickets.agent_replied("HD-1", "", "hello")


def test_a_host_helpdesk_that_fails_does_not_stop_the_request(make_app):
    failing = FakeHostHelpdesk(fail_on="open_ticket")
    app = make_app(agent_loader=bearer_agent, SELF_BILLING_HELPDESK_ADAPTER=failing)
    from tests.conftest import Ledger

    ledger = Ledger(app)
    ledger.settings(enabled=True, cancellation={"mode": "request"})
    shop = Shop(app, ledger)
    shop.subscription()
    request = shop.customer_cancels()
    assert request["state"] == "ticketed"
    detail = app.test_client().get(f"{API}/tickets/{request['ticket_id']}", headers=ALICE).get_json()
    assert detail["external_ref"] is None
    note = detail["messages"][-1]
    assert note["internal"] is True and "host helpdesk is down" in note["body"]
    # agents still resolve it from the plugin's own ticket
    response = app.test_client().post(f"{API}/tickets/{request['ticket_id']}/events", headers=ALICE,
                                      json={"event": "cancel_now"})
    assert response.status_code == 200 and response.get_json()["status"] == "closed"


def test_builtin_store_is_the_default(agent_app, shop):
    shop.subscription()
    request = shop.customer_cancels()
    detail = agent_app.test_client().get(f"{API}/tickets/{request['ticket_id']}", headers=ALICE).get_json()
    assert detail["external_ref"] is None
    assert [m["internal"] for m in detail["messages"]] == [False]


@pytest.mark.parametrize("spec", ["nonsense", "tests.nowhere:make", "tests.test_helpdesk_adapter:missing",
                                  "tests.test_helpdesk_adapter:API"])
def test_bad_adapter_setting_fails_at_start(make_app, spec):
    with pytest.raises(RuntimeError, match="SELF_BILLING_HELPDESK_ADAPTER"):
        make_app(SELF_BILLING_HELPDESK_ADAPTER=spec)

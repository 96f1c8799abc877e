"""The interface a host helpdesk implements to take Self-Billing's tickets into its own system.

Self-Billing always keeps its own :class:`~plugin.tickets.models.Ticket` row for
a request handled by hand: that row is what the agent API and the agent desk
show, and what the request's audit trail points at. The configured adapter is
told of each step as well, so a real helpdesk can mirror the ticket:

* :meth:`HelpdeskAdapter.open_ticket` gets a :class:`TicketData` and returns the
  id the host gave the ticket (kept as ``Ticket.external_ref``), or None;
* :meth:`HelpdeskAdapter.add_message` and :meth:`HelpdeskAdapter.close_ticket`
  get that ``external_ref`` back.

When an agent answers inside the host's helpdesk, the host tells Self-Billing
with :func:`plugin.tickets.agent_replied`.

``SELF_BILLING_HELPDESK_ADAPTER`` picks the adapter: ``"builtin"`` (the default,
:class:`BuiltinTicketStore`, which needs nothing more than the plugin's own
rows), ``"package.module:factory"`` (a callable returning an adapter), or an
adapter object. Adapter calls run inside the caller's database transaction, each
in a savepoint: an adapter may write to the same database and its rows commit
with the step. An adapter that raises has its writes rolled back to the
savepoint; the error is logged and noted on the plugin's ticket (internal), and
the customer's request goes on, since the plugin's ticket is complete on its own.
See ``docs/helpdesk-adapter.md``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from flask import current_app


@dataclass(frozen=True)
class TicketData:
    """Everything a host helpdesk needs to open its own copy of a ticket."""

    #: Self-Billing's own ticket id (the agent API's ``/tickets/<id>``).
    ticket_id: int
    subject: str
    #: The department named in the merchant's settings, e.g. "Billing".
    department: str
    #: The opening message: purchase, payment, the customer's reason, what they were told.
    body: str
    order_id: str
    email: str
    first_name: str
    last_name: str
    #: "cancellation" or "refund"
    request_type: str
    #: The request's public id (R's ``id``).
    request_id: str


@runtime_checkable
class HelpdeskAdapter(Protocol):
    """What a host helpdesk implements. Every method runs inside the caller's transaction."""

    def open_ticket(self, ticket: TicketData) -> str | None:
        """Open the ticket in the host's helpdesk; return the host's id for it (or None)."""
        ...

    def add_message(self, external_ref: str, author: str, body: str, internal: bool) -> None:
        """Add a message (an agent's reply, a system note) to the host's ticket."""
        ...

    def close_ticket(self, external_ref: str, note: str) -> None:
        """Close the host's ticket; ``note`` says how the request was resolved."""
        ...


class BuiltinTicketStore:
    """The default adapter: the plugin's own ticket rows are the helpdesk.

    The agent API and the agent desk read those rows directly, so there is
    nothing else to tell; the demo host uses this.
    """

    name = "builtin"

    def open_ticket(self, ticket: TicketData) -> str | None:
        return None

    def add_message(self, external_ref: str, author: str, body: str, internal: bool) -> None:
        return None

    def close_ticket(self, external_ref: str, note: str) -> None:
        return None


def load_adapter(spec: Any) -> HelpdeskAdapter:
    """An adapter from the config value: "builtin", "package.module:factory" or an adapter."""
    if spec is None or spec == "builtin":
        return BuiltinTicketStore()
    if not isinstance(spec, str):
        adapter = spec
    else:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise RuntimeError(
                f"SELF_BILLING_HELPDESK_ADAPTER={spec!r} is not understood: "
                "use 'builtin' or 'package.module:factory'."
            )
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise RuntimeError(
                f"SELF_BILLING_HELPDESK_ADAPTER={spec!r} could not be loaded ({exc}); "
                "check the module path and the factory's name."
            ) from exc
        if not callable(factory):
            raise RuntimeError(
                f"SELF_BILLING_HELPDESK_ADAPTER={spec!r} names {factory!r}, which is not a factory; "
                "name a callable that returns the adapter."
            )
        adapter = factory()
    if not isinstance(adapter, HelpdeskAdapter):
        raise RuntimeError(
            f"SELF_BILLING_HELPDESK_ADAPTER gave {adapter!r}, which lacks open_ticket, "
            "add_message or close_ticket."
        )
    return adapter


def get_adapter() -> HelpdeskAdapter:
    """The helpdesk adapter of the current app (loaded once per app)."""
    state = current_app.extensions["self_billing"]
    adapter = state.helpdesk_adapter
    if adapter is None:
        adapter = load_adapter(current_app.config.get("SELF_BILLING_HELPDESK_ADAPTER", "builtin"))
        state.helpdesk_adapter = adapter
    return adapter

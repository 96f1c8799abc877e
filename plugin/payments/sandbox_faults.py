"""Fault injection on the sandbox processor: make its next refund, cancel, resume or attach_card calls fail.

The merchant API's ``GET``/``PUT /api/admin/sandbox/faults`` and tests call these. They exist only
while the configured gateway is the sandbox; with any other processor they answer 404.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StrictInt

from ..errors import NotFound
from ..validation import PartialSchema, validate
from . import get_gateway
from .sandbox import SandboxGateway


class FaultsIn(PartialSchema):
    """Injected sandbox failures: the next n calls of each kind fail as an outage."""

    refund: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    cancel: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    resume: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    attach_card: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None


def require_sandbox(what: str = "Fault injection") -> SandboxGateway:
    """The sandbox gateway, or a 404 saying ``what`` exists only with the sandbox processor."""
    gateway = get_gateway()
    if not isinstance(gateway, SandboxGateway):
        raise NotFound(
            f"{what} exists only on the sandbox processor, and this app uses "
            f"the {getattr(gateway, 'name', 'configured')!r} gateway (SELF_BILLING_GATEWAY).",
            code="sandbox_not_in_use",
        )
    return gateway


def get_sandbox_faults() -> dict[str, int]:
    """How many of the next refund, cancel, resume and attach_card calls the sandbox will fail."""
    return require_sandbox().set_faults({})


def set_sandbox_faults(data: FaultsIn | Mapping[str, Any]) -> dict[str, int]:
    """Make the sandbox fail the next n calls of each kind given; answers every kind's count.

    404 when the configured gateway is not the sandbox.
    """
    gateway = require_sandbox()
    data = validate(FaultsIn, data)
    return gateway.set_faults(data.model_dump(exclude_none=True))

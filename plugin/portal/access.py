"""Whether the merchant's settings let customers in through a given door.

Self-service billing is off until the merchant enables it; then ``portal``
chooses the doors: the tab inside the host helpdesk (``helpdesk``), the
standalone portal (``standalone``) or ``both``. The JSON API follows
``enabled`` only: both kinds of page use it.
"""
from __future__ import annotations

from typing import Literal

from ..errors import NotAllowed, NotFound
from ..ledger.service import get_settings

Door = Literal["api", "standalone", "helpdesk"]

DISABLED_MESSAGE = (
    "Self-service billing is not enabled for this store. "
    "Please contact the seller's support team for help with your orders."
)
_ELSEWHERE = {
    "standalone": "The billing portal is not offered here. Use the My Orders tab of the help center instead.",
    "helpdesk": "The My Orders tab is not offered in this help center. Use the seller's billing portal instead.",
}


def portal_enabled() -> bool:
    return bool(get_settings().enabled)


def door_open(door: Door) -> bool:
    """True when customers may come in through ``door`` now."""
    settings = get_settings()
    return bool(settings.enabled) and (door == "api" or settings.portal in (door, "both"))


def check_door(door: Door) -> None:
    """Raise NotAllowed (403) when self-service billing is off, NotFound (404) when this door is closed."""
    settings = get_settings()
    if not settings.enabled:
        raise NotAllowed(DISABLED_MESSAGE, code="portal_disabled")
    if door != "api" and settings.portal not in (door, "both"):
        raise NotFound(_ELSEWHERE[door], code="portal_not_offered")

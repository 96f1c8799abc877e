"""One-time messages to the customer after an action ("Your subscription is cancelled.").

Like Flask's ``flash`` but under the plugin's own session key
(``self_billing_notices``), so a host layout that shows its own flashed
messages neither swallows nor repeats the portal's.
"""
from __future__ import annotations

from flask import session

KEY = "self_billing_notices"
OK = "ok"
ERROR = "error"


def notify(message: str, level: str = OK) -> None:
    """Show ``message`` on the customer's next portal page."""
    notices = list(session.get(KEY, []))
    notices.append([level, message])
    session[KEY] = notices[-5:]


def pop_notices() -> list[tuple[str, str]]:
    """The waiting messages as (level, text), removed from the session."""
    notices = session.pop(KEY, None) or []
    return [(str(level), str(text)) for level, text in notices]

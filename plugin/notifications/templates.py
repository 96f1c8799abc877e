"""Subjects and bodies of customer email: the merchant's templates and their rendering.

Two layers:

* The merchant's **subject and body** of each kind, plain text with
  ``str.format`` placeholders (:data:`PLACEHOLDERS`: ``{order_id}``,
  ``{first_name}``, ``{last_name}``, ``{product}``, ``{amount}``, ``{date}``,
  ``{merchant_name}``).
  Kept in ``sb_email_templates``; a kind without a row uses :data:`DEFAULTS`.
  :func:`validate_template` refuses an unknown placeholder, a format spec or
  broken braces when the template is *saved*, so sending never meets one. Every
  subject must carry ``{order_id}``: the contract promises the Order ID in each
  subject, and the customer needs it to log in.
* The **Jinja files** ``self_billing/email/<kind>.txt`` and ``<kind>.html``
  (overridable by the host like every template of the plugin) lay the body out
  and add the details of the kind: the agent's message, the refund, the date a
  subscription ends, the ticket number; the layout signs every email with the
  merchant's name and ends it with their name, contact and address, and why the
  customer receives it (:mod:`.merchant`).

Values are substituted by ``str.format`` once; a customer's name or an agent's
message containing braces is shown as written and never parsed again.
"""
from __future__ import annotations

import logging
import re
import string
from datetime import date, datetime
from typing import Any

from babel.dates import format_date
from flask import current_app, render_template
from sqlalchemy import select

from ..db import db
from ..errors import InvalidInput, NotFound
from ..money import format_money
from .merchant import Merchant, load_merchant
from .models import EmailTemplate
from .outbox import KINDS

log = logging.getLogger(__name__)

#: The placeholders merchant templates may use, in the order they are listed to people.
PLACEHOLDERS: tuple[str, ...] = ("order_id", "first_name", "last_name", "product", "amount", "date",
                                 "merchant_name")

SUBJECT_MAX = 300
BODY_MAX = 10_000

#: The default subject and body of every kind. Every subject carries the Order ID.
DEFAULTS: dict[str, dict[str, str]] = {
    "request_ticketed": {
        "subject": "We received your request about order {order_id}",
        "body": "Hi {first_name},\n\n"
                "Thank you for your request about {product} (order {order_id}). "
                "Our billing team will look at it and answer you by email.",
    },
    "cancellation_scheduled": {
        "subject": "Your {product} subscription ends on {date} (order {order_id})",
        "body": "Hi {first_name},\n\n"
                "Your subscription to {product} (order {order_id}) is cancelled at the end of the "
                "period you paid for. You keep access until {date} and will not be charged again.",
    },
    "cancellation_done": {
        "subject": "Your {product} subscription is cancelled (order {order_id})",
        "body": "Hi {first_name},\n\n"
                "Your subscription to {product} (order {order_id}) was cancelled on {date}. "
                "You will not be charged again.",
    },
    "refund_done": {
        "subject": "Your refund of {amount} for order {order_id}",
        "body": "Hi {first_name},\n\n"
                "We refunded {amount} for {product} (order {order_id}) on {date}. "
                "Depending on your bank it can take 5 to 10 business days to show on your statement.",
    },
    "request_declined": {
        "subject": "About your request for order {order_id}",
        "body": "Hi {first_name},\n\n"
                "We looked at your request about {product} (order {order_id}) and could not approve it.",
    },
    "agent_reply": {
        "subject": "Re: your order {order_id}",
        "body": "Hi {first_name},\n\n"
                "Our billing team answered your message about {product} (order {order_id}).",
    },
    "address_changed": {
        "subject": "Your billing address was changed (order {order_id})",
        "body": "Hi {first_name},\n\n"
                "The billing address of {product} (order {order_id}) was changed on {date}. "
                "Future invoices use the new address. If you did not make this change, reply to this email.",
    },
    "payment_method_changed": {
        "subject": "Your payment method was changed (order {order_id})",
        "body": "Hi {first_name},\n\n"
                "The payment method of {product} (order {order_id}) was changed on {date}. "
                "If you did not make this change, reply to this email.",
    },
    "purchase_confirmation": {
        "subject": "Your order {order_id}: {product}",
        "body": "Hi {first_name},\n\n"
                "Thank you for buying {product} for {amount} on {date}.\n\n"
                "Your Order ID is {order_id}. With it and this email address you can log in to "
                "your billing portal to download invoices and manage your purchase.",
    },
    "payment_receipt": {
        "subject": "Receipt for your payment of {amount} (order {order_id})",
        "body": "Hi {first_name},\n\n"
                "Thank you for your payment of {amount} for {product} (order {order_id}) on {date}. "
                "This email is your receipt; the invoice is in your billing portal.",
    },
    "login_link": {
        "subject": "Your login link for order {order_id}",
        "body": "Hi {first_name},\n\n"
                "Someone (we hope you) asked for a link to log in to your billing portal for {product} "
                "(order {order_id}). If it was not you, ignore this email: nothing changes, and nobody can "
                "log in without this link.",
    },
    "order_lookup": {
        "subject": "Your Order IDs (the latest is {order_id})",
        "body": "Hi {first_name},\n\n"
                "Someone (we hope you) asked for the Order IDs of the purchases made with this email address. "
                "They are below, newest first: log in to your billing portal with any of them and this email "
                "address. If it was not you, ignore this email: nothing changes.",
    },
    "cancellation_undone": {
        "subject": "Your {product} subscription continues (order {order_id})",
        "body": "Hi {first_name},\n\n"
                "You kept your subscription to {product} (order {order_id}): its cancellation is undone and it "
                "will not end. It renews as before, with the next payment of {amount} on {date}.",
    },
}

_LISTED = ", ".join("{" + name + "}" for name in PLACEHOLDERS)


def placeholder_problem(text: str, *, require_order_id: bool = False) -> str | None:
    """What is wrong with the placeholders of ``text``, as a sentence, or None when nothing is."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        reason = str(exc).rstrip(".")
        return (f"The braces do not match ({reason}). Write placeholders as {{order_id}}, "
                "and a literal brace as {{ or }}.")
    seen: set[str] = set()
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            return f"The placeholder {{{name}}} has no name. Use one of: {_LISTED}."
        if name not in PLACEHOLDERS:
            return f"Unknown placeholder {{{name}}}. Use one of: {_LISTED}."
        if spec or conversion:
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"The placeholder {written} takes no format; write {{{name}}}."
        seen.add(name)
    if require_order_id and "order_id" not in seen:
        return "The subject must contain {order_id}: customers need the Order ID to log in."
    return None


def validate_template(subject: Any, body: Any) -> tuple[str, str]:
    """Check a merchant template; raise :class:`InvalidInput` naming each bad field."""
    fields: dict[str, str] = {}
    if not isinstance(subject, str) or not subject.strip():
        fields["subject"] = "Give a subject (text)."
    elif len(subject) > SUBJECT_MAX:
        fields["subject"] = f"Keep the subject under {SUBJECT_MAX} characters."
    elif "\n" in subject or "\r" in subject:
        fields["subject"] = "A subject is one line; remove the line breaks."
    else:
        problem = placeholder_problem(subject, require_order_id=True)
        if problem:
            fields["subject"] = problem
    if not isinstance(body, str) or not body.strip():
        fields["body"] = "Give a body (text)."
    elif len(body) > BODY_MAX:
        fields["body"] = f"Keep the body under {BODY_MAX} characters."
    else:
        problem = placeholder_problem(body)
        if problem:
            fields["body"] = problem
    if fields:
        first = next(iter(fields))
        raise InvalidInput(f"The {first} cannot be used: {fields[first]}", fields=fields)
    return subject.strip(), body.strip("\n")


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise NotFound(f"There is no email kind {kind!r}. Kinds: {', '.join(KINDS)}.", code="unknown_email_kind")


def _stored(kind: str) -> EmailTemplate | None:
    return db.session.execute(select(EmailTemplate).where(EmailTemplate.kind == kind)).scalar_one_or_none()


def template_to_dict(kind: str, row: EmailTemplate | None) -> dict[str, Any]:
    default = DEFAULTS[kind]
    return {
        "kind": kind,
        "subject": row.subject if row else default["subject"],
        "body": row.body if row else default["body"],
        "customized": row is not None,
        "placeholders": list(PLACEHOLDERS),
    }


def get_template(kind: str) -> dict[str, Any]:
    """The subject and body used for ``kind`` now (the merchant's, else the default)."""
    check_kind(kind)
    return template_to_dict(kind, _stored(kind))


def list_templates() -> list[dict[str, Any]]:
    rows = {row.kind: row for row in db.session.execute(select(EmailTemplate)).scalars()}
    return [template_to_dict(kind, rows.get(kind)) for kind in KINDS]


def save_template(kind: str, subject: Any, body: Any) -> dict[str, Any]:
    """Validate and store the merchant's template of ``kind``. Commits. Same input twice: same row."""
    check_kind(kind)
    subject, body = validate_template(subject, body)
    row = _stored(kind)
    if row is None:
        row = EmailTemplate(kind=kind, subject=subject, body=body)
        db.session.add(row)
    else:
        row.subject, row.body = subject, body
    db.session.commit()
    return template_to_dict(kind, row)


def reset_template(kind: str) -> dict[str, Any]:
    """Go back to the default template of ``kind``. Commits."""
    check_kind(kind)
    row = _stored(kind)
    if row is not None:
        db.session.delete(row)
        db.session.commit()
    return template_to_dict(kind, None)


# -- rendering -------------------------------------------------------------------------


def _parse_date(value: Any) -> date | datetime | None:
    if isinstance(value, (date, datetime)):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            return None


def _locale() -> str:
    return current_app.config.get("SELF_BILLING_LOCALE", "en_US")


def day(value: Any) -> str:
    """A date or ISO time as people read it in the configured locale (``November 26, 2026``); "" for none."""
    when = _parse_date(value)
    return format_date(when, format="long", locale=_locale()) if when else ""


def money(cents: Any, currency: Any) -> str:
    """Cents as people read them in the configured locale (``$49.00``); "" when either is missing."""
    if cents is None or not currency:
        return ""
    return format_money(int(cents), str(currency), _locale())


def placeholder_values(context: dict[str, Any], merchant: Merchant | None = None) -> dict[str, str]:
    """The placeholder values of an email, formatted for people in the configured locale."""
    return {
        "order_id": str(context.get("order_id", "")),
        "first_name": str(context.get("first_name") or ""),
        "last_name": str(context.get("last_name") or ""),
        "product": str(context.get("product") or ""),
        "amount": money(context.get("amount_cents"), context.get("currency")),
        "date": day(context.get("date")),
        "merchant_name": merchant.name if merchant is not None else "",
    }


def merchant_templates(session: Any = None) -> dict[str, tuple[str, str]]:
    """``{kind: (subject, body)}`` for every kind, the merchant's where valid, else the default.

    One query; the worker loads them once per batch. A stored template that no
    longer validates (e.g. written to the table by hand) is logged and replaced
    by the default, so sending never fails on it.
    """
    found = {kind: (d["subject"], d["body"]) for kind, d in DEFAULTS.items()}
    for row in (session or db.session).execute(select(EmailTemplate)).scalars():
        if row.kind not in found:
            continue
        if placeholder_problem(row.subject, require_order_id=True) is None and placeholder_problem(row.body) is None:
            found[row.kind] = (row.subject, row.body)
        else:
            log.warning("The stored %s template is not valid any more; the default is used. Save it again "
                        "through the merchant API to fix it.", row.kind)
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_email(kind: str, context: dict[str, Any], templates: dict[str, tuple[str, str]] | None = None,
                 merchant: Merchant | None = None) -> tuple[str, str, str]:
    """``(subject, text body, html body)`` of an email; needs an app context.

    ``templates`` is what :func:`merchant_templates` returns, ``merchant`` what
    :func:`.merchant.load_merchant` does (each loaded when not given).
    """
    subject_template, body_template = (templates or merchant_templates())[kind]
    merchant = merchant or load_merchant()
    values = placeholder_values(context, merchant)
    subject = _one_line(subject_template.format(**values))
    body = body_template.format(**values)
    paragraphs = [part.split("\n") for part in body.split("\n\n") if part.strip()]
    portal_url = current_app.config.get("SELF_BILLING_EMAIL_PORTAL_URL")
    extra = context.get("extra") or {}
    request = context.get("request") or {}
    variables = dict(context, **values, subject=subject, body=body, paragraphs=paragraphs,
                     portal_url=portal_url, date_iso=context.get("date"), extra=extra,
                     ticket_id=extra.get("ticket_id") or request.get("ticket_id"),
                     merchant=merchant.as_context(), purchase=context.get("purchase") or {},
                     day=day, money=money)
    text = render_template(f"self_billing/email/{kind}.txt", **variables)
    html = render_template(f"self_billing/email/{kind}.html", **variables)
    text = re.sub(r"\n{3,}", "\n\n", text.strip()) + "\n"
    return subject, text, html

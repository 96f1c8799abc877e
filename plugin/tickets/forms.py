"""The agent desk's forms (Flask-WTF, each with its own CSRF token).

The plugin does not switch on ``CSRFProtect`` for the whole app (that is the
host's choice); every desk form validates its token itself through
``validate_on_submit``. The forms carry the token and the fields' labels only:
what the fields must be is checked by the agent API's schemas
(:mod:`plugin.tickets.schemas`, through :func:`plugin.validation.validate`), so
the desk and the API refuse the same input with the same words.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField, TextAreaField


class EventForm(FlaskForm):
    """One button per event the request's machine accepts now; a partial refund also sends an amount."""

    event = HiddenField()
    amount = StringField("Amount to refund")
    message = TextAreaField("Message to the customer (optional)")
    submit = SubmitField("Apply")


class ReplyForm(FlaskForm):
    """The reply box: the text is recorded on the ticket and emailed to the customer."""

    message = TextAreaField("Reply to the customer")
    submit = SubmitField("Send reply")


class ManualCancelForm(FlaskForm):
    """Cancel a subscription by hand, now or at the end of the paid period."""

    when = HiddenField()
    message = TextAreaField("Message to the customer (optional)")
    submit = SubmitField("Cancel subscription")


class ManualRefundForm(FlaskForm):
    """Refund all or part of a payment by hand."""

    amount = StringField("Amount to refund")
    message = TextAreaField("Message to the customer (optional)")
    submit = SubmitField("Refund")

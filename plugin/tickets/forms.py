"""The agent desk's forms (Flask-WTF, each with its own CSRF token).

The plugin does not switch on ``CSRFProtect`` for the whole app (that is the
host's choice); every desk form validates its token itself through
``validate_on_submit``. What the fields mean is checked again by the agent API's
schemas (:mod:`plugin.tickets.schemas`), so the desk and the API refuse the same
input with the same words.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from .schemas import MAX_MESSAGE_CHARS


class EventForm(FlaskForm):
    """One button per event the request's machine accepts now; a partial refund also sends an amount."""

    event = HiddenField(validators=[DataRequired()])
    amount = StringField("Amount to refund", validators=[Optional(), Length(max=30)])
    message = TextAreaField("Message to the customer (optional)",
                            validators=[Optional(), Length(max=MAX_MESSAGE_CHARS)])
    submit = SubmitField("Apply")


class ReplyForm(FlaskForm):
    """The reply box: the text is recorded on the ticket and emailed to the customer."""

    message = TextAreaField("Reply to the customer")
    submit = SubmitField("Send reply")


class ManualCancelForm(FlaskForm):
    """Cancel a subscription by hand, now or at the end of the paid period."""

    when = HiddenField(validators=[DataRequired()])
    message = TextAreaField("Message to the customer (optional)",
                            validators=[Optional(), Length(max=MAX_MESSAGE_CHARS)])
    submit = SubmitField("Cancel subscription")


class ManualRefundForm(FlaskForm):
    """Refund all or part of a payment by hand."""

    amount = StringField("Amount to refund")
    message = TextAreaField("Message to the customer (optional)",
                            validators=[Optional(), Length(max=MAX_MESSAGE_CHARS)])
    submit = SubmitField("Refund")

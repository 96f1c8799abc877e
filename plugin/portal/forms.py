"""The portal's HTML forms, as Flask-WTF forms: each carries a ``csrf_token`` field.

A form posted without its token (a replayed or cross-site post) fails
validation with :data:`CSRF_MESSAGE`, and the view changes nothing.
"""
from __future__ import annotations

from functools import lru_cache

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

CSRF_MESSAGE = (
    "This form has expired or did not come from this page, so nothing was changed. "
    "Please go back, reload the page and try again."
)


class LoginForm(FlaskForm):
    order_id = StringField(
        "Order ID",
        validators=[InputRequired("Enter your Order ID."), Length(max=64, message="An Order ID has at most 64 characters.")],
    )
    email = StringField(
        "Email address",
        validators=[
            InputRequired("Enter the email address you used when you bought."),
            Length(max=320, message="An email address has at most 320 characters."),
        ],
    )


class ReasonForm(FlaskForm):
    """The confirmation step of a cancellation or refund, with an optional reason."""

    reason = TextAreaField(
        "Reason (optional)",
        validators=[Optional(), Length(max=2000, message="Keep the reason under 2,000 characters.")],
    )


@lru_cache(maxsize=4)
def country_choices(locale: str = "en_US") -> tuple[tuple[str, str], ...]:
    """(code, name) of every ISO 3166 country Babel knows, sorted by name."""
    from babel import Locale

    territories = Locale.parse(locale).territories
    codes = [code for code in territories if len(code) == 2 and code.isalpha()]
    return tuple(sorted(((code, territories[code]) for code in codes), key=lambda item: item[1]))


class AddressForm(FlaskForm):
    """A new bill-to address; validated again by :class:`plugin.ledger.schemas.Address`."""

    name = StringField("Name or company", validators=[InputRequired("Enter the name to bill."), Length(max=200)])
    line1 = StringField("Address line 1", validators=[InputRequired("Enter the street address."), Length(max=200)])
    line2 = StringField("Address line 2 (optional)", validators=[Optional(), Length(max=200)])
    city = StringField("City", validators=[InputRequired("Enter the city."), Length(max=100)])
    region = StringField("State, province or region (optional)", validators=[Optional(), Length(max=100)])
    postal_code = StringField("Postal code (optional)", validators=[Optional(), Length(max=20)])
    country = SelectField(
        "Country",
        choices=[],
        validate_choice=True,
        validators=[InputRequired("Choose a country.")],
    )

    def __init__(self, *args, locale: str = "en_US", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = [("", "Choose a country")] + list(country_choices(locale))


class CardTokenForm(FlaskForm):
    """What the add-card form posts to us: the processor's token only, never card details."""

    token = HiddenField("Card token", validators=[InputRequired("The card was not tokenized."), Length(max=100)])


class ActionForm(FlaskForm):
    """A button that changes something (set default, remove, log out): only the CSRF token."""

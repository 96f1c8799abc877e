"""The portal's HTML forms, as Flask-WTF forms: each carries a ``csrf_token`` field.

A form posted without its token (a replayed or cross-site post) fails
validation with :data:`CSRF_MESSAGE`, and the view changes nothing.

The forms carry the token and what the page displays (labels, the country list); what the
fields must be is checked by the same rule the JSON API applies (:class:`SchemaForm`): the login
by :func:`plugin.portal.login.parse_login`, an address by :class:`plugin.ledger.schemas.Address`,
a reason by :func:`plugin.validation.free_text`. A broken rule puts its message on the field and
``validate_on_submit()`` answers False, as a WTForms validator would; :attr:`SchemaForm.validated`
holds what the rule answered when it passed.
"""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from ..errors import BillingError
from ..addresses import country_choices
from ..ledger.schemas import Address
from ..validation import free_text, validate
from .login import parse_login
from .order_lookup import parse_lookup

CSRF_MESSAGE = (
    "This form has expired or did not come from this page, so nothing was changed. "
    "Please go back, reload the page and try again."
)


class SchemaForm(FlaskForm):
    """A form whose fields are checked by a domain rule instead of WTForms validators.

    Subclasses name the fields the rule reads (:attr:`rule_fields`) and the rule (:meth:`check`,
    raising a :class:`~plugin.errors.BillingError` whose ``fields`` name the bad ones).
    """

    rule_fields: tuple[str, ...] = ()
    #: What :meth:`check` answered for the submitted data (after a successful ``validate()``).
    validated: Any = None

    def check(self, data: dict[str, str]) -> Any:  # pragma: no cover - every subclass has its rule
        raise NotImplementedError

    def validate(self, extra_validators: Any = None) -> bool:
        if not super().validate(extra_validators):  # the CSRF token
            return False
        data = {name: (getattr(self, name).data or "") for name in self.rule_fields}
        try:
            self.validated = self.check(data)
        except BillingError as err:
            for name, message in (err.fields or {}).items():
                field = getattr(self, name.split(".", 1)[0], None)
                if field is not None and name.split(".", 1)[0] in self.rule_fields:
                    field.errors = list(field.errors) + [message]
            if not any(getattr(self, name).errors for name in self.rule_fields):
                self.form_errors.append(err.message)
            return False
        return True


class LoginForm(SchemaForm):
    order_id = StringField("Order ID")
    email = StringField("Email address")

    rule_fields = ("order_id", "email")

    def check(self, data: dict[str, str]) -> Any:
        return parse_login(data)


class OrderLookupForm(SchemaForm):
    """"Forgot your Order ID?": the email address only (:func:`plugin.portal.order_lookup.parse_lookup`)."""

    email = StringField("Email address")

    rule_fields = ("email",)

    def check(self, data: dict[str, str]) -> str:
        return parse_lookup(data)


class ReasonForm(SchemaForm):
    """The confirmation step of a cancellation or refund, with an optional reason."""

    reason = TextAreaField("Reason (optional)")

    rule_fields = ("reason",)

    def check(self, data: dict[str, str]) -> str:
        return free_text(data["reason"], "reason")


class CancelForm(ReasonForm):
    """The cancellation's confirmation: one of the merchant's reasons (optional), and what they write."""

    reason_choice = RadioField("Why are you cancelling? (optional)", choices=[], validate_choice=False)

    def __init__(self, *args: Any, reasons: list[str] | tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reason_choice.choices = [(reason, reason) for reason in reasons]


class AddressForm(SchemaForm):
    """A new bill-to address, checked by :class:`plugin.ledger.schemas.Address` (the JSON API's model)."""

    name = StringField("Name or company")
    line1 = StringField("Address line 1")
    line2 = StringField("Address line 2 (optional)")
    city = StringField("City")
    region = StringField("State, province or region (optional)")
    postal_code = StringField("Postal code (optional)")
    country = SelectField("Country", choices=[], validate_choice=False)
    vat_id = StringField("VAT ID (optional, for businesses)")

    rule_fields = ("name", "line1", "line2", "city", "region", "postal_code", "country", "vat_id")

    def __init__(self, *args: Any, locale: str = "en_US", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = [("", "Choose a country")] + list(country_choices(locale))

    def check(self, data: dict[str, str]) -> Address:
        return validate(Address, {name: value.strip() for name, value in data.items()})


class CardTokenForm(FlaskForm):
    """What the add-card form posts to us: the processor's token only, never card details.

    Its presence is checked here only so the page can say the card form did not run (no JavaScript);
    what a token must be is :func:`plugin.portal.cards.add_card`'s rule.
    """

    token = HiddenField("Card token", validators=[InputRequired("The card was not tokenized."), Length(max=100)])
    make_default = BooleanField("Use this card for future payments", default=True)


class ActionForm(FlaskForm):
    """A button that changes something (set default, remove, log out): only the CSRF token."""

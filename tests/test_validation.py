"""The input rules every door shares (plugin.validation): one money parser, one free-text rule, one model
check; and the merchant's settings, which reading never writes (issue 13, items 2, 3 and 6)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, event, func, select

from plugin.db import db
from plugin.errors import BillingError, InvalidInput
from plugin.ledger import settings as merchant_settings
from plugin.ledger.models import Purchase, Settings
from plugin.ledger.schemas import PaymentIn, PricePointIn
from plugin.locking import lock_purchase
from plugin.tickets.schemas import EventIn, RefundIn, ReplyIn
from plugin.timefmt import iso_utc
from plugin.validation import (
    MAX_REASON_CHARS,
    check_id,
    free_text,
    is_row_id,
    parse_amount,
    validate,
)

from .conftest import PG_URL, utc

# -- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, cents", [
    ("49.00", 4900), (" 49.5 ", 4950), ("0.01", 1), ("10", 1000), (Decimal("12.34"), 1234), (7, 700),
    ("9999999999.99", 999999999999),
])
def test_parse_amount_gives_cents(value, cents):
    assert parse_amount(value) == cents


@pytest.mark.parametrize("value, words", [
    (10.5, "decimal string"), (True, "decimal string"), (None, "decimal string"), ("", "empty"),
    ("ten", "not a number"), ("NaN", "not a number"), ("Infinity", "not a number"), ("1e3", "not a number"),
    ("0", "more than 0"), ("0.00", "more than 0"), ("-3", "more than 0"), (Decimal(-1), "more than 0"),
    ("1.234", "two decimal places"), ("+5", "written like"), (".5", "written like"),
    ("10000000000", "10 digits"),
])
def test_parse_amount_refuses_with_the_fields_words(value, words):
    with pytest.raises(InvalidInput) as refused:
        parse_amount(value, "amount")
    assert refused.value.code == "invalid_amount"
    assert words in refused.value.fields["amount"] and words in refused.value.message


@pytest.mark.parametrize("value", ["zzq", "-zzq", "12.zzq", "4242424242424242.123"])
def test_parse_amount_never_repeats_the_value(value):
    with pytest.raises(InvalidInput) as refused:
        parse_amount(value, "refund_amount")
    assert value not in refused.value.message and value not in str(refused.value.fields)
    assert refused.value.message.startswith("The refund amount ")


def test_a_free_price_may_be_zero_but_no_amount_negative():
    assert parse_amount("0.00", allow_zero=True) == 0
    with pytest.raises(InvalidInput, match="negative"):
        parse_amount("-1.00", allow_zero=True)


def test_every_door_refuses_the_same_amounts_with_the_same_words():
    """The merchant's price and payment, the agent's refund and event: one rule, one field message."""
    base = {"product": "Pro", "currency": "USD"}
    for bad in ("1.234", "-1", "abc", 49.0):
        problems = []
        for model, body in ((PricePointIn, {**base, "amount": bad}),
                            (PaymentIn, {"payment_id": "P-1", "paid_at": "2026-01-01T00:00:00Z", "amount": bad}),
                            (RefundIn, {"amount": bad}), (EventIn, {"event": "refund_partial", "amount": bad})):
            with pytest.raises(BillingError) as refused:
                validate(model, body)
            problems.append(refused.value.fields["amount"])
        if bad == "-1":  # a price may be free, so it says "negative"; an amount to move says "more than 0"
            assert problems[0] == "must not be negative" and set(problems[1:]) == {"must be more than 0"}
        else:
            assert len(set(problems)) == 1, problems


def test_a_json_number_is_refused_as_an_amount():
    with pytest.raises(ValidationError, match="JSON number"):
        RefundIn.model_validate({"amount": 10})


# -- free text -----------------------------------------------------------------------------------


def test_free_text_strips_masks_and_limits():
    assert free_text(None) == ""
    assert free_text("  my card 4242 4242 4242 4242 was charged  ") == "my card •••• •••• •••• 4242 was charged"
    assert len(free_text("x" * MAX_REASON_CHARS)) == MAX_REASON_CHARS
    with pytest.raises(InvalidInput) as refused:
        free_text("x" * (MAX_REASON_CHARS + 1))
    assert refused.value.fields == {"reason": "at most 2000 characters"}
    with pytest.raises(InvalidInput) as refused:
        free_text("a\x00b", "message")
    assert refused.value.fields == {"message": "contains a NUL character"}
    with pytest.raises(InvalidInput):
        free_text(42)
    with pytest.raises(InvalidInput) as refused:
        free_text("   ", "message", required=True)
    assert refused.value.fields == {"message": "must not be empty"}


def test_agent_messages_are_free_text_in_the_schemas():
    assert validate(ReplyIn, {"message": " paid with 4242424242424242 "}).message == "paid with ••••••••••••4242"
    assert len(validate(ReplyIn, {"message": "é" * 10_000}).message) == 10_000
    for body in ({"message": "é" * 10_001}, {"message": "  "}):
        with pytest.raises(BillingError) as refused:
            validate(ReplyIn, body)
        assert "message" in refused.value.fields


# -- models, ids, times ----------------------------------------------------------------------------


def test_validate_names_each_bad_field_and_refuses_nul():
    with pytest.raises(BillingError) as refused:
        validate(PaymentIn, {"payment_id": "P 1", "paid_at": "yesterday", "coupon": "x"})
    assert refused.value.code == "invalid" and refused.value.status == 400
    assert set(refused.value.fields) == {"payment_id", "paid_at", "coupon"}
    with pytest.raises(InvalidInput) as refused:
        validate(PaymentIn, {"payment_id": "P-1\x00", "paid_at": "2026-01-01T00:00:00Z"})
    assert refused.value.fields == {"payment_id": "contains a NUL character"}
    with pytest.raises(BillingError):
        validate(PaymentIn, ["not", "a", "mapping"])
    model = PaymentIn.model_validate({"payment_id": "P-1", "paid_at": "2026-01-01T00:00:00Z"})
    assert validate(PaymentIn, model) is model


def test_ids_and_their_messages_speak_of_no_url():
    assert check_id("ORD-1.a_b", "order_id") == "ORD-1.a_b"
    for bad in ("", "-x", "a" * 65, "ORD 1", "\u0661"):
        with pytest.raises(InvalidInput) as refused:
            check_id(bad, "order_id")
        assert "order_id" in refused.value.fields and "URL" not in refused.value.message
    assert is_row_id(1) and is_row_id(2**31 - 1)
    assert not any(is_row_id(v) for v in (0, -1, 2**31, True, "1", 1.0))


def test_one_iso_format():
    assert iso_utc(None) is None
    assert iso_utc(utc(2026, 11, 26, 10, 0, 0).replace(microsecond=123456)) == "2026-11-26T10:00:00Z"
    assert iso_utc(utc(2026, 11, 26, 10).replace(tzinfo=None)) == "2026-11-26T10:00:00Z"


# -- settings: a pure read ---------------------------------------------------------------------------


def _commits() -> list[int]:
    seen: list[int] = []
    event.listen(db.session(), "after_commit", lambda _session: seen.append(1))
    return seen


def test_reading_settings_under_a_purchase_lock_never_commits(app, ledger):
    ledger.price()
    ledger.order("ORD-1")
    with app.app_context():
        db.session.execute(delete(Settings))
        db.session.commit()
        commits = _commits()
        lock_purchase(db.session.execute(select(Purchase.id)).scalar_one())
        settings = merchant_settings.get_settings()
        assert (settings.enabled, settings.portal, settings.cancellation_mode, settings.refund_mode,
                settings.department) == (False, "both", "request", "request", "Billing")
        assert settings not in db.session  # the defaults, not a row about to be written
        db.session.flush()
        assert db.session().in_transaction() and commits == []
        db.session.rollback()
        assert db.session.execute(select(func.count()).select_from(Settings)).scalar() == 0


def test_the_first_update_creates_the_missing_settings_row(app):
    with app.app_context():
        db.session.execute(delete(Settings))
        db.session.commit()
        merchant_settings.update_settings({"enabled": True})
        row = db.session.get(Settings, 1)
        assert row.enabled is True and row.department == "Billing"


def test_init_db_creates_the_settings_row_once(app):
    with app.app_context():
        if not PG_URL:  # make_app ran init-db on SQLite
            assert db.session.get(Settings, 1) is not None
        db.session.execute(delete(Settings))
        db.session.commit()
        db.session.remove()
        with db.engine.begin() as connection:
            assert merchant_settings.create_settings_row(connection) is True
            assert merchant_settings.create_settings_row(connection) is False
        row = db.session.get(Settings, 1)
        assert (row.enabled, row.portal, row.cancellation_mode, row.refund_mode, row.department) == (
            False, "both", "request", "request", "Billing")


# -- the forms check with the same rules ------------------------------------------------------------


def test_portal_forms_check_with_the_json_apis_rules(app):
    from plugin.portal.forms import AddressForm, LoginForm, ReasonForm

    app.config["WTF_CSRF_ENABLED"] = False
    with app.test_request_context(method="POST", data={"reason": "x" * 2001}):
        form = ReasonForm()
        assert not form.validate_on_submit()
        assert form.reason.errors == ["at most 2000 characters"]
    with app.test_request_context(method="POST", data={"reason": " card 4242 4242 4242 4242 "}):
        form = ReasonForm()
        assert form.validate_on_submit() and form.validated == "card •••• •••• •••• 4242"
    with app.test_request_context(method="POST", data={"order_id": "O" * 65, "email": ""}):
        form = LoginForm()
        assert not form.validate_on_submit()
        assert "64" in form.order_id.errors[0] and form.email.errors
    address = {"name": "Ann", "line1": "1 Main St", "city": "Berlin", "country": "de"}
    with app.test_request_context(method="POST", data={**address, "postal_code": "9" * 21}):
        form = AddressForm()
        assert not form.validate_on_submit() and form.postal_code.errors and not form.city.errors
    with app.test_request_context(method="POST", data=address):
        form = AddressForm()
        assert form.validate_on_submit() and form.validated.country == "DE"

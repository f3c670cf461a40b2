"""Communication preferences: toggles, consent records, and what channel choice then sees."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from messages.registry import CHANNELS, OPTIONAL_CATEGORIES
from portal import preferences
from portal.db import tenant_session
from portal.errors import ValidationError
from portal.models import CommunicationPreference, Consent, Customer, WebhookDelivery
from tests.factories import make_business, make_customer

ALL_EMAIL = {(c, "email") for c in OPTIONAL_CATEGORIES}


@pytest.fixture
def shop(db):
    business = make_business(db, name="Pro Home", webhook_url="https://booking.example/hooks")
    customer = make_customer(db, business, phone="+15145550123")
    db.commit()
    return business, customer


def save(session_factory, business, customer, enabled, locale=None, **kw):
    with tenant_session(session_factory, business.id) as s:
        rows = preferences.save(s, business, s.get(Customer, customer.id), enabled, locale, **kw)
        s.commit()
        return rows


def state(session_factory, business, customer):
    with tenant_session(session_factory, business.id) as s:
        return preferences.current(s, s.get(Customer, customer.id))


def test_defaults_email_on_sms_off_without_consent(session_factory, shop):
    business, customer = shop
    current = state(session_factory, business, customer)
    assert set(current) == set(OPTIONAL_CATEGORIES) and "account" not in current
    assert all(current[c]["email"] and not current[c]["sms"] for c in OPTIONAL_CATEGORIES)
    assert preferences.critical_categories() == ["account"]


def test_turning_reminder_email_off_and_sms_on_records_consent(db, session_factory, shop):
    business, customer = shop
    wanted = (ALL_EMAIL - {("reminders", "email")}) | {("reminders", "sms")}
    rows = save(session_factory, business, customer, wanted)
    assert sorted((r.category, r.channel, r.granted) for r in rows) == [
        ("reminders", "email", False), ("reminders", "sms", True)]
    consent = db.scalars(select(Consent).where(Consent.customer_id == customer.id, Consent.channel == "sms")).one()
    assert consent.source == "portal" and consent.category == "reminders"
    assert "I agree to receive appointment reminders from Pro Home by text message at +15145550123" in consent.wording
    assert "Reply STOP" in consent.wording
    current = state(session_factory, business, customer)
    assert current["reminders"] == {"email": False, "sms": True}
    assert current["billing"] == {"email": True, "sms": False}
    prefs = {(p.category, p.channel): p.enabled for p in db.scalars(
        select(CommunicationPreference).where(CommunicationPreference.customer_id == customer.id))}
    assert prefs == {("reminders", "email"): False, ("reminders", "sms"): True}
    hook = db.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id))
    assert hook.event_type == "customer.preferences_changed"
    assert hook.payload["preferences"]["reminders"] == {"email": False, "sms": True}


def test_channel_choice_honours_the_saved_preferences(session_factory, shop):
    """The messaging side (messages.channels) reads what we wrote."""
    from messages import channels

    business, customer = shop
    save(session_factory, business, customer, (ALL_EMAIL - {("reminders", "email")}) | {("reminders", "sms")})
    with tenant_session(session_factory, business.id) as s:
        c = s.get(Customer, customer.id)
        chosen, skipped = channels.choose_channels(s, c, "appointment_reminder")
        assert chosen == ["sms"] and "email" in skipped
        chosen, _ = channels.choose_channels(s, c, "invoice_issued")
        assert chosen == ["email"]


def test_unchanged_submission_records_nothing(db, session_factory, shop):
    business, customer = shop
    assert save(session_factory, business, customer, ALL_EMAIL) == []
    assert db.scalars(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id)).all() == []


def test_turning_sms_off_again_is_a_recorded_withdrawal(db, session_factory, shop):
    business, customer = shop
    save(session_factory, business, customer, ALL_EMAIL | {("billing", "sms")})
    rows = save(session_factory, business, customer, ALL_EMAIL)
    assert [(r.category, r.channel, r.granted) for r in rows] == [("billing", "sms", False)]
    assert "Do not send me invoices and receipts" in rows[0].wording
    assert state(session_factory, business, customer)["billing"]["sms"] is False


def test_language_change_and_translated_wording(db, session_factory, shop):
    business, customer = shop
    save(session_factory, business, customer, ALL_EMAIL, "fr")
    db.expire_all()
    assert db.get(Customer, customer.id).locale == "fr"
    rows = save(session_factory, business, customer, ALL_EMAIL - {("quotes", "email")},
                translate=lambda text: "[fr] " + text)
    assert rows[0].wording.startswith("[fr] Do not send me [fr] quotes")


@pytest.mark.parametrize("enabled, locale", [
    ({("account", "email")}, None),     # critical: not a toggle
    ({("reminders", "fax")}, None),
    (set(), "de"),
])
def test_invalid_input_is_refused_and_writes_nothing(db, session_factory, shop, enabled, locale):
    business, customer = shop
    with pytest.raises(ValidationError):
        save(session_factory, business, customer, enabled, locale)
    assert db.scalars(select(Consent).where(Consent.customer_id == customer.id)).all() == []


def test_sms_needs_a_phone_number(db, session_factory):
    business = make_business(db)
    customer = make_customer(db, business, phone=None)
    db.commit()
    assert all(not v["sms"] for v in state(session_factory, business, customer).values())
    with pytest.raises(ValidationError, match="phone number"):
        save(session_factory, business, customer, {("reminders", "sms")})
    assert set(CHANNELS) == {"email", "sms"}


def test_preferences_and_channel_choice_read_sms_consent_by_one_rule(db, session_factory, shop):
    # Newest row wins, whether it names the category or covers all of them.
    from messages.channels import facts
    from tests.messages.support import consent_sms

    business, customer = shop
    consent_sms(db, customer, True, age_s=30)  # all categories
    consent_sms(db, customer, False, category="billing", age_s=20)
    consent_sms(db, customer, True, category="quotes", age_s=40)  # older than the all-categories grant
    consent_sms(db, customer, False, category="quotes", age_s=50)
    db.commit()
    current = state(session_factory, business, customer)
    expected = {c: c != "billing" for c in OPTIONAL_CATEGORIES}
    assert {c: current[c]["sms"] for c in OPTIONAL_CATEGORIES} == expected
    with tenant_session(session_factory, business.id) as s:
        row = s.get(Customer, customer.id)
        assert {c: facts(s, row, c).sms_consent for c in OPTIONAL_CATEGORIES} == expected

import pytest

from messages.channels import choose_channels, refusal
from portal.models import CommunicationPreference, Suppression
from tests.factories import make_business, make_customer
from tests.messages.support import consent_sms


@pytest.fixture
def business(db):
    return make_business(db)


def pref(db, customer, category, channel, enabled):
    db.add(CommunicationPreference(business_id=customer.business_id, customer_id=customer.id,
                                   category=category, channel=channel, enabled=enabled))
    db.flush()


def test_default_is_email_only_without_consent(db, business):
    customer = make_customer(db, business)
    channels, skipped = choose_channels(db, customer, "appointment_reminder")
    assert channels == ["email"]
    assert skipped == {"sms": "no SMS consent on record"}


def test_sms_joins_with_consent(db, business):
    customer = make_customer(db, business)
    consent_sms(db, customer)
    assert choose_channels(db, customer, "appointment_reminder")[0] == ["email", "sms"]


def test_latest_consent_row_wins(db, business):
    customer = make_customer(db, business)
    consent_sms(db, customer, True, age_s=100)
    consent_sms(db, customer, False, age_s=10)
    assert choose_channels(db, customer, "appointment_reminder")[0] == ["email"]
    consent_sms(db, customer, True, age_s=0)
    assert choose_channels(db, customer, "appointment_reminder")[0] == ["email", "sms"]


def test_category_preferences_per_channel(db, business):
    customer = make_customer(db, business)
    consent_sms(db, customer)
    pref(db, customer, "reminders", "email", False)
    channels, skipped = choose_channels(db, customer, "appointment_reminder")
    assert channels == ["sms"]
    assert skipped["email"] == "customer turned off reminders by email"
    # Other categories are untouched.
    assert choose_channels(db, customer, "booking_confirmation")[0] == ["email", "sms"]


def test_missing_email_falls_back_to_sms(db, business):
    customer = make_customer(db, business, email=None)
    consent_sms(db, customer)
    channels, skipped = choose_channels(db, customer, "booking_confirmation")
    assert channels == ["sms"] and skipped == {"email": "no email address"}


def test_missing_phone_falls_back_to_email(db, business):
    customer = make_customer(db, business, phone=None)
    consent_sms(db, customer)
    assert choose_channels(db, customer, "signin_link") == (["email"], {"sms": "no phone number"})


def test_nothing_possible_gives_reasons(db, business):
    customer = make_customer(db, business, email=None)
    channels, skipped = choose_channels(db, customer, "appointment_reminder")
    assert channels == []
    assert skipped == {"email": "no email address", "sms": "no SMS consent on record"}


def test_bad_status_and_suppression_block_a_channel(db, business):
    customer = make_customer(db, business, email_status="bounced")
    consent_sms(db, customer)
    assert refusal(db, customer, "appointment_reminder", "email") == "email address bounced"
    db.add(Suppression(business_id=business.id, channel="sms", address=customer.phone, reason="carrier_block"))
    db.flush()
    assert refusal(db, customer, "appointment_reminder", "sms") == "sms address suppressed (carrier_block)"


def test_email_suppression_ignores_case(db, business):
    customer = make_customer(db, business, email="Jane@Example.com")
    db.add(Suppression(business_id=business.id, channel="email", address="jane@example.com", reason="bounce"))
    db.flush()
    assert refusal(db, customer, "invoice_issued", "email") == "email address suppressed (bounce)"


def test_suppression_of_another_business_does_not_count(db, business):
    other = make_business(db)
    customer = make_customer(db, business)
    db.add(Suppression(business_id=other.id, channel="email", address=customer.email, reason="bounce"))
    db.flush()
    assert refusal(db, customer, "invoice_issued", "email") is None


def test_critical_ignores_category_opt_outs_and_uses_one_channel(db, business):
    customer = make_customer(db, business)
    consent_sms(db, customer)
    pref(db, customer, "account", "email", False)  # not a real choice: account is critical
    pref(db, customer, "reminders", "email", False)
    channels, skipped = choose_channels(db, customer, "signin_link")
    assert channels == ["email"]
    assert skipped == {"sms": "already sent by email"}


def test_critical_falls_back_to_sms_but_never_after_stop(db, business):
    customer = make_customer(db, business, email=None)
    consent_sms(db, customer)
    assert choose_channels(db, customer, "signin_link")[0] == ["sms"]
    db.add(Suppression(business_id=business.id, channel="sms", address=customer.phone, reason="stop"))
    db.flush()
    channels, skipped = choose_channels(db, customer, "signin_link")
    assert channels == [] and skipped["sms"] == "phone number replied STOP"


def test_opted_out_phone_status_blocks_even_critical(db, business):
    customer = make_customer(db, business, email=None, phone_status="opted_out")
    consent_sms(db, customer)
    channels, skipped = choose_channels(db, customer, "invitation")
    assert channels == [] and skipped["sms"] == "phone number replied STOP"


def test_a_requested_signin_link_needs_no_consent_row_but_an_invitation_does(db, business):
    customer = make_customer(db, business)
    assert refusal(db, customer, "signin_link", "sms") is None
    assert refusal(db, customer, "invitation", "sms") == "no SMS consent on record"
    consent_sms(db, customer, False)  # a refusal on record still counts for the invitation
    assert refusal(db, customer, "invitation", "sms") == "no SMS consent on record"
    customer.phone_status = "opted_out"
    assert refusal(db, customer, "signin_link", "sms") == "phone number replied STOP"

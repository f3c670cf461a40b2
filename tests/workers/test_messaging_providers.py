"""deliver_message through the real providers: the outbox files, and the real twilio/sendgrid SDKs
against the local fakes (tests/fakes), one test per failure class."""

import email
import json
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from messages.providers import factory
from portal.models import Message, Suppression
from portal.outbox import enqueue, queue_notice
from tests.factories import make_booking, make_business, make_customer
from tests.messages.support import consent_sms, daytime_zone, drain
from workers import messaging


@pytest.fixture
def settings(settings, fake_twilio, fake_sendgrid):
    # The real SDKs pointed at the fakes; a short timeout so "hang" gives up quickly.
    return fake_sendgrid.configure(fake_twilio.configure(settings)).replace(provider_timeout_s=1)


@pytest.fixture
def customer(db):
    # Texts go out at once at any hour the suite runs: quiet hours are tested in test_messaging.
    customer = make_customer(db, make_business(db, name="Pro Home Services"), locale="fr", timezone=daytime_zone())
    consent_sms(db, customer)
    return customer


def use(settings, session_factory, stub_broker):
    email_sender, sms_sender = factory.email_sender(settings), factory.sms_sender(settings)
    messaging.configure(settings, email_sender=email_sender, sms_sender=sms_sender,
                        session_factory=session_factory, backoff_base_s=0.01, max_attempts=3)
    return SimpleNamespace(email=email_sender, sms=sms_sender, broker=stub_broker)


@pytest.fixture
def real(settings, session_factory, stub_broker):
    yield use(settings, session_factory, stub_broker)
    messaging.reset()


def fresh(db, message) -> Message:
    db.expire_all()
    return db.get(Message, message.id)


def notice(db, customer, channel, kind="booking_confirmation", key="k"):
    booking = make_booking(db, customer) if kind != "signin_link" else None
    (message,) = queue_notice(db, kind=kind, customer=customer, booking=booking, key=key, channels=[channel])
    db.commit()
    return message


# --- the dev outbox ---------------------------------------------------------------------

def test_outbox_provider_writes_one_email_with_calendar_and_unsubscribe(db, settings, session_factory,
                                                                        stub_broker, customer):
    outbox_settings = settings.replace(email_provider="outbox", sms_provider="outbox")
    use(outbox_settings, session_factory, stub_broker)
    try:
        message = notice(db, customer, "email")
        drain(stub_broker)
        enqueue(message.id)  # a redelivery writes nothing more
        drain(stub_broker)
    finally:
        messaging.reset()
    (record,) = [json.loads(p.read_text()) for p in outbox_settings.outbox_dir.glob("*.json")]
    assert record["message_id"] == message.id and record["to"] == customer.email
    assert record["subject"].startswith("Confirmé : ")
    assert record["attachments"] == ["invite.ics"]
    assert record["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (eml,) = outbox_settings.outbox_dir.glob("*.eml")
    parsed = email.message_from_bytes(eml.read_bytes())
    types = [part.get_content_type() for part in parsed.walk()]
    assert "text/plain" in types and "text/html" in types and "text/calendar" in types
    assert fresh(db, message).provider_id == record["name"]


# --- Twilio -------------------------------------------------------------------------------

def test_twilio_send_carries_the_status_callback(db, real, fake_twilio, customer):
    message = notice(db, customer, "sms")
    drain(real.broker)
    (sent,) = fake_twilio.sends
    form = sent.form
    assert form["To"] == customer.phone and form["From"] == fake_twilio.from_number
    assert form["StatusCallback"].endswith(f"/webhooks/twilio/status?mid={message.id}")
    message = fresh(db, message)
    assert message.status == "sent" and message.provider == "twilio" and message.provider_id == fake_twilio.last_sid


def test_twilio_429_is_retried_honouring_retry_after(db, real, fake_twilio, customer):
    fake_twilio.fail(20429, retry_after=0)
    fake_twilio.fail_status(503)
    message = notice(db, customer, "sms")
    drain(real.broker)
    assert len(fake_twilio.sends) == 3
    message = fresh(db, message)
    assert message.status == "sent" and message.attempts == 3
    assert any("20429" in (e.detail or "") for e in message.events)


def test_twilio_21610_fails_at_once_and_suppresses_the_number(db, real, fake_twilio, customer):
    fake_twilio.fail(21610)
    message = notice(db, customer, "sms")
    drain(real.broker)
    assert len(fake_twilio.sends) == 1 and real.broker.dead_letters == []
    assert fresh(db, message).status == "failed"
    db.refresh(customer)
    assert customer.phone_status == "opted_out"
    assert db.scalar(select(Suppression.reason).where(Suppression.address == customer.phone)) == "stop"
    # And the next notice does not even try.
    later = queue_notice(db, kind="invoice_issued", customer=customer, key="after-stop", channels=None,
                         params={})
    assert [m.channel for m in later] == ["email"]


@pytest.mark.parametrize("code,status", [(21211, "invalid"), (21614, "not_mobile")])
def test_twilio_bad_numbers_are_marked(db, real, fake_twilio, customer, code, status):
    fake_twilio.fail(code)
    message = notice(db, customer, "sms")
    drain(real.broker)
    assert len(fake_twilio.sends) == 1 and fresh(db, message).status == "failed"
    db.refresh(customer)
    assert customer.phone_status == status


def test_twilio_timeout_after_sending_is_unknown_and_never_resent(db, real, fake_twilio, customer):
    fake_twilio.hang()
    message = notice(db, customer, "sms")
    drain(real.broker)
    enqueue(message.id)
    drain(real.broker)
    assert len(fake_twilio.sends) == 1
    assert fresh(db, message).status == "unknown"


def test_twilio_exhausted_retries_dead_letter(db, real, fake_twilio, customer):
    for _ in range(3):
        fake_twilio.fail_status(500)
    message = notice(db, customer, "sms")
    drain(real.broker)
    assert len(fake_twilio.sends) == 3
    message = fresh(db, message)
    assert message.status == "failed" and message.status_reason.startswith("gave up after 3 attempts")
    assert [m.args for m in real.broker.dead_letters] == [(message.id,)]


# --- SendGrid ---------------------------------------------------------------------------

def test_sendgrid_send_has_custom_args_categories_unsubscribe_and_ics(db, real, fake_sendgrid, customer):
    message = notice(db, customer, "email")
    drain(real.broker)
    (sent,) = fake_sendgrid.sent
    body = sent["body"]
    args = {**body.get("custom_args", {}), **body["personalizations"][0].get("custom_args", {})}
    assert args["portal_message_id"] == str(message.id)
    assert "booking_confirmation" in body["categories"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [a["filename"] for a in body["attachments"]] == ["invite.ics"]
    assert {c["type"] for c in body["content"]} == {"text/plain", "text/html"}
    assert fresh(db, message).provider_id == sent["x_message_id"]


def test_sendgrid_signin_link_has_no_unsubscribe(db, real, fake_sendgrid, customer):
    notice(db, customer, "email", kind="signin_link")
    drain(real.broker)
    (sent,) = fake_sendgrid.sent
    assert "List-Unsubscribe" not in (sent["body"].get("headers") or {})


def test_sendgrid_429_then_success(db, real, fake_sendgrid, customer):
    fake_sendgrid.fail(429, retry_after=0)
    message = notice(db, customer, "email")
    drain(real.broker)
    assert len(fake_sendgrid.sends) == 2 and fresh(db, message).status == "sent"


def test_sendgrid_400_marks_the_address_invalid(db, real, fake_sendgrid, customer):
    fake_sendgrid.fail(400)
    message = notice(db, customer, "email")
    drain(real.broker)
    assert len(fake_sendgrid.sends) == 1 and fresh(db, message).status == "failed"
    db.refresh(customer)
    assert customer.email_status == "invalid"


def test_sendgrid_timeout_is_unknown_and_never_resent(db, real, fake_sendgrid, customer):
    fake_sendgrid.hang()
    message = notice(db, customer, "email")
    drain(real.broker)
    enqueue(message.id)
    drain(real.broker)
    assert len(fake_sendgrid.sends) == 1 and fresh(db, message).status == "unknown"


# --- the loop closes: an unknown send settled by the provider's callback ------------------------

async def test_unknown_twilio_send_is_reconciled_by_its_status_callback(db, real, fake_twilio, customer, client):
    fake_twilio.hang()
    message = notice(db, customer, "sms")
    drain(real.broker)
    assert fresh(db, message).status == "unknown"
    resp = await fake_twilio.status_callback(fake_twilio.last_sid, "delivered").send(client)
    assert resp.status == 200
    message = fresh(db, message)
    assert message.status == "delivered"
    enqueue(message.id)
    drain(real.broker)
    assert len(fake_twilio.sends) == 1

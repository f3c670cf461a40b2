"""deliver_message on the StubBroker: idempotency, state re-checks, quiet hours, failure classes."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import dramatiq
import pytest
import time_machine
from sqlalchemy import select

from portal.errors import PermanentProviderError, TransientProviderError, UnknownDeliveryError
from portal.metrics import MESSAGES
from portal.models import CommunicationPreference, Message, Suppression, utcnow
from portal.outbox import enqueue, queue_notice
from tests.factories import make_booking, make_business, make_customer, make_invoice
from tests.messages.support import consent_sms, drain
from workers import messaging

TORONTO = ZoneInfo("America/Toronto")


@pytest.fixture
def customer(db):
    business = make_business(db, timezone="America/Toronto")
    customer = make_customer(db, business, timezone="America/Toronto")
    consent_sms(db, customer)
    return customer


def history(db, message):
    db.expire_all()
    message = db.get(Message, message.id)
    return [(e.status, e.detail) for e in message.events]


def fresh(db, message) -> Message:
    db.expire_all()
    return db.get(Message, message.id)


def counter(status, channel):
    return MESSAGES.labels(status=status, channel=channel)._value.get()


# --- the happy path and idempotency ---------------------------------------------------

def test_sends_once_and_records_the_history(db, senders, customer):
    booking = make_booking(db, customer)
    before = counter("sent", "email")
    (message,) = queue_notice(db, kind="booking_confirmation", customer=customer, booking=booking,
                              key=f"booking:{booking.id}:v1", channels=["email"])
    db.commit()
    drain(senders.broker)
    (email,) = senders.email.sent
    assert email.to == customer.email and email.attachments  # the .ics
    message = fresh(db, message)
    assert message.status == "sent" and message.provider == "rec-email" and message.provider_id == "rec-email-1"
    assert message.attempts == 1 and message.sent_at is not None and message.lease_until is None
    assert [s for s, _ in history(db, message)] == ["queued", "sending", "sent"]
    assert counter("sent", "email") == before + 1


def test_repeated_notice_and_redelivered_jobs_send_once(db, senders, customer):
    booking = make_booking(db, customer)
    for _ in range(3):
        queue_notice(db, kind="booking_confirmation", customer=customer, booking=booking,
                     key=f"booking:{booking.id}:v1", channels=["email"])
        db.commit()
    (message,) = db.scalars(select(Message).where(Message.customer_id == customer.id)).all()
    enqueue(message.id)
    enqueue(message.id)  # the sweeper or Redis redelivered it too
    drain(senders.broker)
    enqueue(message.id)
    drain(senders.broker)
    assert len(senders.email.sent) == 1
    assert fresh(db, message).status == "sent"


def test_a_live_lease_holds_the_job_back(db, senders, customer):
    (message,) = queue_notice(db, kind="invoice_issued", customer=customer, channels=["email"], key="i:1",
                              params={"invoice": make_invoice(db, customer).public_id})
    message.status, message.lease_until = "sending", utcnow() + timedelta(minutes=5)
    db.commit()
    senders.broker.flush_all()
    assert messaging.deliver(message.id) == "sending"
    assert senders.email.calls == 0
    assert senders.broker.queues["messages.DQ"].qsize() == 1  # looked at again when the lease ends


def test_an_expired_lease_is_reclaimed_and_sent_once(db, senders, customer):
    """A worker killed mid-send: once its lease is over and no callback settled the row, send it."""
    (message,) = queue_notice(db, kind="invoice_issued", customer=customer, channels=["email"], key="i:2",
                              params={"invoice": make_invoice(db, customer).public_id})
    message.status, message.lease_until, message.attempts = "sending", utcnow() - timedelta(seconds=1), 1
    db.commit()
    assert messaging.deliver(message.id) == "sent"
    assert messaging.deliver(message.id) == "sent"
    assert senders.email.calls == 1
    assert fresh(db, message).attempts == 2


# --- state re-checked at send time ------------------------------------------------------

def queue_reminder(db, customer, booking, channels=("email",)):
    (message,) = queue_notice(db, kind="appointment_reminder", customer=customer, booking=booking,
                              key=f"reminder:{booking.id}:{booking.version}", channels=list(channels))
    return message


def test_cancelled_booking_is_skipped(db, senders, customer):
    booking = make_booking(db, customer)
    message = queue_reminder(db, customer, booking)
    db.commit()
    booking.status, booking.version = "cancelled", 2
    db.commit()
    drain(senders.broker)
    assert senders.email.calls == 0
    message = fresh(db, message)
    assert (message.status, message.status_reason) == ("skipped", "booking was cancelled")


def test_rescheduled_booking_is_skipped(db, senders, customer):
    booking = make_booking(db, customer)
    message = queue_reminder(db, customer, booking)
    db.commit()
    booking.starts_at += timedelta(days=1)
    booking.version = 2
    db.commit()
    drain(senders.broker)
    assert senders.email.calls == 0
    assert fresh(db, message).status_reason == "booking changed since queued (version 1 -> 2)"


def test_cancelled_reinstated_and_cancelled_again_sends_one_cancellation(db, senders, customer):
    booking = make_booking(db, customer)
    booking.status, booking.version = "cancelled", 2
    (first,) = queue_notice(db, kind="cancellation_confirmation", customer=customer, booking=booking,
                            key=f"booking:{booking.id}:v2", channels=["email"])
    db.commit()
    booking.status, booking.version = "scheduled", 3  # reinstated by the booking system...
    db.commit()
    booking.status, booking.version = "cancelled", 4  # ...and cancelled again before the first went out
    (second,) = queue_notice(db, kind="cancellation_confirmation", customer=customer, booking=booking,
                             key=f"booking:{booking.id}:v4", channels=["email"])
    db.commit()
    drain(senders.broker)
    assert len(senders.email.sent) == 1
    assert fresh(db, first).status_reason == "booking changed since queued (version 2 -> 4)"
    assert fresh(db, second).status == "sent"


def test_preference_turned_off_after_queueing_is_skipped(db, senders, customer):
    message = queue_reminder(db, customer, make_booking(db, customer))
    db.commit()
    db.add(CommunicationPreference(business_id=customer.business_id, customer_id=customer.id,
                                   category="reminders", channel="email", enabled=False))
    db.commit()
    drain(senders.broker)
    assert senders.email.calls == 0
    assert fresh(db, message).status_reason == "customer turned off reminders by email"


def test_stop_after_queueing_blocks_even_a_signin_link(db, senders, customer):
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:1", channels=["sms"])
    db.commit()
    db.add(Suppression(business_id=customer.business_id, channel="sms", address=customer.phone, reason="stop"))
    db.commit()
    drain(senders.broker)
    assert senders.sms.calls == 0
    assert fresh(db, message).status_reason == "phone number replied STOP"


def test_vanished_invoice_is_skipped(db, senders, customer):
    invoice = make_invoice(db, customer)
    (message,) = queue_notice(db, kind="invoice_issued", customer=customer, key="inv", channels=["email"],
                              params={"invoice": invoice.public_id})
    db.commit()
    db.delete(invoice)
    db.commit()
    drain(senders.broker)
    assert fresh(db, message).status_reason == "invoice no longer exists"


# --- quiet hours ------------------------------------------------------------------------------

def local(y, m, d, hh, mm):
    return datetime(y, m, d, hh, mm, tzinfo=TORONTO)


def test_sms_in_quiet_hours_waits_for_the_morning(db, senders, customer):
    booking = make_booking(db, customer, starts_at=local(2030, 1, 16, 14, 0).astimezone(timezone.utc))
    message = queue_reminder(db, customer, booking, channels=["sms"])
    db.commit()
    senders.broker.flush_all()
    with time_machine.travel(local(2030, 1, 14, 22, 0), tick=False):
        assert messaging.deliver(message.id) == "queued"
    waiting = fresh(db, message)
    assert waiting.status == "queued"
    assert waiting.not_before == local(2030, 1, 15, 8, 0).astimezone(timezone.utc)
    assert "quiet hours: waiting until 2030-01-15 08:00 EST" in history(db, message)[-1][1]
    assert senders.broker.queues["messages.DQ"].qsize() == 1 and senders.sms.calls == 0
    with time_machine.travel(local(2030, 1, 15, 7, 59), tick=False):  # an early redelivery waits again
        assert messaging.deliver(message.id) == "queued"
    with time_machine.travel(local(2030, 1, 15, 8, 0), tick=False):
        assert messaging.deliver(message.id) == "sent"
    assert senders.sms.calls == 1


def test_sms_skipped_when_the_window_opens_after_the_appointment(db, senders, customer):
    booking = make_booking(db, customer, starts_at=local(2030, 1, 15, 7, 30).astimezone(timezone.utc))
    message = queue_reminder(db, customer, booking, channels=["sms"])
    db.commit()
    with time_machine.travel(local(2030, 1, 14, 21, 0), tick=False):
        assert messaging.deliver(message.id) == "skipped"
    assert fresh(db, message).status_reason == "quiet hours until 2030-01-15 08:00 EST, after the appointment"
    assert senders.sms.calls == 0


def test_business_narrowed_window(db, senders, customer):
    customer.business.quiet_start_minute = 20 * 60
    booking = make_booking(db, customer, starts_at=local(2030, 1, 16, 14, 0).astimezone(timezone.utc))
    message = queue_reminder(db, customer, booking, channels=["sms"])
    db.commit()
    with time_machine.travel(local(2030, 1, 14, 20, 30), tick=False):
        assert messaging.deliver(message.id) == "queued"


def test_quiet_hours_follow_the_customer_timezone(db, senders, customer):
    customer.timezone = "America/Vancouver"  # 22:00 in Toronto is 19:00 there
    booking = make_booking(db, customer, starts_at=local(2030, 1, 16, 14, 0).astimezone(timezone.utc))
    message = queue_reminder(db, customer, booking, channels=["sms"])
    db.commit()
    with time_machine.travel(local(2030, 1, 14, 22, 0), tick=False):
        assert messaging.deliver(message.id) == "sent"


def test_signin_link_and_email_ignore_quiet_hours(db, senders, customer):
    (signin,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:q", channels=["sms"])
    booking = make_booking(db, customer, starts_at=local(2030, 1, 16, 14, 0).astimezone(timezone.utc))
    email = queue_reminder(db, customer, booking, channels=["email"])
    db.commit()
    with time_machine.travel(local(2030, 1, 14, 23, 30), tick=False):
        assert messaging.deliver(signin.id) == "sent"
        assert messaging.deliver(email.id) == "sent"


# --- failures ------------------------------------------------------------------------------------

def test_transient_error_is_retried_then_sent(db, senders, customer):
    senders.sms.script = [TransientProviderError("Too Many Requests", code=20429, retry_after=0),
                          TransientProviderError("503 Service Unavailable", code=503)]
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:t", channels=["sms"])
    db.commit()
    drain(senders.broker)
    assert senders.sms.calls == 3 and len(senders.sms.sent) == 1
    message = fresh(db, message)
    assert message.status == "sent" and message.attempts == 3
    steps = history(db, message)
    assert [s for s, _ in steps] == ["queued", "sending", "queued", "sending", "queued", "sending", "sent"]
    assert "attempt 1 failed: TransientProviderError: Too Many Requests (code 20429)" in steps[2][1]
    assert senders.broker.dead_letters == []


def test_retry_after_is_honoured(db, senders, customer):
    senders.email.script = [TransientProviderError("429", code=429, retry_after=7)]
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:ra", channels=["email"])
    db.commit()
    with pytest.raises(dramatiq.Retry) as retry:
        messaging.deliver(message.id)
    assert retry.value.delay == 7000
    assert "retrying in 7s" in history(db, message)[-1][1]


def test_backoff_grows_exponentially_and_is_capped():
    messaging.configure(backoff_base_s=30)
    try:
        assert [messaging.backoff_s(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
        assert messaging.backoff_s(20) == 3600
        assert messaging.backoff_s(1, retry_after=90) == 90
        assert messaging.backoff_s(1, retry_after=10**6) == 3600
    finally:
        messaging.reset()


def test_exhausted_retries_fail_the_row_and_dead_letter_the_job(db, senders, customer):
    senders.email.script = [TransientProviderError("503", code=503) for _ in range(5)]
    before = counter("failed", "email")
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:x", channels=["email"])
    db.commit()
    drain(senders.broker)
    assert senders.email.calls == 3  # max_attempts
    message = fresh(db, message)
    assert message.status == "failed"
    assert message.status_reason.startswith("gave up after 3 attempts: TransientProviderError: 503")
    (dead,) = senders.broker.dead_letters
    assert dead.args == (message.id,)
    assert "gave up after 3 attempts" in dead.options["traceback"]
    assert counter("failed", "email") == before + 1


@pytest.mark.parametrize("code,status", [(21610, "opted_out"), (21211, "invalid"), (21614, "not_mobile")])
def test_permanent_sms_error_fails_at_once_and_marks_the_number(db, senders, customer, code, status):
    senders.sms.script = [PermanentProviderError("refused", code=code)]
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key=f"signin:{code}", channels=["sms"])
    db.commit()
    drain(senders.broker)
    assert senders.sms.calls == 1 and senders.broker.dead_letters == []
    message = fresh(db, message)
    assert message.status == "failed" and f"(code {code})" in message.status_reason
    db.refresh(customer)
    assert customer.phone_status == status
    stop = db.scalar(select(Suppression).where(Suppression.address == customer.phone, Suppression.reason == "stop"))
    assert (stop is not None) == (code == 21610)


def test_sendgrid_400_marks_the_address_invalid(db, senders, customer):
    senders.email.script = [PermanentProviderError("Bad Request: does not contain a valid address", code=400)]
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:400", channels=["email"])
    db.commit()
    drain(senders.broker)
    assert senders.email.calls == 1 and fresh(db, message).status == "failed"
    db.refresh(customer)
    assert customer.email_status == "invalid"


def test_unknown_outcome_is_never_resent(db, senders, customer):
    senders.email.script = [UnknownDeliveryError("read timeout after the request was sent")]
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:u", channels=["email"])
    db.commit()
    drain(senders.broker)
    enqueue(message.id)
    drain(senders.broker)
    assert senders.email.calls == 1
    message = fresh(db, message)
    assert message.status == "unknown" and "waiting for the provider's callback" in message.status_reason
    assert senders.broker.dead_letters == []


def meanwhile(senders, change):
    """Make the email sender run ``change(row)`` in another session once the provider took the mail."""
    real_send = senders.email.send_email

    def send_then_change(email):
        result = real_send(email)
        with messaging._factory()() as other:
            other.info["system"] = True
            change(other, other.get(Message, email.message_id))
            other.commit()
        return result

    senders.email.send_email = send_then_change


def test_a_callback_that_beats_the_worker_is_not_overwritten(db, senders, customer):
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:cb", channels=["email"])
    db.commit()
    # The provider's "delivered" webhook lands before the worker records "sent".
    meanwhile(senders, lambda _session, row: setattr(row, "status", "delivered"))
    assert messaging.deliver(message.id) == "delivered"
    message = fresh(db, message)
    assert message.status == "delivered" and message.provider_id == "rec-email-1"


def test_a_callback_that_beats_a_timeout_is_not_overwritten_with_unknown(db, senders, customer):
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:cb-timeout", channels=["email"])
    db.commit()
    # The provider took the mail and its "delivered" webhook landed, then our wait for its answer timed out.
    meanwhile(senders, lambda _session, row: setattr(row, "status", "delivered"))
    took_it = senders.email.send_email

    def then_time_out(email):
        took_it(email)
        raise UnknownDeliveryError("read timeout after the request was sent")

    senders.email.send_email = then_time_out
    assert messaging.deliver(message.id) == "delivered"
    assert fresh(db, message).status == "delivered"


def test_a_row_deleted_while_the_provider_had_it_is_reported_missing(db, senders, customer):
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:gone", channels=["email"])
    db.commit()
    meanwhile(senders, lambda session, row: session.delete(row))
    assert messaging.deliver(message.id) == "missing"
    assert senders.email.calls == 1


def test_invitations_by_sms_respect_quiet_hours(db, senders, customer):
    (invite,) = queue_notice(db, kind="invitation", customer=customer, key="invite:q", channels=["sms"])
    db.commit()
    with time_machine.travel(local(2030, 1, 14, 23, 30), tick=False):
        assert messaging.deliver(invite.id) == "queued"
    assert senders.sms.calls == 0

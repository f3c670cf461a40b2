"""The sweeper re-enqueues what Redis lost or a dead worker left; the purge forgets what has expired."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

import workers.webhooks
from workers import messaging
from portal import tokens
from portal.models import (
    IdempotencyRecord,
    MagicLinkToken,
    Message,
    MessageEvent,
    PortalSession,
    ProcessedEvent,
    Reminder,
    WebhookDelivery,
)
from portal.outbox import enqueue, queue_notice
from scheduler.housekeeping import purge, sweep
from scheduler.planning import plan_reminders
from scheduler.reminders import scan_due
from tests.factories import make_booking, make_business, make_customer
from tests.messages.support import RecordingSender, drain
from tests.scheduler.conftest import T0, queued_message_ids

GRACE = 120  # settings.outbox_grace_s


@pytest.fixture
def customer(db):
    return make_customer(db, make_business(db))


def notice(db, customer, key="k"):
    [message] = queue_notice(db, kind="invoice_issued", customer=customer, key=key)
    db.commit()
    return message


def test_queued_message_lost_by_redis_is_enqueued_again_after_the_grace(
        db, session_factory, settings, customer, clock, stub_broker, redis_client):
    message = notice(db, customer)
    assert queued_message_ids(stub_broker) == [message.id]
    stub_broker.flush_all()  # Redis lost it

    clock.move_to(T0 + timedelta(seconds=GRACE - 1))
    assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 0
    clock.move_to(T0 + timedelta(seconds=GRACE + 1))
    assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 1
    assert queued_message_ids(stub_broker) == [message.id]
    # Not pushed again at every sweep while it waits for a worker...
    assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 0
    # ...but at once if Redis is wiped again (the marks went with it).
    redis_client.flushdb()
    stub_broker.flush_all()
    assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 1
    assert queued_message_ids(stub_broker) == [message.id]


def test_message_held_for_quiet_hours_waits_for_its_time(
        db, session_factory, settings, customer, clock, stub_broker, redis_client):
    message = notice(db, customer)
    message.not_before = T0 + timedelta(hours=10)
    db.commit()
    stub_broker.flush_all()
    clock.move_to(T0 + timedelta(hours=9))
    assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 0
    clock.move_to(T0 + timedelta(hours=10, seconds=GRACE + 1))
    assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 1


def test_message_sending_past_its_lease_is_enqueued_again(
        db, session_factory, settings, customer, clock, stub_broker, redis_client):
    message = notice(db, customer)
    message.status, message.lease_until = "sending", T0 + timedelta(seconds=300)
    db.commit()
    stub_broker.flush_all()
    clock.move_to(T0 + timedelta(seconds=299))
    assert sweep(session_factory, settings, redis_client=redis_client)["stuck"] == 0
    clock.move_to(T0 + timedelta(seconds=301))
    assert sweep(session_factory, settings, redis_client=redis_client) == {"lost": 0, "stuck": 1, "webhooks": 0}
    assert queued_message_ids(stub_broker) == [message.id]


def test_finished_messages_are_left_alone(db, session_factory, settings, customer, clock, stub_broker, redis_client):
    for status in ("sent", "delivered", "failed", "skipped", "unknown", "dead"):
        notice(db, customer, key=status).status = status
    db.commit()
    stub_broker.flush_all()
    clock.move_to(T0 + timedelta(days=1))
    assert sweep(session_factory, settings, redis_client=redis_client) == {"lost": 0, "stuck": 0, "webhooks": 0}
    assert queued_message_ids(stub_broker) == []


def test_redis_wiped_while_reminders_were_pending(db, session_factory, settings, clock, stub_broker, redis_client):
    """Every pending reminder still goes out, once: the rows, not Redis, are the truth."""
    email = RecordingSender("rec-email")
    messaging.configure(settings, email_sender=email, sms_sender=RecordingSender("rec-sms"),
                        session_factory=session_factory)
    try:
        business = make_business(db)
        bookings = [make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=2, minutes=i))
                    for i in range(3)]
        for booking in bookings:
            plan_reminders(db, booking)
        db.commit()
        clock.move_to(T0 + timedelta(days=1, minutes=5))
        assert scan_due(session_factory) == {"enqueued": 3}
        pending = sorted(queued_message_ids(stub_broker))
        assert len(pending) == 3

        stub_broker.flush_all()  # the queue is wiped before any worker took them
        redis_client.flushdb()
        clock.move_to(T0 + timedelta(days=1, minutes=5, seconds=GRACE + 1))
        assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 3
        assert sorted(queued_message_ids(stub_broker)) == pending  # each once
        assert scan_due(session_factory) == {}  # the reminders themselves are not planned again

        drain(stub_broker)  # the real deliver_message actor
        assert sorted(e.to for e in email.sent) == sorted(b.customer.email for b in bookings)
        db.expire_all()
        assert {m.status for m in db.scalars(select(Message).where(Message.id.in_(pending)))} == {"sent"}

        # Redis wiped again, stale duplicates of the jobs around: nothing goes out twice.
        stub_broker.flush_all()
        redis_client.flushdb()
        clock.move_to(T0 + timedelta(days=1, hours=1))
        assert sweep(session_factory, settings, redis_client=redis_client)["lost"] == 0
        for message_id in pending:
            enqueue(message_id)
        drain(stub_broker)
        assert len(email.sent) == 3
    finally:
        messaging.reset()


def test_overdue_webhook_deliveries_are_enqueued_again(
        db, session_factory, settings, customer, clock, redis_client, monkeypatch):
    sent = []

    class Actor:
        @staticmethod
        def send(delivery_id):
            sent.append(delivery_id)

    monkeypatch.setattr(workers.webhooks, "deliver_webhook", Actor, raising=False)
    business_id = customer.business_id
    due = WebhookDelivery(business_id=business_id, event_id="e1", event_type="booking.updated", url="http://x",
                          next_attempt_at=T0)
    later = WebhookDelivery(business_id=business_id, event_id="e2", event_type="booking.updated", url="http://x",
                            next_attempt_at=T0 + timedelta(hours=1))
    done = WebhookDelivery(business_id=business_id, event_id="e3", event_type="booking.updated", url="http://x",
                           status="delivered", next_attempt_at=T0)
    db.add_all([due, later, done])
    db.commit()
    clock.move_to(T0 + timedelta(seconds=GRACE + 1))
    assert sweep(session_factory, settings, redis_client=redis_client)["webhooks"] == 1
    assert sent == [due.id]


def test_purge_removes_expired_sign_in_material(db, session_factory, settings, customer, clock):
    tokens.mint(db, customer, "signin", ttl_s=900)
    tokens.mint(db, customer, "invitation", ttl_s=7 * 86400)
    idle = settings.session_idle_timeout_s
    db.add_all([
        PortalSession(business_id=customer.business_id, customer_id=customer.id, session_hash="a" * 64,
                      csrf_token="x", expires_at=T0 + timedelta(hours=12), last_seen_at=T0),
        PortalSession(business_id=customer.business_id, customer_id=customer.id, session_hash="b" * 64,
                      csrf_token="x", expires_at=T0 + timedelta(hours=12),
                      last_seen_at=T0 + timedelta(hours=1)),
    ])
    db.commit()
    clock.move_to(T0 + timedelta(hours=1, seconds=idle - 1))
    counts = purge(session_factory, settings)
    assert (counts["tokens"], counts["sessions"]) == (1, 1)  # the sign-in link and the idle session
    db.expire_all()
    assert [t.purpose for t in db.scalars(select(MagicLinkToken))] == ["invitation"]
    assert [s.session_hash[0] for s in db.scalars(select(PortalSession))] == ["b"]


def test_purge_forgets_api_idempotency_keys_after_their_lifetime(db, session_factory, settings, customer, clock):
    def record(key: str) -> IdempotencyRecord:
        return IdempotencyRecord(business_id=customer.business_id, key=key, request_hash="h", response_status=202,
                                 response_body="{}")

    db.add(record("old"))
    db.commit()
    clock.move_to(T0 + timedelta(hours=1))
    db.add(record("recent"))
    db.commit()
    clock.move_to(T0 + timedelta(seconds=settings.idempotency_key_ttl_s))
    assert purge(session_factory, settings)["idempotency_keys"] == 1
    db.expire_all()
    assert [r.key for r in db.scalars(select(IdempotencyRecord))] == ["recent"]


def test_purge_prunes_delivery_logs_after_the_retention(db, session_factory, settings, customer, clock):
    old = notice(db, customer, key="old")
    booking = make_booking(db, customer, starts_at=T0 + timedelta(days=1, hours=2))
    plan_reminders(db, booking)
    db.add(ProcessedEvent(source="twilio", event_id="SM-old"))
    db.add(WebhookDelivery(business_id=customer.business_id, event_id="w-old", event_type="x", url="http://x",
                           status="delivered"))
    db.add(WebhookDelivery(business_id=customer.business_id, event_id="w-pending", event_type="x",
                           url="http://x"))
    db.commit()
    old.status = "delivered"
    db.commit()
    old_id = old.id
    clock.move_to(T0 + timedelta(days=settings.delivery_log_retention_days - 1))
    recent = notice(db, customer, key="recent")
    db.add(ProcessedEvent(source="twilio", event_id="SM-recent"))
    for reminder in db.scalars(select(Reminder)):
        reminder.status = "enqueued"
    db.commit()
    recent_id = recent.id

    clock.move_to(T0 + timedelta(days=settings.delivery_log_retention_days, hours=3))
    counts = purge(session_factory, settings)
    assert counts == {"tokens": 0, "sessions": 0, "messages": 1, "processed_events": 1,
                      "webhook_deliveries": 1, "reminders": 1, "idempotency_keys": 0}
    db.expire_all()
    assert db.scalars(select(Message.id)).all() == [recent_id]
    assert db.scalar(select(func.count()).select_from(MessageEvent).where(MessageEvent.message_id == old_id)) == 0
    assert db.scalars(select(ProcessedEvent.event_id)).all() == ["SM-recent"]
    assert db.scalars(select(WebhookDelivery.event_id)).all() == ["w-pending"]
    # The 24 h reminder (due a day before the appointment) is past the retention; the 2 h one is not yet.
    assert db.scalars(select(Reminder.offset_minutes)).all() == [120]

"""One active scheduler: a Redis lock with expiry; a standby takes over when the leader dies."""

import logging
import threading
import time
from datetime import timedelta

import pytest
import redis
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from portal.models import Message, Reminder, utcnow
from scheduler.leader import LOCK_NAME, Leader
from scheduler.main import STATUS_KEY, SchedulerService
from scheduler.planning import plan_reminders
from tests.factories import make_booking, make_business, make_customer
from tests.scheduler.conftest import T0, queued_message_ids


def wait_for(condition, timeout=15.0):
    """Poll until ``condition()`` is true; fail after ``timeout`` seconds (a deadline, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {condition.__name__}")


def test_one_leader_at_a_time_and_a_standby_takes_over_after_expiry(redis_client):
    first, second = Leader(redis_client, ttl_s=0.5), Leader(redis_client, ttl_s=0.5)
    assert first.tick() and first.is_leader
    assert not second.tick() and not second.is_leader
    assert first.tick()  # renewed
    assert redis_client.get(LOCK_NAME).decode() == first.identity

    # The leader dies (stops renewing without releasing): the lock expires.
    def second_took_over():
        return second.tick()

    wait_for(second_took_over)
    assert redis_client.get(LOCK_NAME).decode() == second.identity
    # The old leader comes back: it finds the lock taken and stands by.
    assert not first.tick() and not first.is_leader
    assert second.tick()


def test_a_clean_stop_hands_over_at_once(redis_client):
    first, second = Leader(redis_client, ttl_s=30), Leader(redis_client, ttl_s=30)
    assert first.tick() and not second.tick()
    first.release()
    assert not first.is_leader
    assert second.tick()


def due_reminder(db, business, minutes_ago=1):
    """A planned reminder that is already due (the appointment is a day ahead)."""
    booking = make_booking(db, make_customer(db, business), starts_at=utcnow() + timedelta(days=1))
    db.add(Reminder(business_id=business.id, booking_id=booking.id, booking_version=booking.version,
                    offset_minutes=120, due_at=utcnow() - timedelta(minutes=minutes_ago)))
    db.commit()
    return booking


def test_two_schedulers_only_the_leader_acts(db, session_factory, settings, redis_client, stub_broker, clock):
    business = make_business(db)
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=2))
    plan_reminders(db, booking)
    db.commit()
    one = SchedulerService(settings, session_factory, redis_client)
    two = SchedulerService(settings, session_factory, redis_client)
    assert [one.elect(), two.elect()] == [True, False]

    clock.move_to(T0 + timedelta(days=1))
    assert two.scan() is None and two.sweep() is None and two.purge() is None  # standing by
    assert one.scan() == {"enqueued": 1}
    assert one.sweep() == {"lost": 0, "stuck": 0, "webhooks": 0}
    assert len(queued_message_ids(stub_broker)) == 1
    assert set(redis_client.hkeys(STATUS_KEY)) == {b"scan", b"sweep"}


class SerialSession(Session):
    """The test's sessions share one connection: let one scheduler thread use it at a time."""

    gate = threading.RLock()

    def __enter__(self):
        self.gate.acquire()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self.gate.release()


def test_apscheduler_runs_the_jobs_and_the_standby_takes_over(connection, settings, redis_client, stub_broker):
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False,
                           class_=SerialSession)
    with factory() as db:
        db.info["system"] = True
        business = make_business(db)
        first_booking = due_reminder(db, business)

    fast = dict(lock_ttl_s=1, elect_s=0.1, scan_s=0.1, sweep_s=0.2, purge_s=0.5, threads=1)
    services = [SchedulerService(settings, factory, redis_client, **fast) for _ in range(2)]
    for service in services:
        service.start()
    try:
        def reminder_enqueued():
            return len(queued_message_ids(stub_broker)) == 1

        wait_for(reminder_enqueued)
        leader = next(s for s in services if s.leader.is_leader)
        standby = next(s for s in services if s is not leader)
        # The leader dies without releasing the lock.
        leader.stop(release=False)

        def standby_leads():
            return standby.leader.is_leader

        wait_for(standby_leads)
        with factory() as db:
            db.info["system"] = True
            second_booking = due_reminder(db, business)

        def second_enqueued():
            return len(queued_message_ids(stub_broker)) == 2

        wait_for(second_enqueued)
    finally:
        for service in services:
            service.stop()
    with factory() as db:
        db.info["system"] = True
        sent = db.scalars(select(Message.booking_id).order_by(Message.id)).all()
    assert sent == [first_booking.id, second_booking.id]  # each once


def test_redis_outage_is_one_line_per_outage_not_a_traceback_per_tick(caplog):
    leader = Leader(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1), ttl_s=30)
    caplog.set_level(logging.INFO, logger="scheduler.leader")
    assert not leader.tick() and not leader.tick()
    [record] = caplog.records
    assert "Redis unavailable" in record.getMessage() and record.exc_info is None


def test_database_outage_skips_the_job_with_one_line(settings, redis_client, caplog, tmp_path):
    unreachable = sessionmaker(bind=create_engine(f"sqlite:///{tmp_path}/missing-dir/portal.db"))
    service = SchedulerService(settings, unreachable, redis_client)
    assert service.elect()
    caplog.set_level(logging.WARNING)
    assert service.scan() is None and service.purge() is None
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == ["scan skipped", "purge skipped"]
    assert all("database unavailable" in r.getMessage() and r.exc_info is None for r in caplog.records)
    service.leader.release()

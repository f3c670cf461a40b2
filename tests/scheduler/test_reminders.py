"""The due-scan: due reminders become outbox messages once, for the booking as it is now."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from portal.models import Message, Reminder
from scheduler.planning import plan_reminders
from scheduler.reminders import due_query, explain_due_scan, scan_due
from tests.factories import make_booking, make_business, make_customer
from tests.scheduler.conftest import T0, queued_message_ids

START = T0 + timedelta(days=3)  # the appointment
DAY_BEFORE, TWO_HOURS = START - timedelta(hours=24), START - timedelta(hours=2)


@pytest.fixture
def booking(db, clock):
    customer = make_customer(db, make_business(db))
    booking = make_booking(db, customer, starts_at=START)
    plan_reminders(db, booking)
    db.commit()
    return booking


def by_offset(db, booking):
    db.expire_all()
    rows = db.scalars(select(Reminder).where(Reminder.booking_id == booking.id)).all()
    return {(r.offset_minutes, r.booking_version): r for r in rows}


def messages(db, booking):
    return db.scalars(select(Message).where(Message.booking_id == booking.id).order_by(Message.id)).all()


def test_nothing_is_sent_before_it_is_due(db, session_factory, booking, clock, stub_broker):
    clock.move_to(DAY_BEFORE - timedelta(seconds=1))
    assert scan_due(session_factory) == {}
    assert messages(db, booking) == []


def test_a_due_reminder_is_queued_once(db, session_factory, booking, clock, stub_broker):
    clock.move_to(DAY_BEFORE)
    assert scan_due(session_factory) == {"enqueued": 1}
    [message] = messages(db, booking)
    assert (message.kind, message.status, message.booking_version) == ("appointment_reminder", "queued", 1)
    assert message.idempotency_key.endswith(f":reminder:{by_offset(db, booking)[1440, 1].id}:email")
    assert message.params == {"offset_minutes": 1440}
    assert by_offset(db, booking)[1440, 1].status == "enqueued"
    assert by_offset(db, booking)[120, 1].status == "planned"
    # Enqueued after commit, once; a second scan finds nothing to do.
    assert queued_message_ids(stub_broker) == [message.id]
    assert scan_due(session_factory) == {}
    assert queued_message_ids(stub_broker) == [message.id]

    clock.move_to(TWO_HOURS + timedelta(seconds=30))
    assert scan_due(session_factory) == {"enqueued": 1}
    assert [m.params["offset_minutes"] for m in messages(db, booking)] == [1440, 120]


def test_reschedule_sends_the_new_reminders_not_the_old(db, session_factory, booking, clock, stub_broker):
    clock.move_to(T0 + timedelta(hours=1))
    booking.starts_at += timedelta(days=1)
    booking.ends_at += timedelta(days=1)
    booking.version = 2
    plan_reminders(db, booking)
    db.commit()

    clock.move_to(DAY_BEFORE + timedelta(minutes=1))  # the old 24 h time: nothing
    assert scan_due(session_factory) == {}
    clock.move_to(DAY_BEFORE + timedelta(days=1))
    assert scan_due(session_factory) == {"enqueued": 1}
    [message] = messages(db, booking)
    assert message.booking_version == 2
    rows = by_offset(db, booking)
    assert rows[1440, 1].status == rows[120, 1].status == "cancelled"
    assert rows[1440, 2].status == "enqueued"


def test_cancelled_booking_gets_no_reminder(db, session_factory, booking, clock, stub_broker):
    # Cancelled without its reminders being cancelled (e.g. a race): the scan re-checks.
    booking.status = "cancelled"
    db.commit()
    clock.move_to(DAY_BEFORE)
    assert scan_due(session_factory) == {"cancelled": 1}
    assert messages(db, booking) == []
    reminder = by_offset(db, booking)[1440, 1]
    assert (reminder.status, reminder.status_reason) == ("cancelled", "booking cancelled")


def test_booking_changed_since_planning_gets_no_stale_reminder(db, session_factory, booking, clock, stub_broker):
    booking.version = 3  # moved by a path that has not re-planned yet
    db.commit()
    clock.move_to(DAY_BEFORE)
    assert scan_due(session_factory) == {"cancelled": 1}
    assert by_offset(db, booking)[1440, 1].status_reason == "booking changed (now v3)"
    assert messages(db, booking) == []


def test_catch_up_sends_a_missed_reminder_while_the_appointment_is_ahead(
        db, session_factory, booking, clock, stub_broker):
    clock.move_to(DAY_BEFORE + timedelta(hours=6))  # the scheduler was down for six hours
    assert scan_due(session_factory) == {"enqueued": 1}
    assert by_offset(db, booking)[1440, 1].status == "enqueued"
    assert len(messages(db, booking)) == 1


def test_catch_up_sends_only_the_nearest_of_two_missed_reminders(db, session_factory, booking, clock, stub_broker):
    clock.move_to(START - timedelta(hours=1))  # down since before the 24 h reminder
    assert scan_due(session_factory) == {"skipped": 1, "enqueued": 1}
    rows = by_offset(db, booking)
    assert (rows[1440, 1].status, rows[1440, 1].status_reason) == ("skipped", "superseded by the 120-minute reminder")
    assert rows[120, 1].status == "enqueued"
    assert [m.params["offset_minutes"] for m in messages(db, booking)] == [120]


def test_catch_up_skips_reminders_of_appointments_already_started(
        db, session_factory, booking, clock, stub_broker, caplog):
    clock.move_to(START + timedelta(minutes=10))
    with caplog.at_level("INFO", logger="scheduler.reminders"):
        assert scan_due(session_factory) == {"skipped": 2}
    assert messages(db, booking) == []
    assert {r.status_reason for r in by_offset(db, booking).values()} == {
        f"appointment already started at {START:%Y-%m-%d %H:%M} UTC"}
    assert "appointment already started" in caplog.text


def test_backlog_larger_than_a_batch_is_drained_oldest_first(db, session_factory, clock, stub_broker):
    customer = make_customer(db, make_business(db, reminder_offsets=[60]))
    bookings = [make_booking(db, customer, starts_at=T0 + timedelta(hours=2, minutes=i)) for i in range(7)]
    for b in bookings:
        plan_reminders(db, b)
    db.commit()
    clock.move_to(T0 + timedelta(hours=1, minutes=30))
    assert scan_due(session_factory, batch=3) == {"enqueued": 7}
    assert len(queued_message_ids(stub_broker)) == 7


def test_due_scan_plan_uses_the_partial_index(db, connection):
    """A plan check, not a timing: the scan reads ix_reminder_due (status = 'planned')."""
    if connection.dialect.name == "postgresql":
        # A nearly empty test table is cheaper to read whole; forbid that to see
        # whether the partial index can answer the query at all.
        connection.execute(text("SET LOCAL enable_seqscan = off"))
    plan = explain_due_scan(connection, T0)
    assert "ix_reminder_due" in plan, plan
    sql = str(due_query(T0).compile(dialect=connection.dialect))
    assert "status = 'planned'" in sql  # a literal, so the planner can match the index predicate


def test_customer_who_cannot_be_reached_is_skipped_with_the_reason(db, session_factory, clock, stub_broker):
    customer = make_customer(db, make_business(db), email=None, phone=None)
    booking = make_booking(db, customer, starts_at=START)
    plan_reminders(db, booking)
    db.commit()
    clock.move_to(DAY_BEFORE)
    assert scan_due(session_factory) == {"skipped": 1}
    reminder = by_offset(db, booking)[1440, 1]
    assert reminder.status == "skipped" and reminder.status_reason.startswith("not sent:")
    assert queued_message_ids(stub_broker) == []

"""Reminders are planned as rows at the business's offsets, and re-planned on every change."""

from datetime import timedelta

from sqlalchemy import select

from portal.models import Reminder
from scheduler.planning import cancel_reminders, plan_reminders, reminder_offsets
from tests.factories import make_booking, make_business, make_customer
from tests.scheduler.conftest import T0


def reminders(db, booking):
    db.expire_all()
    return db.scalars(select(Reminder).where(Reminder.booking_id == booking.id).order_by(Reminder.id)).all()


def test_default_offsets_are_24h_and_2h_before(db, clock):
    business = make_business(db)
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=3))
    planned = plan_reminders(db, booking)
    assert [(r.offset_minutes, r.due_at) for r in planned] == [
        (1440, booking.starts_at - timedelta(hours=24)),
        (120, booking.starts_at - timedelta(hours=2)),
    ]
    assert all(r.status == "planned" and r.booking_version == booking.version for r in planned)


def test_business_offsets_are_used(db, clock):
    business = make_business(db, reminder_offsets=[45, 3 * 24 * 60, 45, "junk", -5])
    assert reminder_offsets(business) == [4320, 45]
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=5))
    plan_reminders(db, booking)
    assert [(r.offset_minutes, r.due_at) for r in reminders(db, booking)] == [
        (4320, booking.starts_at - timedelta(days=3)),
        (45, booking.starts_at - timedelta(minutes=45)),
    ]


def test_offsets_already_past_are_not_planned(db, clock):
    business = make_business(db)
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(hours=5))
    assert [r.offset_minutes for r in plan_reminders(db, booking)] == [120]


def test_reschedule_cancels_the_old_reminders_and_plans_new_ones(db, clock):
    business = make_business(db)
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=3))
    old = plan_reminders(db, booking)
    booking.starts_at += timedelta(days=2)
    booking.ends_at += timedelta(days=2)
    booking.version += 1
    new = plan_reminders(db, booking)

    rows = reminders(db, booking)
    assert {r.id for r in rows} == {r.id for r in old} | {r.id for r in new}
    for r in rows:
        if r.booking_version == 1:
            assert (r.status, r.status_reason) == ("cancelled", "booking changed (now v2)")
        else:
            assert r.status == "planned"
            assert r.due_at == booking.starts_at - timedelta(minutes=r.offset_minutes)
    assert sorted(r.offset_minutes for r in rows if r.status == "planned") == [120, 1440]


def test_planning_twice_for_the_same_version_changes_nothing(db, clock):
    business = make_business(db)
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=3))
    first = plan_reminders(db, booking)
    again = plan_reminders(db, booking)
    assert [r.id for r in again] == [r.id for r in first]
    assert [r.status for r in reminders(db, booking)] == ["planned", "planned"]


def test_cancellation_cancels_pending_reminders_only(db, clock):
    business = make_business(db)
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=3))
    day_before, two_hours = plan_reminders(db, booking)
    day_before.status = "enqueued"  # already went out
    db.flush()
    booking.status = "cancelled"
    cancel_reminders(db, booking)
    assert [(r.status, r.status_reason) for r in reminders(db, booking)] == [
        ("enqueued", None), ("cancelled", "booking cancelled")]


def test_planning_a_cancelled_booking_cancels_its_reminders(db, clock):
    business = make_business(db)
    booking = make_booking(db, make_customer(db, business), starts_at=T0 + timedelta(days=3))
    plan_reminders(db, booking)
    booking.status = "cancelled"
    assert plan_reminders(db, booking) == []
    assert {r.status for r in reminders(db, booking)} == {"cancelled"}

"""The demo business's upcoming bookings have their reminders planned (``portal demo`` / ``portal dev``)."""

from sqlalchemy import select

from portal.demo import seed
from portal.models import Booking, Reminder


def test_demo_plans_reminders_for_upcoming_bookings(db):
    seed(db)
    seed(db)  # re-running the demo plans nothing twice
    upcoming = db.scalars(select(Booking).where(Booking.status == "scheduled")).all()
    assert upcoming
    rows = db.scalars(select(Reminder).where(Reminder.status == "planned")).all()
    assert sorted((r.booking_id, r.offset_minutes) for r in rows) == sorted(
        (b.id, offset) for b in upcoming for offset in (1440, 120))

"""Reminders are rows: planned when a booking is created or rescheduled, the old
ones cancelled, and enqueued by the scheduler when due."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.models import Booking, Business, Reminder, utcnow


def plan_reminders(session: Session, booking: Booking, business: Business | None = None) -> list[Reminder]:
    """Cancel the booking's pending reminders and plan new ones for its current version."""
    cancel_reminders(session, booking, reason=f"booking changed (v{booking.version})")
    if booking.status != "scheduled":
        return []
    business = business or session.get(Business, booking.business_id)
    now = utcnow()
    planned = []
    for offset in sorted(set(business.reminder_offsets or []), reverse=True):
        due = booking.starts_at - timedelta(minutes=int(offset))
        if booking.starts_at <= now:
            continue
        exists = session.scalar(select(Reminder.id).where(
            Reminder.booking_id == booking.id, Reminder.booking_version == booking.version,
            Reminder.offset_minutes == int(offset)))
        if exists:
            continue
        reminder = Reminder(business_id=booking.business_id, booking_id=booking.id,
                            booking_version=booking.version, offset_minutes=int(offset), due_at=due)
        session.add(reminder)
        planned.append(reminder)
    session.flush()
    return planned


def cancel_reminders(session: Session, booking: Booking, reason: str = "booking cancelled") -> None:
    session.execute(
        update(Reminder)
        .where(Reminder.booking_id == booking.id, Reminder.status == "planned")
        .values(status="cancelled", status_reason=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )

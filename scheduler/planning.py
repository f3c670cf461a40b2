"""Reminders are rows: planned when a booking is created or rescheduled, the old
ones cancelled, and enqueued by the scheduler when due (``scheduler.reminders``).

Callers bump ``booking.version`` whenever the appointment time changes, then
call ``plan_reminders`` in the same transaction; on cancellation they call
``cancel_reminders`` (``plan_reminders`` on a cancelled booking does the same).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.models import Booking, Business, Reminder, utcnow
from portal.models.business import DEFAULT_REMINDER_OFFSETS

log = logging.getLogger(__name__)


def reminder_offsets(business: Business) -> list[int]:
    """The business's offsets in minutes, largest first; bad entries are ignored."""
    raw = business.reminder_offsets if business.reminder_offsets is not None else DEFAULT_REMINDER_OFFSETS
    offsets = set()
    for value in raw:
        try:
            minutes = int(value)
        except (TypeError, ValueError):
            continue
        if minutes > 0:
            offsets.add(minutes)
    return sorted(offsets, reverse=True)


def plan_reminders(session: Session, booking: Booking, business: Business | None = None,
                   now: datetime | None = None) -> list[Reminder]:
    """Make the booking's planned reminders match its current version; return the planned ones.

    Reminders of older versions are cancelled. A reminder whose time has
    already passed when the booking is (re)planned is not planned: the booking
    or reschedule confirmation sent now tells the customer just as well.
    Calling it twice for the same version changes nothing.
    """
    now = now or utcnow()
    if booking.status != "scheduled":
        cancel_reminders(session, booking, reason=f"booking {booking.status}")
        return []
    session.flush()  # the booking's id and version must be in the database
    session.execute(
        update(Reminder)
        .where(Reminder.booking_id == booking.id, Reminder.status == "planned",
               Reminder.booking_version != booking.version)
        .values(status="cancelled", status_reason=f"booking changed (now v{booking.version})", updated_at=now)
    )
    business = business or session.get(Business, booking.business_id)
    offsets = reminder_offsets(business)
    existing = {
        r.offset_minutes: r
        for r in session.scalars(select(Reminder).where(
            Reminder.booking_id == booking.id, Reminder.booking_version == booking.version,
        ).execution_options(populate_existing=True))
    }
    planned = []
    for offset in offsets:
        due = booking.starts_at - timedelta(minutes=offset)
        reminder = existing.get(offset)
        if reminder is not None:
            # Same version planned again (an update that did not move the
            # appointment): keep what was already sent, follow the rest.
            if reminder.status in ("planned", "cancelled") and due > now:
                reminder.due_at, reminder.status, reminder.status_reason = due, "planned", None
                planned.append(reminder)
            elif reminder.status == "planned":
                reminder.status, reminder.status_reason = "cancelled", "its time passed before it was due"
            continue
        if due <= now:
            continue
        reminder = Reminder(business_id=booking.business_id, booking_id=booking.id,
                            booking_version=booking.version, offset_minutes=offset, due_at=due)
        session.add(reminder)
        planned.append(reminder)
    # Offsets the business no longer uses.
    for offset, reminder in existing.items():
        if offset not in offsets and reminder.status == "planned":
            reminder.status, reminder.status_reason = "cancelled", "offset no longer used by the business"
    session.flush()
    return planned


def cancel_reminders(session: Session, booking: Booking, reason: str = "booking cancelled") -> None:
    """Cancel every reminder of the booking that has not gone out yet."""
    session.execute(
        update(Reminder)
        .where(Reminder.booking_id == booking.id, Reminder.status == "planned")
        .values(status="cancelled", status_reason=reason[:200], updated_at=utcnow())
    )

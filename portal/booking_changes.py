"""Customer changes to a booking: free slots, reschedule, cancel.

Every function takes a session opened with ``tenant_session`` for the
customer's business and the signed-in customer's id: a booking of another
customer or another business is ``NotFound``, never a different error.

Notice semantics (both reschedule and cancel, inclusive): a change is allowed
while ``now + notice <= starts_at``, i.e. up to and including the exact moment
the notice window starts; one microsecond later it is refused. A new slot must
itself start at least ``reschedule_min_notice_minutes`` from now (same rule) and
no later than ``now + booking_horizon_days``.

Each change runs in the caller's ONE transaction: the booking row (new time or
status, ``version`` + 1), the outbox confirmation, the reminders, the outbound
webhook and the live event are committed together or not at all.

Race safety of a reschedule: the provider's row is locked (``SELECT ... FOR
UPDATE`` on PostgreSQL), overlap is re-checked against committed bookings, and
the partial unique index ``uq_booking_provider_slot`` turns any remaining race
into ``Conflict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, not_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, joinedload

from portal import events
from portal.errors import Conflict, PolicyError, ValidationError
from portal.models import Booking, Business, Customer, Service, ServiceProvider, utcnow
from portal.outbox import queue_notice
from portal.pagination import PER_PAGE, Page, fetch_page
from portal.selfservice import get_owned
from portal.slots import free_slots, overlaps
from portal.webhooks_out import record_event
from scheduler.planning import cancel_reminders, plan_reminders

BOOKING_MISSING = "This booking does not exist."
SLOT_TAKEN = "Sorry, that time was just taken by someone else. Please choose another time."
MAX_REASON = 1000


@dataclass(frozen=True)
class Allowed:
    """Whether a change is allowed now, and if not, a sentence saying why."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _aware(value: datetime | None) -> datetime:
    value = value or utcnow()
    if value.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    return value.astimezone(timezone.utc)


def within_notice(starts_at: datetime, now: datetime, notice_minutes: int) -> bool:
    """Inclusive: True while ``now + notice <= starts_at``."""
    return now + timedelta(minutes=max(notice_minutes, 0)) <= starts_at


def get_booking(session: Session, customer_id: int, public_id: str, *, for_update: bool = False) -> Booking:
    """The signed-in customer's booking by its public id, else NotFound."""
    return get_owned(session, Booking, customer_id, public_id, missing=BOOKING_MISSING, for_update=for_update)


# A list card shows the service and provider names: loaded with the booking, not one query per card.
_CARD = (joinedload(Booking.service), joinedload(Booking.provider))


def _upcoming(now: datetime):
    return and_(Booking.status == "scheduled", Booking.ends_at > now)


def upcoming_bookings(session: Session, customer_id: int, now: datetime | None = None) -> list[Booking]:
    """Scheduled bookings not yet over, soonest first."""
    now = _aware(now)
    return list(session.scalars(select(Booking).options(*_CARD)
                                .where(Booking.customer_id == customer_id, _upcoming(now))
                                .order_by(Booking.starts_at, Booking.id)))


def past_bookings(session: Session, customer_id: int, page: int = 1, now: datetime | None = None,
                  per_page: int = PER_PAGE) -> Page[Booking]:
    """Everything else (over, cancelled, completed), latest first, a page at a time."""
    now = _aware(now)
    stmt = (select(Booking).options(*_CARD)
            .where(Booking.customer_id == customer_id, not_(_upcoming(now)))
            .order_by(Booking.starts_at.desc(), Booking.id.desc()))
    return fetch_page(session, stmt, page, per_page)


def can_reschedule(business: Business, booking: Booking, now: datetime | None = None) -> Allowed:
    now = _aware(now)
    if not business.allow_reschedule:
        return Allowed(False, "Online rescheduling is not available. Please contact us.")
    if booking.status != "scheduled":
        return Allowed(False, "Only a scheduled booking can be rescheduled.")
    if booking.provider_id is None:
        return Allowed(False, "This booking cannot be rescheduled online. Please contact us.")
    if booking.reschedule_count >= business.max_reschedules:
        return Allowed(False, "This booking has been rescheduled as many times as allowed online. Please contact us.")
    if not within_notice(booking.starts_at, now, business.reschedule_min_notice_minutes):
        return Allowed(False, "It is too late to reschedule this booking online. Please contact us.")
    return Allowed(True)


def can_cancel(business: Business, booking: Booking, now: datetime | None = None) -> Allowed:
    now = _aware(now)
    if not business.allow_cancel:
        return Allowed(False, "Online cancellation is not available. Please contact us.")
    if booking.status != "scheduled":
        return Allowed(False, "Only a scheduled booking can be cancelled.")
    if not within_notice(booking.starts_at, now, business.cancel_min_notice_minutes):
        return Allowed(False, "It is too late to cancel this booking online. Please contact us.")
    return Allowed(True)


def duration_of(session: Session, booking: Booking) -> timedelta:
    """How long the booking lasts when moved: its own length, as the business booked it
    (a two-hour deep clean stays two hours); the service's usual duration only when the
    booking has no length of its own."""
    own = booking.ends_at - booking.starts_at
    if own > timedelta(0):
        return own
    service = session.get(Service, booking.service_id) if booking.service_id else None
    if service is not None and service.duration_minutes and service.duration_minutes > 0:
        return timedelta(minutes=service.duration_minutes)
    return timedelta(hours=1)


def _busy(session: Session, provider_id: int, exclude_id: int, start: datetime, end: datetime):
    rows = session.execute(
        select(Booking.starts_at, Booking.ends_at)
        .where(Booking.provider_id == provider_id, Booking.status == "scheduled", Booking.id != exclude_id,
               Booking.starts_at < end, Booking.ends_at > start)
        .execution_options(populate_existing=True)
    ).all()
    return [(s, e) for s, e in rows]


def slot_window(business: Business, now: datetime) -> tuple[datetime, datetime]:
    earliest = now + timedelta(minutes=max(business.reschedule_min_notice_minutes, 0))
    latest = now + timedelta(days=max(business.booking_horizon_days, 0))
    return earliest, latest


def available_slots(session: Session, business: Business, booking: Booking, now: datetime | None = None,
                    *, provider: ServiceProvider | None = None) -> list[datetime]:
    """Free start times (aware UTC) this booking could move to; [] if it cannot be rescheduled."""
    now = _aware(now)
    if not can_reschedule(business, booking, now):
        return []
    provider = provider or session.get(ServiceProvider, booking.provider_id)
    if provider is None:
        return []
    duration = duration_of(session, booking)
    earliest, latest = slot_window(business, now)
    busy = _busy(session, provider.id, booking.id, earliest, latest + duration)
    slots = free_slots(working_hours=provider.working_hours or {}, tz=business.timezone, duration=duration,
                       busy=busy, earliest=earliest, latest=latest)
    return [s for s in slots if s != booking.starts_at]


def _lock_provider(session: Session, provider_id: int) -> ServiceProvider:
    # Serialises reschedules onto this provider: the second waits here until
    # the first commits, then sees its booking in the overlap check below.
    provider = session.scalar(select(ServiceProvider).where(ServiceProvider.id == provider_id)
                              .with_for_update().execution_options(populate_existing=True))
    if provider is None:
        raise PolicyError("This booking cannot be rescheduled online. Please contact us.")
    return provider


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def live_payload(booking: Booking) -> dict:
    """What open portal pages receive on ``booking_updated`` (see portal_web/static/live.js)."""
    return {"booking": booking.public_id, "status": booking.status, "starts_at": _iso(booking.starts_at),
            "ends_at": _iso(booking.ends_at), "version": booking.version}


def reschedule(session: Session, business: Business, customer_id: int, public_id: str, new_start: datetime,
               *, expected_version: int | None = None, now: datetime | None = None) -> Booking:
    """Move the customer's booking to ``new_start`` (one of ``available_slots``)."""
    now = _aware(now)
    new_start = _aware(new_start)
    booking = get_booking(session, customer_id, public_id, for_update=True)
    if expected_version is not None and booking.version != expected_version:
        raise Conflict("This booking changed while you were looking at it. Please review it and try again.")
    allowed = can_reschedule(business, booking, now)
    if not allowed:
        raise PolicyError(allowed.reason)
    provider = _lock_provider(session, booking.provider_id)
    duration = duration_of(session, booking)
    new_end = new_start + duration
    earliest, latest = slot_window(business, now)
    if new_start == booking.starts_at:
        raise ValidationError("Choose a time other than the current one.", {"slot": "unchanged"})
    if new_start < earliest or new_start > latest:
        raise ValidationError("That time is outside the times you can book.", {"slot": "out of range"})
    if overlaps(new_start, new_end, _busy(session, provider.id, booking.id, new_start, new_end)):
        raise Conflict(SLOT_TAKEN)
    if new_start not in free_slots(working_hours=provider.working_hours or {}, tz=business.timezone,
                                   duration=duration, busy=[], earliest=new_start, latest=new_start):
        raise ValidationError("That time is not one of the available times.", {"slot": "not available"})

    previous_start = booking.starts_at
    try:
        with session.begin_nested():
            booking.starts_at, booking.ends_at = new_start, new_end
            booking.version += 1
            booking.reschedule_count += 1
            session.flush()
    except IntegrityError:
        # uq_booking_provider_slot: someone took the very same start time.
        session.expire(booking)
        raise Conflict(SLOT_TAKEN) from None
    except OperationalError as exc:  # SQLite: "database is locked" when writers collide
        session.expire(booking)
        raise Conflict(SLOT_TAKEN) from exc

    customer = session.get(Customer, customer_id)
    queue_notice(session, kind="reschedule_confirmation", customer=customer, booking=booking,
                 key=f"booking:{booking.id}:v{booking.version}",
                 params={"previous_starts_at": _iso(previous_start)})
    plan_reminders(session, booking, business)
    record_event(session, business, "booking.rescheduled", {
        "booking": booking.external_id, "customer": customer.external_id,
        "previous_starts_at": _iso(previous_start), "starts_at": _iso(booking.starts_at),
        "ends_at": _iso(booking.ends_at), "version": booking.version,
        "reschedule_count": booking.reschedule_count, "source": "portal",
    })
    events.emit(session, business.id, customer_id, "booking_updated", live_payload(booking))
    return booking


def cancel(session: Session, business: Business, customer_id: int, public_id: str, reason: str | None = None,
           *, expected_version: int | None = None, now: datetime | None = None) -> Booking:
    """Cancel the customer's booking within the business's policy."""
    now = _aware(now)
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationError(f"The reason must be at most {MAX_REASON} characters.", {"reason": "too long"})
    booking = get_booking(session, customer_id, public_id, for_update=True)
    if expected_version is not None and booking.version != expected_version:
        raise Conflict("This booking changed while you were looking at it. Please review it and try again.")
    allowed = can_cancel(business, booking, now)
    if not allowed:
        raise PolicyError(allowed.reason)
    booking.status = "cancelled"
    booking.cancelled_at = now
    booking.cancel_reason = reason
    booking.version += 1
    session.flush()

    customer = session.get(Customer, customer_id)
    queue_notice(session, kind="cancellation_confirmation", customer=customer, booking=booking,
                 key=f"booking:{booking.id}:v{booking.version}")
    cancel_reminders(session, booking, reason="booking cancelled by the customer")
    record_event(session, business, "booking.cancelled", {
        "booking": booking.external_id, "customer": customer.external_id, "starts_at": _iso(booking.starts_at),
        "reason": reason, "version": booking.version, "cancelled_at": _iso(now), "source": "portal",
    })
    events.emit(session, business.id, customer_id, "booking_updated", live_payload(booking))
    return booking

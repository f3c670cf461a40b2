"""Calendar attachments for booking confirmations (RFC 5545 / iTIP).

One stable UID per booking, so a reschedule updates the event already in the
customer's calendar and a cancellation removes it; SEQUENCE is the booking's
version, so calendars apply updates in order.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlparse

from icalendar import Calendar, Event, vCalAddress, vText

from portal.models import utcnow

PRODID = "-//Customer Portal//Bookings//EN"


def booking_uid(booking_public_id: str, public_base_url: str) -> str:
    host = urlparse(public_base_url).hostname or "portal"
    return f"booking-{booking_public_id}@{host}"


def booking_ics(
    *,
    method: str,
    uid: str,
    sequence: int,
    starts_at: datetime,
    ends_at: datetime,
    summary: str,
    description: str = "",
    location: str | None = None,
    url: str | None = None,
    organizer_email: str | None = None,
    organizer_name: str | None = None,
    attendee_email: str | None = None,
    attendee_name: str | None = None,
) -> bytes:
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported calendar method {method!r}")
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    event = Event()
    event.add("uid", uid)
    event.add("sequence", int(sequence))
    event.add("dtstamp", utcnow())
    event.add("dtstart", starts_at)
    event.add("dtend", ends_at)
    event.add("summary", summary)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    if description:
        event.add("description", description)
    if location:
        event.add("location", location)
    if url:
        event.add("url", url)
    if organizer_email:
        organizer = vCalAddress(f"mailto:{organizer_email}")
        if organizer_name:
            organizer.params["cn"] = vText(organizer_name)
        event.add("organizer", organizer)
    if attendee_email:
        attendee = vCalAddress(f"mailto:{attendee_email}")
        if attendee_name:
            attendee.params["cn"] = vText(attendee_name)
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("ACCEPTED")
        event.add("attendee", attendee)
    cal.add_component(event)
    return cal.to_ical()


def content_type(method: str) -> str:
    return f"text/calendar; method={method}; charset=UTF-8"

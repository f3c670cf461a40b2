"""Calendar attachments for booking confirmations (RFC 5545 / iTIP).

One stable UID per booking, so a reschedule updates the event already in the
customer's calendar and a cancellation removes it; SEQUENCE is the booking's
version, so calendars apply updates in order.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlparse

from portal.models import utcnow

PRODID = "-//Customer Portal//Bookings//EN"


def booking_uid(booking_public_id: str, public_base_url: str) -> str:
    host = urlparse(public_base_url).hostname or "portal"
    return f"booking-{booking_public_id}@{host}"


# Written by hand rather than with the icalendar package: one fixed event shape
# goes into every booking email, and icalendar's generic serializer took a
# quarter of a send's CPU. The tests read what this writes back with icalendar.

def _text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _param(value: str) -> str:
    """A parameter value (3.2): quoted when it holds , ; or :, which it may not otherwise; no quotes inside."""
    value = value.replace('"', "'").replace("\r", " ").replace("\n", " ")
    return f'"{value}"' if any(c in value for c in ",;:") else value


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _fold(line: str) -> bytes:
    """Lines longer than 75 octets continue on the next line after CRLF + space (3.1),
    never splitting a UTF-8 character."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return data + b"\r\n"
    out, chunk, limit = [], b"", 75
    for char in line:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > limit:
            out.append(chunk)
            chunk, limit = b"", 74  # continuation lines start with a space
        chunk += encoded
    out.append(chunk)
    return b"\r\n ".join(out) + b"\r\n"


def _address(name: str, email: str, cn: str | None, extra: str = "") -> str:
    params = (f";CN={_param(cn)}" if cn else "") + extra
    return f"{name}{params}:mailto:{email}"


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
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN", f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"UID:{_text(uid)}", f"SEQUENCE:{int(sequence)}", f"DTSTAMP:{_utc(utcnow())}",
        f"DTSTART:{_utc(starts_at)}", f"DTEND:{_utc(ends_at)}", f"SUMMARY:{_text(summary)}",
        f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}",
    ]
    if description:
        lines.append(f"DESCRIPTION:{_text(description)}")
    if location:
        lines.append(f"LOCATION:{_text(location)}")
    if url:
        lines.append(f"URL:{url}")
    if organizer_email:
        lines.append(_address("ORGANIZER", organizer_email, organizer_name))
    if attendee_email:
        lines.append(_address("ATTENDEE", attendee_email, attendee_name, ";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT"))
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return b"".join(_fold(line) for line in lines)


def content_type(method: str) -> str:
    return f"text/calendar; method={method}; charset=UTF-8"

"""The calendar attachment is written by hand (messages.ics); icalendar reads it back here."""

from datetime import datetime, timezone

import icalendar

from messages import ics

STARTS = datetime(2026, 11, 25, 14, 0, tzinfo=timezone.utc)
ENDS = datetime(2026, 11, 25, 15, 30, tzinfo=timezone.utc)


def event_of(data: bytes):
    cal = icalendar.Calendar.from_ical(data)
    (event,) = cal.walk("VEVENT")
    return cal, event


def make(**overrides) -> bytes:
    fields = dict(method="REQUEST", uid="booking-abc@portal.test", sequence=4, starts_at=STARTS, ends_at=ENDS,
                  summary="Deep clean - Pro Home Services", description="https://portal.test/b/abc",
                  location="12 rue Saint-Denis, Montréal", url="https://portal.test/b/abc",
                  organizer_email="help@pro.test", organizer_name="Pro Home Services",
                  attendee_email="jane@example.test", attendee_name="Jane Doe")
    fields.update(overrides)
    return ics.booking_ics(**fields)


def test_round_trips_through_icalendar():
    cal, event = event_of(make())
    assert str(cal["method"]) == "REQUEST" and str(cal["version"]) == "2.0"
    assert str(event["uid"]) == "booking-abc@portal.test" and int(event["sequence"]) == 4
    assert event.decoded("dtstart") == STARTS and event.decoded("dtend") == ENDS
    assert str(event["location"]) == "12 rue Saint-Denis, Montréal"
    assert str(event["status"]) == "CONFIRMED"
    assert str(event["organizer"]) == "mailto:help@pro.test"
    assert event["organizer"].params["CN"] == "Pro Home Services"
    assert event["attendee"].params["PARTSTAT"] == "ACCEPTED"


def test_cancel_and_unknown_methods():
    _, event = event_of(make(method="CANCEL"))
    assert str(event["status"]) == "CANCELLED"
    try:
        make(method="PUBLISH")
    except ValueError:
        pass
    else:
        raise AssertionError("PUBLISH must be refused")


def test_text_and_parameters_are_escaped():
    summary = 'Kitchen; bath, "deep" clean\nsecond line \\ done'
    _, event = event_of(make(summary=summary, organizer_name='Pro, Home: "Services"', attendee_name="Zoë; Ng"))
    assert str(event["summary"]) == summary
    assert event["organizer"].params["CN"] == "Pro, Home: 'Services'"
    assert event["attendee"].params["CN"] == "Zoë; Ng"


def test_long_lines_fold_at_75_octets_without_splitting_characters():
    summary = "Nettoyage complet à domicile — " * 6  # multi-byte characters across the fold points
    data = make(summary=summary.strip())
    for line in data.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # each physical line is valid UTF-8 on its own
    _, event = event_of(data)
    assert str(event["summary"]) == summary.strip()


def test_naive_datetimes_are_taken_as_utc():
    _, event = event_of(make(starts_at=STARTS.replace(tzinfo=None), ends_at=ENDS.replace(tzinfo=None)))
    assert event.decoded("dtstart") == STARTS

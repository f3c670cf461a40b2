from datetime import datetime, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from messages.quiet_hours import is_quiet, next_open, window, zone

TORONTO = ZoneInfo("America/Toronto")


def at(hh, mm, day=15):
    """A moment in Toronto on 2025-01-<day> (EST, UTC-5), as UTC."""
    return datetime(2025, 1, day, hh, mm, tzinfo=TORONTO).astimezone(timezone.utc)


@pytest.mark.parametrize("hh,mm,quiet", [
    (20, 59, False), (21, 0, True), (23, 30, True), (0, 0, True), (7, 59, True), (8, 0, False), (12, 0, False),
])
def test_default_window_edges(hh, mm, quiet):
    assert is_quiet(at(hh, mm), TORONTO) is quiet


def test_evening_waits_for_next_morning():
    assert next_open(at(21, 0), TORONTO) == at(8, 0, day=16)


def test_early_morning_waits_for_same_morning():
    assert next_open(at(7, 59), TORONTO) == at(8, 0)


def test_open_hours_send_now():
    assert next_open(at(8, 0), TORONTO) is None
    assert next_open(at(20, 59), TORONTO) is None


def test_customer_timezone_is_what_counts():
    # 21:30 in Toronto is 18:30 in Vancouver: a Vancouver customer is not in quiet hours.
    assert is_quiet(at(21, 30), ZoneInfo("America/Vancouver")) is False
    assert is_quiet(at(21, 30), TORONTO) is True


def test_business_may_narrow_the_sending_window():
    business = SimpleNamespace(quiet_start_minute=20 * 60, quiet_end_minute=9 * 60)
    assert window(business) == (20 * 60, 9 * 60)
    assert is_quiet(at(20, 30), TORONTO, business) is True
    assert is_quiet(at(8, 30), TORONTO, business) is True
    assert next_open(at(20, 30), TORONTO, business) == at(9, 0, day=16)


def test_business_cannot_shrink_quiet_hours():
    business = SimpleNamespace(quiet_start_minute=23 * 60, quiet_end_minute=6 * 60)
    assert window(business) == (21 * 60, 8 * 60)
    assert is_quiet(at(21, 30), TORONTO, business) is True
    assert is_quiet(at(7, 0), TORONTO, business) is True


def test_dst_change_uses_local_wall_clock():
    # 2025-03-09: clocks go forward in Toronto. 22:00 EST on the 8th waits until 08:00 EDT on the 9th.
    evening = datetime(2025, 3, 8, 22, 0, tzinfo=TORONTO).astimezone(timezone.utc)
    opens = next_open(evening, TORONTO)
    assert opens.astimezone(TORONTO).strftime("%Y-%m-%d %H:%M %Z") == "2025-03-09 08:00 EDT"


def test_zone_falls_back():
    assert zone(None, "Europe/Paris").key == "Europe/Paris"
    assert zone("Not/AZone", "America/Toronto").key == "America/Toronto"
    assert zone(None, None).key == "UTC"

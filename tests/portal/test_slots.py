"""Free-slot computation: working hours, busy times, notice, horizon, DST."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from portal.slots import free_slots, group_by_local_day, intervals_for, overlaps

TZ = "America/Toronto"
ZONE = ZoneInfo(TZ)
HOUR = timedelta(hours=1)
WEEKDAYS = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def local(y, m, d, h, mi=0):
    return datetime(y, m, d, h, mi, tzinfo=ZONE).astimezone(timezone.utc)


def local_times(slots):
    return [s.astimezone(ZONE).strftime("%a %H:%M") for s in slots]


def day_slots(working_hours, day_start, day_end, busy=(), duration=HOUR, step=60):
    return free_slots(working_hours=working_hours, tz=TZ, duration=duration, busy=busy,
                      earliest=day_start, latest=day_end, step_minutes=step)


def test_slots_fill_working_hours_and_end_inside_them():
    # Monday 2025-06-02
    slots = day_slots(WEEKDAYS, local(2025, 6, 2, 0), local(2025, 6, 2, 23))
    assert local_times(slots) == [f"Mon {h:02d}:00" for h in range(8, 17)]  # last one 16:00-17:00


def test_weekend_and_days_without_hours_have_no_slots():
    assert day_slots(WEEKDAYS, local(2025, 6, 7, 0), local(2025, 6, 8, 23)) == []  # Sat + Sun
    assert day_slots({}, local(2025, 6, 2, 0), local(2025, 6, 2, 23)) == []


def test_several_intervals_and_duration_longer_than_a_gap():
    hours = {"mon": [["08:00", "10:00"], ["13:00", "14:30"]]}
    slots = day_slots(hours, local(2025, 6, 2, 0), local(2025, 6, 2, 23), duration=timedelta(minutes=90), step=30)
    assert local_times(slots) == ["Mon 08:00", "Mon 08:30", "Mon 13:00"]


def test_busy_bookings_are_excluded_with_half_open_overlap():
    busy = [(local(2025, 6, 2, 10), local(2025, 6, 2, 11, 30))]
    slots = day_slots(WEEKDAYS, local(2025, 6, 2, 0), local(2025, 6, 2, 23), busy=busy, step=30)
    times = local_times(slots)
    assert "Mon 09:00" in times  # ends 10:00 exactly when the booking starts: fine
    assert "Mon 09:30" not in times and "Mon 10:00" not in times and "Mon 11:00" not in times
    assert "Mon 11:30" in times  # starts exactly when the booking ends


def test_notice_and_horizon_bound_the_window_inclusively():
    earliest = local(2025, 6, 2, 10)
    latest = local(2025, 6, 3, 9)
    slots = day_slots(WEEKDAYS, earliest, latest)
    assert slots[0] == earliest  # a slot exactly at the notice boundary is offered
    assert slots[-1] == latest   # and one exactly at the horizon
    assert local_times(slots) == [f"Mon {h:02d}:00" for h in range(10, 17)] + ["Tue 08:00", "Tue 09:00"]


def test_dst_spring_forward_keeps_local_working_hours():
    # Toronto springs forward on Sunday 2025-03-09; Fri 7th is EST (-5), Mon 10th is EDT (-4).
    slots = day_slots(WEEKDAYS, local(2025, 3, 7, 0), local(2025, 3, 10, 23))
    fri = [s for s in slots if s.astimezone(ZONE).date() == date(2025, 3, 7)]
    mon = [s for s in slots if s.astimezone(ZONE).date() == date(2025, 3, 10)]
    assert fri[0] == datetime(2025, 3, 7, 13, 0, tzinfo=timezone.utc)
    assert mon[0] == datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)
    assert len(fri) == len(mon) == 9


def test_dst_gap_times_are_skipped_and_durations_are_real_time():
    # A night shift across the spring-forward gap: 02:00-03:00 does not exist.
    hours = {"sun": [["00:00", "05:00"]]}
    slots = day_slots(hours, local(2025, 3, 9, 0), local(2025, 3, 9, 23), step=60)
    assert local_times(slots) == ["Sun 00:00", "Sun 01:00", "Sun 03:00", "Sun 04:00"]
    # The 01:00 slot lasts one real hour: it ends at 03:00 local time.
    assert (slots[1] + HOUR).astimezone(ZONE).hour == 3


def test_dst_fall_back_uses_the_first_occurrence():
    hours = {"sun": [["00:00", "03:00"]]}
    slots = day_slots(hours, local(2025, 11, 2, 0), local(2025, 11, 2, 23), step=60)
    assert [s.astimezone(ZONE).strftime("%H:%M%z") for s in slots] == ["00:00-0400", "01:00-0400", "02:00-0500"]


def test_malformed_working_hours_are_ignored():
    hours = {"mon": [["nine", "17:00"], ["17:00", "09:00"], ["08:00"], "x", ["10:00", "11:00"]]}
    assert intervals_for(hours, date(2025, 6, 2)) != []
    slots = day_slots(hours, local(2025, 6, 2, 0), local(2025, 6, 2, 23))
    assert local_times(slots) == ["Mon 10:00"]


def test_closing_at_midnight():
    slots = day_slots({"mon": [["22:00", "24:00"]]}, local(2025, 6, 2, 0), local(2025, 6, 3, 23))
    assert local_times(slots) == ["Mon 22:00", "Mon 23:00"]


def test_grouping_in_the_customers_timezone():
    slots = [datetime(2025, 6, 3, 2, 0, tzinfo=timezone.utc), datetime(2025, 6, 3, 13, 0, tzinfo=timezone.utc)]
    grouped = group_by_local_day(slots, "America/Vancouver")
    assert list(grouped) == [date(2025, 6, 2), date(2025, 6, 3)]  # 02:00 UTC is still the 2nd in Vancouver


def test_overlaps():
    a = local(2025, 6, 2, 9)
    assert overlaps(a, a + HOUR, [(a + timedelta(minutes=59), a + 2 * HOUR)])
    assert not overlaps(a, a + HOUR, [(a + HOUR, a + 2 * HOUR)])

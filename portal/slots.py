"""Free appointment slots: pure computation, no database.

Working hours are wall-clock intervals in the business's timezone, e.g.
``{"mon": [["08:00", "17:00"]]}``. Slots are built in local wall time and
converted to UTC with zoneinfo, so "08:00" stays 08:00 on both sides of a DST
change. A local start that does not exist (the spring-forward gap) is skipped;
an ambiguous one (the fall-back hour) takes its first occurrence (fold=0).
Durations are real elapsed time.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_STEP_MINUTES = 30


def _parse_hhmm(value: str) -> time | None:
    try:
        hours, minutes = (int(part) for part in str(value).split(":"))
    except ValueError:
        return None
    if hours == 24 and minutes == 0:
        return time.max  # "24:00" closes at midnight
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        return None
    return time(hours, minutes)


def intervals_for(working_hours: dict, day: date) -> list[tuple[time, time]]:
    """The well-formed working intervals of ``day`` (malformed entries are ignored)."""
    out = []
    for pair in (working_hours or {}).get(DAY_KEYS[day.weekday()], []) or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            continue
        start, end = _parse_hhmm(pair[0]), _parse_hhmm(pair[1])
        if start is not None and end is not None and start < end:
            out.append((start, end))
    return out


def _exists(local: datetime) -> bool:
    """False for wall times skipped by a DST jump (they do not round-trip)."""
    back = local.astimezone(timezone.utc).astimezone(local.tzinfo)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def _to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    if at == time.max:
        return datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(timezone.utc)
    return datetime.combine(day, at, tz).astimezone(timezone.utc)


def overlaps(start: datetime, end: datetime, busy: Iterable[tuple[datetime, datetime]]) -> bool:
    """Half-open intervals: a booking ending at 10:00 does not clash with one starting at 10:00."""
    return any(start < b_end and b_start < end for b_start, b_end in busy)


def free_slots(
    *,
    working_hours: dict,
    tz: str,
    duration: timedelta,
    busy: Iterable[tuple[datetime, datetime]],
    earliest: datetime,
    latest: datetime,
    step_minutes: int = DEFAULT_STEP_MINUTES,
) -> list[datetime]:
    """Aware-UTC start times, sorted, of slots that fit entirely inside working
    hours, clash with nothing in ``busy`` and start in ``[earliest, latest]``."""
    zone = ZoneInfo(tz)
    busy = list(busy)
    step = timedelta(minutes=max(step_minutes, 1))
    slots: list[datetime] = []
    day = earliest.astimezone(zone).date()
    last_day = latest.astimezone(zone).date()
    while day <= last_day:
        for open_at, close_at in intervals_for(working_hours, day):
            close_utc = _to_utc(day, close_at, zone)
            wall = datetime.combine(day, open_at)
            while True:
                if wall.date() != day:
                    break
                local = wall.replace(tzinfo=zone)
                wall += step
                if not _exists(local):
                    continue
                start = local.astimezone(timezone.utc)
                end = start + duration
                if end > close_utc:
                    break
                if start < earliest or start > latest:
                    continue
                if overlaps(start, end, busy):
                    continue
                slots.append(start)
        day += timedelta(days=1)
    return sorted(set(slots))


def group_by_local_day(slots: Iterable[datetime], tz: str) -> "OrderedDict[date, list[datetime]]":
    """Slots grouped by their date in ``tz`` (the customer's timezone), in order."""
    zone = ZoneInfo(tz)
    grouped: OrderedDict[date, list[datetime]] = OrderedDict()
    for slot in sorted(slots):
        grouped.setdefault(slot.astimezone(zone).date(), []).append(slot)
    return grouped

"""Quiet hours for non-urgent SMS.

Nothing non-urgent is texted between 21:00 and 08:00 in the customer's timezone
(the business's when the customer has none). A business may narrow the sending
window -- start quiet hours earlier in the evening, end them later in the
morning -- but never shrink quiet hours below 21:00-08:00: its
``quiet_start_minute`` counts only between 12:00 and 21:00 and its
``quiet_end_minute`` only between 08:00 and 12:00; other values fall back to
the defaults.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_START = 21 * 60
DEFAULT_END = 8 * 60
NOON = 12 * 60


def zone(*names: str | None) -> ZoneInfo:
    """The first valid timezone among ``names``, else UTC."""
    for name in names:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def window(business=None) -> tuple[int, int]:
    """(quiet start, quiet end) in minutes after local midnight, the business's narrowing applied."""
    start, end = DEFAULT_START, DEFAULT_END
    if business is not None:
        b_start = getattr(business, "quiet_start_minute", None)
        b_end = getattr(business, "quiet_end_minute", None)
        if b_start is not None and NOON <= b_start <= DEFAULT_START:
            start = b_start
        if b_end is not None and DEFAULT_END <= b_end <= NOON:
            end = b_end
    return start, end


def is_quiet(now: datetime, tz: ZoneInfo, business=None) -> bool:
    start, end = window(business)
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    return minute >= start or minute < end


def next_open(now: datetime, tz: ZoneInfo, business=None) -> datetime | None:
    """None when texting is allowed now, else the (UTC) moment quiet hours end."""
    if not is_quiet(now, tz, business):
        return None
    _start, end = window(business)
    local = now.astimezone(tz)
    day = local.date()
    if local.hour * 60 + local.minute >= end:  # evening: quiet hours end tomorrow morning
        day += timedelta(days=1)
    opens = datetime.combine(day, time(end // 60, end % 60), tzinfo=tz)
    return opens.astimezone(timezone.utc)

"""What the providers' HTTP failures mean for a retry (shared by the SendGrid and Twilio senders)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 3600.0


def retry_after(headers) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), else ``X-RateLimit-Reset`` (epoch)."""
    if headers is None:
        return None
    raw = headers.get("Retry-After")
    if raw:
        raw = raw.strip()
        try:
            seconds = float(raw)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(raw).timestamp() - time.time()
            except (TypeError, ValueError, IndexError):
                seconds = None
        if seconds is not None:
            return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return min(max(float(reset) - time.time(), 1.0), MAX_RETRY_AFTER_S)
        except ValueError:
            return None
    return None

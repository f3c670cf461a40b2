"""The scheduler as /ops shows it: who leads, and when each job last ran.

``portal scheduler`` writes both to Redis (``scheduler.leader``): the lock holds the leader's
"host:pid:tag", and a hash holds each job's last run. Reminders stop silently if no
scheduler runs, so a due-scan older than ``LATE_S`` is flagged.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from scheduler.leader import LOCK_NAME, STATUS_KEY

JOBS = ("scan", "sweep", "purge")
LATE_S = 60  # the due-scan runs every 5 s; a minute without one means no active scheduler


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def read(r, now: datetime | None = None) -> dict:
    now = now or datetime.now(timezone.utc)
    leader = _text(await r.get(LOCK_NAME))
    raw = await r.hgetall(STATUS_KEY)
    jobs = []
    for name in JOBS:
        entry = raw.get(name.encode()) or raw.get(name)
        try:
            doc = json.loads(entry) if entry else None
            at = datetime.fromisoformat(doc["at"]) if doc else None
        except (ValueError, KeyError, TypeError):
            doc, at = None, None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        jobs.append({"job": name, "at": at.isoformat() if at else None,
                     "age_s": round((now - at).total_seconds(), 1) if at else None,
                     "by": doc.get("by") if doc else None, "result": doc.get("result") if doc else None})
    scan_age = jobs[0]["age_s"]
    return {"leader": leader, "jobs": jobs, "late": leader is None or scan_age is None or scan_age > LATE_S}

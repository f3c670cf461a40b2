"""The due-scan: planned reminders whose time has come become outbox messages.

The scan reads the partial index ``ix_reminder_due`` (``WHERE status =
'planned'``) in ``due_at`` order, so its cost grows with the number of
reminders due, not with the size of the table. Each reminder is then handled
in its own short transaction, its row locked with ``FOR UPDATE SKIP LOCKED``
(PostgreSQL; SQLite serialises writers anyway), the booking re-checked, and
the notice queued with ``portal.outbox.queue_notice``: the Message rows and the
reminder's new status commit together, the broker sees them after commit.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from datetime import datetime
from typing import Callable

from prometheus_client import Counter
from sqlalchemy import literal_column, select, text
from sqlalchemy.orm import Session

from portal.db import system_session
from portal.models import Booking, Reminder, utcnow
from portal.outbox import queue_notice

log = logging.getLogger(__name__)

REMINDERS = Counter("portal_reminders_total", "Due reminders handled by the scheduler", ["outcome"])
# A literal, not a bound parameter: the planners of SQLite and PostgreSQL (with
# prepared statements) only match a partial index against a literal predicate.
PLANNED = literal_column("'planned'")
BATCH = 500
MAX_BATCHES = 20  # per tick: a long catch-up is spread over ticks, never blocks one for minutes


def due_query(now: datetime, limit: int = BATCH):
    """Ids of the planned reminders due at ``now``, oldest first (index range scan)."""
    return (
        select(Reminder.id)
        .where(Reminder.status == PLANNED, Reminder.due_at <= now)
        .order_by(Reminder.due_at)
        .limit(limit)
    )


def explain_due_scan(connection, now: datetime | None = None, limit: int = BATCH) -> str:
    """The database's plan for the due-scan, as text (for tests and ``bench/scan.py``)."""
    now = now or utcnow()
    stmt = due_query(now, limit)
    dialect = connection.dialect
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "sqlite":
        rows = connection.execute(text("EXPLAIN QUERY PLAN " + sql)).all()
        return "\n".join(str(row[-1]) for row in rows)
    rows = connection.execute(text("EXPLAIN " + sql)).all()
    return "\n".join(str(row[0]) for row in rows)


def scan_due(session_factory: Callable[[], Session], now: datetime | None = None, *,
             batch: int = BATCH, max_batches: int = MAX_BATCHES) -> dict[str, int]:
    """Handle the reminders due at ``now``. Returns counts by outcome.

    Outcomes: ``enqueued``; ``skipped`` (appointment started, superseded by a
    later reminder, no channel); ``cancelled`` (booking cancelled or changed
    since planning); ``busy`` (locked by another scanner); ``error`` (left
    planned, retried next tick).
    """
    now = now or utcnow()
    tally: Tally[str] = Tally()
    for _ in range(max_batches):
        with system_session(session_factory) as session:
            ids = session.scalars(due_query(now, batch)).all()
        outcomes = [handle_reminder(session_factory, rid, now) for rid in ids]
        tally.update(outcomes)
        # Stop when the backlog is done, or when rows we could not settle
        # (locked elsewhere, failing) would only be selected again.
        if len(ids) < batch or any(o in ("busy", "error") for o in outcomes):
            break
    return dict(tally)


def handle_reminder(session_factory: Callable[[], Session], reminder_id: int, now: datetime) -> str:
    with system_session(session_factory) as session:
        try:
            outcome = _handle(session, reminder_id, now)
            session.commit()
        except Exception:
            session.rollback()
            log.exception("reminder %s could not be handled; it stays planned", reminder_id)
            outcome = "error"
    REMINDERS.labels(outcome).inc()
    return outcome


def _handle(session: Session, reminder_id: int, now: datetime) -> str:
    reminder = session.scalar(
        select(Reminder).where(Reminder.id == reminder_id, Reminder.status == PLANNED)
        .with_for_update(skip_locked=True)
    )
    if reminder is None:  # another scanner has it, or it changed since the scan
        return "busy"
    booking = session.get(Booking, reminder.booking_id)
    if booking is None or booking.status != "scheduled":
        return _settle(reminder, "cancelled", f"booking {booking.status if booking else 'deleted'}", now)
    if booking.version != reminder.booking_version:
        return _settle(reminder, "cancelled", f"booking changed (now v{booking.version})", now)
    if booking.starts_at <= now:
        # Missed during downtime and no longer useful.
        return _settle(reminder, "skipped", f"appointment already started at {booking.starts_at:%Y-%m-%d %H:%M} UTC", now)
    later = session.scalar(
        select(Reminder.offset_minutes).where(
            Reminder.booking_id == booking.id, Reminder.booking_version == booking.version,
            Reminder.status == PLANNED, Reminder.offset_minutes < reminder.offset_minutes,
            Reminder.due_at <= now, Reminder.id != reminder.id,
        ).order_by(Reminder.offset_minutes).limit(1)
    )
    if later is not None:
        # After downtime, two reminders of one booking are due at once: send the nearer one only.
        return _settle(reminder, "skipped", f"superseded by the {later}-minute reminder", now)
    messages = queue_notice(
        session, kind="appointment_reminder", customer=booking.customer, booking=booking,
        key=f"reminder:{reminder.id}", params={"offset_minutes": reminder.offset_minutes},
    )
    if all(m.status == "skipped" for m in messages):  # preferences, consent, no address...
        why = "; ".join(m.status_reason for m in messages if m.status_reason) or "no channel"
        return _settle(reminder, "skipped", f"not sent: {why}", now)
    return _settle(reminder, "enqueued", None, now)


def _settle(reminder: Reminder, status: str, reason: str | None, now: datetime) -> str:
    if reason:
        level = logging.INFO if status != "enqueued" else logging.DEBUG
        log.log(level, "reminder %s (booking %s, %s min) %s: %s", reminder.id, reminder.booking_id,
                reminder.offset_minutes, status, reason)
    reminder.status = status
    reminder.status_reason = reason[:200] if reason else None
    reminder.updated_at = now
    return status


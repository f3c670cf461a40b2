"""Reschedule and cancel: scoping, slots, policy edges, the one-transaction side effects, races."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import delete, select

from portal import booking_changes as bc
from portal import redis_client
from portal.db import make_engine, make_session_factory, system_session, tenant_session
from portal.errors import Conflict, NotFound, PolicyError, ValidationError
from portal.events import channel
from portal.models import Booking, Business, Message, Reminder, WebhookDelivery
from tests.factories import make_booking, make_business, make_customer, make_provider, make_service

ZONE = ZoneInfo("America/Toronto")
# Monday 2 June 2025, 08:00 in Toronto.
NOW = datetime(2025, 6, 2, 8, 0, tzinfo=ZONE).astimezone(timezone.utc)
EVERY_DAY = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """June ``day`` 2025 at ``hour`` Toronto time, in UTC."""
    return datetime(2025, 6, day, hour, minute, tzinfo=ZONE).astimezone(timezone.utc)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def world(db, frozen, stub_broker):
    business = make_business(db, webhook_url="https://booking.example/hooks", reschedule_min_notice_minutes=24 * 60,
                             cancel_min_notice_minutes=24 * 60, booking_horizon_days=14, max_reschedules=2)
    provider = make_provider(db, business, working_hours=EVERY_DAY)
    service = make_service(db, business, duration_minutes=60)
    customer = make_customer(db, business)
    booking = make_booking(db, customer, starts_at=at(4, 10), provider_id=provider.id, service_id=service.id)
    db.commit()
    return business, provider, service, customer, booking


def scoped(session_factory, business):
    return tenant_session(session_factory, business.id)


# -- scoping ------------------------------------------------------------------

def test_another_customers_or_businesses_booking_is_not_found(db, session_factory, world):
    business, provider, service, customer, booking = world
    other_customer = make_customer(db, business)
    other_business = make_business(db)
    foreign = make_booking(db, make_customer(db, other_business))
    db.commit()
    with scoped(session_factory, business) as s:
        assert bc.get_booking(s, customer.id, booking.public_id).id == booking.id
        with pytest.raises(NotFound):
            bc.get_booking(s, other_customer.id, booking.public_id)
        with pytest.raises(NotFound):
            bc.get_booking(s, customer.id, foreign.public_id)
        with pytest.raises(NotFound):
            bc.cancel(s, business, other_customer.id, booking.public_id)
        with pytest.raises(NotFound):
            bc.reschedule(s, business, other_customer.id, booking.public_id, at(5, 9))
    with scoped(session_factory, other_business) as s:
        with pytest.raises(NotFound):  # even with the right customer id, the wrong business sees nothing
            bc.get_booking(s, customer.id, booking.public_id)


def test_upcoming_and_past_lists(db, session_factory, world):
    business, provider, service, customer, booking = world
    past = make_booking(db, customer, starts_at=at(1, 9), provider_id=provider.id, service_id=service.id)
    cancelled = make_booking(db, customer, starts_at=at(6, 9), provider_id=provider.id, service_id=service.id,
                             status="cancelled")
    make_booking(db, make_customer(db, business), starts_at=at(5, 9))
    db.commit()
    with scoped(session_factory, business) as s:
        upcoming = bc.upcoming_bookings(s, customer.id, NOW)
        older = bc.past_bookings(s, customer.id, 1, NOW)
    assert [b.id for b in upcoming] == [booking.id]
    assert [b.id for b in older.items] == [cancelled.id, past.id]
    assert (older.number, older.has_previous, older.has_next) == (1, False, False)


def test_past_bookings_come_a_page_at_a_time(db, session_factory, world):
    business, provider, service, customer, booking = world
    past = [make_booking(db, customer, starts_at=NOW - timedelta(days=d), provider_id=provider.id,
                         service_id=service.id, status="completed") for d in range(1, 6)]
    db.commit()
    newest_first = [b.id for b in past]
    with scoped(session_factory, business) as s:
        pages = [bc.past_bookings(s, customer.id, n, NOW, per_page=2) for n in (1, 2, 3)]
        with pytest.raises(NotFound):
            bc.past_bookings(s, customer.id, 4, NOW, per_page=2)
    assert [[b.id for b in p.items] for p in pages] == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert [(p.has_previous, p.has_next) for p in pages] == [(False, True), (True, True), (True, False)]


# -- slots --------------------------------------------------------------------

def test_available_slots_respect_notice_horizon_and_other_bookings(db, session_factory, world):
    business, provider, service, customer, booking = world
    make_booking(db, make_customer(db, business), starts_at=at(3, 9, 30), provider_id=provider.id,
                 service_id=service.id)
    make_booking(db, make_customer(db, business), starts_at=at(3, 11), provider_id=make_provider(db, business).id)
    db.commit()
    with scoped(session_factory, business) as s:
        slots = bc.available_slots(s, business, s.get(Booking, booking.id), NOW)
    assert slots[0] == at(3, 8)  # exactly now + 24 h notice is offered
    assert at(3, 9) not in slots and at(3, 10) not in slots  # clash with 09:30-10:30 of the same provider
    assert at(3, 8, 30) in slots and at(3, 10, 30) in slots
    assert at(3, 11) in slots  # another provider's booking does not matter
    assert at(4, 10) not in slots  # its own current time
    assert at(4, 9, 30) in slots and at(4, 10, 30) in slots  # its own time does not block neighbours
    assert max(slots) <= NOW + timedelta(days=14)
    assert max(slots) == at(16, 8)  # the horizon, inclusive


def test_no_slots_when_rescheduling_is_not_allowed(db, session_factory, world):
    business, provider, service, customer, booking = world
    business = db.get(Business, business.id)
    business.allow_reschedule = False
    db.commit()
    with scoped(session_factory, business) as s:
        assert bc.available_slots(s, s.get(Business, business.id), s.get(Booking, booking.id), NOW) == []
        with pytest.raises(PolicyError, match="not available"):
            bc.reschedule(s, s.get(Business, business.id), customer.id, booking.public_id, at(5, 9))


# -- reschedule -----------------------------------------------------------------

def test_reschedule_does_everything_in_one_transaction(db, session_factory, world, redis_url, stub_broker):
    business, provider, service, customer, booking = world
    old_reminders = db.scalars(select(Reminder).where(Reminder.booking_id == booking.id)).all()
    assert old_reminders == []
    with scoped(session_factory, business) as s:  # reminders for v1, as the API would have planned them
        from scheduler.planning import plan_reminders
        plan_reminders(s, s.get(Booking, booking.id))
        s.commit()

    live = redis_client.configure(redis_url)
    pubsub = live.pubsub()
    pubsub.subscribe(channel(business.id, customer.id))
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    try:
        with scoped(session_factory, business) as s:
            moved = bc.reschedule(s, s.get(Business, business.id), customer.id, booking.public_id, at(5, 14),
                                  expected_version=1)
            assert pubsub.get_message(timeout=0.2) is None  # nothing announced before commit
            s.commit()
        event = pubsub.get_message(timeout=5)
    finally:
        pubsub.close()
        redis_client.configure(None)

    assert json.loads(event["data"]) == {"type": "booking_updated", "data": {
        "booking": booking.public_id, "status": "scheduled", "starts_at": "2025-06-05T18:00:00Z",
        "ends_at": "2025-06-05T19:00:00Z", "version": 2}}
    db.expire_all()
    row = db.get(Booking, booking.id)
    assert (row.starts_at, row.ends_at, row.version, row.reschedule_count) == (at(5, 14), at(5, 15), 2, 1)
    assert moved.version == 2
    msgs = db.scalars(select(Message).where(Message.booking_id == booking.id)).all()
    assert [(m.kind, m.booking_version, m.channel) for m in msgs] == [("reschedule_confirmation", 2, "email")]
    assert msgs[0].idempotency_key == f"{business.id}:reschedule_confirmation:booking:{booking.id}:v2:email"
    reminders = db.scalars(select(Reminder).where(Reminder.booking_id == booking.id).order_by(Reminder.id)).all()
    assert {(r.booking_version, r.status) for r in reminders} == {(1, "cancelled"), (2, "planned")}
    assert all(r.due_at < at(5, 14) for r in reminders if r.status == "planned")
    hooks = db.scalars(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id)).all()
    assert [h.event_type for h in hooks] == ["booking.rescheduled"]
    assert hooks[0].payload["booking"] == booking.external_id
    assert hooks[0].payload["previous_starts_at"] == "2025-06-04T14:00:00Z"
    assert hooks[0].payload["starts_at"] == "2025-06-05T18:00:00Z"
    # Enqueued after commit: the message and the webhook delivery.
    assert {"deliver_message", "deliver_webhook"} <= queued_actors(stub_broker)


def test_a_moved_booking_keeps_its_own_length(db, session_factory, world):
    # The service usually takes an hour; this visit was booked for two: it stays two hours long.
    business, provider, service, customer, _ = world
    long_visit = make_booking(db, customer, starts_at=at(4, 13), ends_at=at(4, 15), provider_id=provider.id,
                              service_id=service.id)
    db.commit()
    with scoped(session_factory, business) as s:
        slots = bc.available_slots(s, business, s.get(Booking, long_visit.id), NOW)
        assert at(3, 15) in slots and at(3, 15, 30) not in slots  # two hours must fit before 17:00
        bc.reschedule(s, s.get(Business, business.id), customer.id, long_visit.public_id, at(3, 15))
        s.commit()
    db.expire_all()
    assert (db.get(Booking, long_visit.id).starts_at, db.get(Booking, long_visit.id).ends_at) == (at(3, 15), at(3, 17))


def queued_actors(broker) -> set[str]:
    import dramatiq

    return {dramatiq.Message.decode(raw).actor_name for q in broker.queues.values() for raw in list(q.queue)}


def test_a_failure_after_the_change_leaves_nothing_behind(db, session_factory, world, monkeypatch):
    business, provider, service, customer, booking = world

    def broken(*args, **kwargs):
        raise RuntimeError("webhook store down")

    monkeypatch.setattr(bc, "record_event", broken)
    with scoped(session_factory, business) as s:
        with pytest.raises(RuntimeError):
            bc.reschedule(s, s.get(Business, business.id), customer.id, booking.public_id, at(5, 14))
        s.rollback()
    db.expire_all()
    row = db.get(Booking, booking.id)
    assert (row.starts_at, row.version, row.reschedule_count) == (at(4, 10), 1, 0)
    assert db.scalars(select(Message).where(Message.booking_id == booking.id)).all() == []


def test_taken_and_overlapping_slots_conflict(db, session_factory, world):
    business, provider, service, customer, booking = world
    make_booking(db, make_customer(db, business), starts_at=at(5, 9), provider_id=provider.id, service_id=service.id)
    db.commit()
    with scoped(session_factory, business) as s:
        b = s.get(Business, business.id)
        with pytest.raises(Conflict, match="just taken"):
            bc.reschedule(s, b, customer.id, booking.public_id, at(5, 9))
        with pytest.raises(Conflict):
            bc.reschedule(s, b, customer.id, booking.public_id, at(5, 8, 30))  # 08:30-09:30 overlaps
        assert s.get(Booking, booking.id).version == 1


@pytest.mark.parametrize("target, field", [
    (lambda: at(5, 7), "not available"),          # before opening
    (lambda: at(5, 16, 30), "not available"),     # would end after 17:00
    (lambda: at(5, 9, 10), "not available"),      # not on the slot grid
    (lambda: at(3, 7, 59), "out of range"),       # inside the notice window
    (lambda: at(17, 9), "out of range"),          # beyond the 14-day horizon
    (lambda: at(4, 10), "unchanged"),
])
def test_times_that_are_not_offered_are_refused(session_factory, world, target, field):
    business, provider, service, customer, booking = world
    with scoped(session_factory, business) as s:
        with pytest.raises(ValidationError) as info:
            bc.reschedule(s, s.get(Business, business.id), customer.id, booking.public_id, target())
    assert list(info.value.fields.values()) == [field]


def test_stale_version_conflicts(session_factory, world):
    business, provider, service, customer, booking = world
    with scoped(session_factory, business) as s:
        with pytest.raises(Conflict, match="changed"):
            bc.reschedule(s, s.get(Business, business.id), customer.id, booking.public_id, at(5, 9),
                          expected_version=7)


def test_reschedule_cap(db, session_factory, world):
    business, provider, service, customer, booking = world
    db.get(Business, business.id).max_reschedules = 2
    db.commit()
    with scoped(session_factory, business) as s:
        b = s.get(Business, business.id)
        bc.reschedule(s, b, customer.id, booking.public_id, at(5, 9))
        bc.reschedule(s, b, customer.id, booking.public_id, at(6, 9))
        s.commit()
        assert not bc.can_reschedule(b, s.get(Booking, booking.id))
        with pytest.raises(PolicyError, match="as many times as allowed"):
            bc.reschedule(s, b, customer.id, booking.public_id, at(7, 9))
        assert bc.available_slots(s, b, s.get(Booking, booking.id)) == []
    db.expire_all()
    assert db.get(Booking, booking.id).reschedule_count == 2
    assert db.get(Booking, booking.id).starts_at == at(6, 9)


def test_unique_index_is_the_last_line_of_defence(db, session_factory, world, monkeypatch):
    """Even if the lock and the overlap check were bypassed, the database refuses the double booking."""
    business, provider, service, customer, booking = world
    make_booking(db, make_customer(db, business), starts_at=at(5, 9), provider_id=provider.id, service_id=service.id)
    db.commit()
    monkeypatch.setattr(bc, "_busy", lambda *a, **k: [])
    with scoped(session_factory, business) as s:
        with pytest.raises(Conflict, match="just taken"):
            bc.reschedule(s, s.get(Business, business.id), customer.id, booking.public_id, at(5, 9))
        s.rollback()
    db.expire_all()
    assert db.get(Booking, booking.id).starts_at == at(4, 10)


# -- the exact notice boundary (inclusive: allowed while now + notice <= starts_at) -----

@pytest.mark.parametrize("action", ["reschedule", "cancel"])
def test_notice_boundary_is_inclusive(session_factory, world, frozen, action):
    business, provider, service, customer, booking = world
    boundary = booking.starts_at - timedelta(hours=24)

    def attempt(s):
        b = s.get(Business, business.id)
        if action == "reschedule":
            return bc.reschedule(s, b, customer.id, booking.public_id, at(6, 9))
        return bc.cancel(s, b, customer.id, booking.public_id, "boundary")

    frozen.move_to(boundary + timedelta(microseconds=1))
    with scoped(session_factory, business) as s:
        with pytest.raises(PolicyError, match="too late"):
            attempt(s)
    frozen.move_to(boundary)
    with scoped(session_factory, business) as s:
        assert attempt(s).version == 2


def test_zero_notice_allows_changes_up_to_the_start(db, session_factory, world, frozen):
    business, provider, service, customer, booking = world
    db.get(Business, business.id).cancel_min_notice_minutes = 0
    db.commit()
    frozen.move_to(booking.starts_at)
    with scoped(session_factory, business) as s:
        assert bc.can_cancel(s.get(Business, business.id), s.get(Booking, booking.id))
    frozen.move_to(booking.starts_at + timedelta(seconds=1))
    with scoped(session_factory, business) as s:
        assert not bc.can_cancel(s.get(Business, business.id), s.get(Booking, booking.id))


# -- cancel -------------------------------------------------------------------------

def test_cancel_with_reason(db, session_factory, world):
    business, provider, service, customer, booking = world
    with scoped(session_factory, business) as s:
        from scheduler.planning import plan_reminders
        plan_reminders(s, s.get(Booking, booking.id))
        bc.cancel(s, s.get(Business, business.id), customer.id, booking.public_id, "  Away that week  ")
        s.commit()
    db.expire_all()
    row = db.get(Booking, booking.id)
    assert (row.status, row.version, row.cancel_reason, row.cancelled_at) == ("cancelled", 2, "Away that week", NOW)
    msgs = db.scalars(select(Message).where(Message.booking_id == booking.id)).all()
    assert [(m.kind, m.booking_version) for m in msgs] == [("cancellation_confirmation", 2)]
    assert {r.status for r in db.scalars(select(Reminder).where(Reminder.booking_id == booking.id))} == {"cancelled"}
    hook = db.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id))
    assert hook.event_type == "booking.cancelled" and hook.payload["reason"] == "Away that week"
    with scoped(session_factory, business) as s:  # a second cancel is refused, nothing new is sent
        with pytest.raises(PolicyError, match="Only a scheduled booking"):
            bc.cancel(s, s.get(Business, business.id), customer.id, booking.public_id)


def test_cancel_not_allowed_or_reason_too_long(db, session_factory, world):
    business, provider, service, customer, booking = world
    with scoped(session_factory, business) as s:
        with pytest.raises(ValidationError):
            bc.cancel(s, s.get(Business, business.id), customer.id, booking.public_id, "x" * 1001)
    db.get(Business, business.id).allow_cancel = False
    db.commit()
    with scoped(session_factory, business) as s:
        with pytest.raises(PolicyError, match="not available"):
            bc.cancel(s, s.get(Business, business.id), customer.id, booking.public_id)
    db.expire_all()
    assert db.get(Booking, booking.id).status == "scheduled"


# -- the race, on PostgreSQL with committed data and two connections ---------------

@pytest.fixture
def committed_world(committed_factory):
    """Two customers' bookings on one provider, COMMITTED (threads use their own engines)."""
    factory = committed_factory
    base = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    with system_session(factory) as s:
        all_day = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        business = make_business(s, slug=f"race-{uuid.uuid4().hex[:8]}", webhook_url="https://booking.example/h",
                                 reschedule_min_notice_minutes=60, max_reschedules=5, booking_horizon_days=30)
        provider = make_provider(s, business, working_hours=all_day)
        service = make_service(s, business, duration_minutes=60)
        bookings = []
        for hours in (0, 2):
            customer = make_customer(s, business)
            bookings.append(make_booking(s, customer, starts_at=base + timedelta(hours=hours),
                                         provider_id=provider.id, service_id=service.id))
        s.commit()
        ids = (business.id, [(b.customer_id, b.public_id, b.id) for b in bookings], base + timedelta(days=1))
    yield ids
    with system_session(factory) as s:
        s.execute(delete(Business).where(Business.id == ids[0]))  # cascades to every row made above
        s.commit()


def race(database_url, business_id, contenders, target):
    barrier = threading.Barrier(len(contenders))
    results: dict[int, str] = {}

    def run(customer_id, public_id, booking_id):
        engine = make_engine(database_url)
        try:
            with tenant_session(make_session_factory(engine), business_id) as s:
                business = s.get(Business, business_id)
                barrier.wait(timeout=10)
                try:
                    bc.reschedule(s, business, customer_id, public_id, target)
                    s.commit()
                    results[booking_id] = "ok"
                except Conflict:
                    s.rollback()
                    results[booking_id] = "conflict"
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run, args=c) for c in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.parametrize("locking", [True, False], ids=["row-lock", "unique-index-only"])
def test_two_customers_take_the_same_slot_at_once(database_url, committed_world, stub_broker, monkeypatch, locking):
    business_id, contenders, target = committed_world
    if not locking:  # prove the partial unique index alone still lets only one win
        monkeypatch.setattr(bc, "_lock_provider", lambda s, pid: s.get(bc.ServiceProvider, pid))
    results = race(database_url, business_id, contenders, target)
    assert sorted(results.values()) == ["conflict", "ok"]
    engine = make_engine(database_url)
    try:
        with system_session(make_session_factory(engine)) as s:
            rows = s.scalars(select(Booking).where(Booking.business_id == business_id)).all()
            winners = [b for b in rows if b.starts_at == target]
            assert len(winners) == 1 and results[winners[0].id] == "ok"
            loser = next(b for b in rows if b.id != winners[0].id)
            assert (loser.version, loser.reschedule_count) == (1, 0)  # nothing half-written
            kinds = s.scalars(select(Message.booking_id).where(Message.business_id == business_id)).all()
            assert kinds == [winners[0].id]
    finally:
        engine.dispose()

"""What the dashboard shows: queue counts, workers, throughput, outcomes, message search."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from portal.broker import NAMESPACE, middleware
from portal.models import Message, MessageEvent
from portal.queues import WorkerRegistry
from portal_web.ops import stats
from tests.factories import make_business, make_customer
from tests.portal_web.ops.conftest import bearer, dead_letter_a_delivery, next_message


def delivery(message_id: int) -> dramatiq.Message:
    return dramatiq.Message(queue_name="messages", actor_name="deliver_message", args=(message_id,), kwargs={},
                            options={})


async def test_queue_counts_and_workers_come_from_the_broker_layout(client, ops_csrf, redis_broker):
    dead_letter_a_delivery(redis_broker, 1)              # 1 dead letter
    for i in range(3):
        redis_broker.enqueue(delivery(10 + i))           # 3 ready...
    for i in range(2):
        redis_broker.enqueue(delivery(20 + i), delay=600_000)  # 2 delayed
    WorkerRegistry().after_worker_boot(redis_broker, None)  # the consumer below stands for a worker process
    consumer = redis_broker.consume("messages", prefetch=1, timeout=100)
    try:
        fetched = next_message(consumer)  # ...one of them now in flight

        resp = await client.get("/ops/api/queues")
        assert resp.status == 200
        body = await resp.json()
        [row] = [q for q in body["queues"] if q["queue"] == "messages"]
        assert row == {"queue": "messages", "ready": 2, "delayed": 2, "in_flight": 1, "dead": 1}
        [worker] = [w for w in body["workers"] if w["id"] == redis_broker.broker_id]
        assert worker["alive"] is True
        assert worker["in_flight"] == 1
        assert worker["last_beat_s"] >= 0
        assert worker["name"].endswith(f":{os.getpid()}")
    finally:
        consumer.ack(fetched)
        consumer.close()


async def test_a_delayed_message_a_worker_holds_is_delayed_not_in_flight(client, ops_csrf, redis_broker):
    """Workers fetch delayed messages early and hold them until their time: the rows must add up."""
    redis_broker.enqueue(delivery(40), delay=600_000)
    WorkerRegistry().after_worker_boot(redis_broker, None)
    consumer = redis_broker.consume(dramatiq.common.dq_name("messages"), prefetch=1, timeout=100)
    try:
        fetched = next_message(consumer)
        body = await (await client.get("/ops/api/queues")).json()
        [row] = [q for q in body["queues"] if q["queue"] == "messages"]
        assert (row["delayed"], row["in_flight"]) == (1, 0)
        [worker] = [w for w in body["workers"] if w["id"] == redis_broker.broker_id]
        assert worker["in_flight"] == 0
    finally:
        consumer.close()


async def test_processes_that_only_enqueue_are_not_listed_as_workers(client, ops_csrf, redis_url, redis_client,
                                                                     redis_broker):
    """The web app and the scheduler beat whenever they enqueue; with no worker running, none is listed."""
    web = RedisBroker(url=redis_url, namespace=NAMESPACE, middleware=middleware())
    try:
        web.enqueue(delivery(30))
        body = await (await client.get("/ops/api/queues")).json()
        assert [w["id"] for w in body["workers"]] == []

        redis_broker.declare_queue("idle")  # something for the worker to poll, which is what beats
        worker = dramatiq.Worker(redis_broker, worker_threads=1, worker_timeout=100)
        worker.start()
        try:
            beats = f"{NAMESPACE}:__heartbeats__"
            for _ in range(1000):  # until its first fetch
                if redis_client.zscore(beats, redis_broker.broker_id) is not None:
                    break
                await asyncio.sleep(0.01)
            body = await (await client.get("/ops/api/queues")).json()
            assert [w["id"] for w in body["workers"]] == [redis_broker.broker_id]
        finally:
            worker.stop()
        body = await (await client.get("/ops/api/queues")).json()
        assert body["workers"] == []
    finally:
        web.close()


def add_message(db, business, customer, *, status, channel="email", updated_at=None, reason=None, key=None, **kw):
    now = datetime.now(timezone.utc)
    message = Message(business_id=business.id, idempotency_key=key or f"k-{business.id}-{status}-{id(kw)}-{now}",
                      kind=kw.pop("kind", "appointment_reminder"), category="reminders", channel=channel,
                      customer_id=customer.id, recipient=customer.email if channel == "email" else customer.phone,
                      status=status, status_reason=reason, created_at=updated_at or now, updated_at=updated_at or now,
                      **kw)
    db.add(message)
    db.flush()
    return message


def add_events(db, message, *changes):
    """Status history rows: (status, when) pairs."""
    for status, at in changes:
        db.add(MessageEvent(business_id=message.business_id, message_id=message.id, status=status, created_at=at))
    db.flush()


def test_throughput_counts_sends_deliveries_and_failures_when_they_happened(db):
    business = make_business(db)
    customer = make_customer(db, business)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    five_ago, thirty_ago = now - timedelta(minutes=5), now - timedelta(minutes=30)
    for _ in range(2):
        add_events(db, add_message(db, business, customer, status="sent"), ("queued", five_ago), ("sent", five_ago))
    add_events(db, add_message(db, business, customer, status="failed"), ("failed", five_ago))
    add_events(db, add_message(db, business, customer, status="dead"), ("dead", five_ago))
    # Sent half an hour ago, delivered five minutes ago: a send then, and a delivery now.
    add_events(db, add_message(db, business, customer, status="delivered"), ("sent", thirty_ago), ("delivered", five_ago))
    add_events(db, add_message(db, business, customer, status="sent"), ("sent", now - timedelta(hours=2)))
    add_events(db, add_message(db, business, customer, status="queued"),
               ("queued", five_ago), ("queued", five_ago))  # a retry is not an outcome

    hour = stats.throughput(db, "hour", now)
    assert hour["bucket_s"] == 60 and len(hour["series"]["sent"]) == 60
    assert hour["totals"] == {"sent": 3, "delivered": 1, "failed": 2}
    start = datetime.fromisoformat(hour["start"])
    at = lambda when: int((when - start).total_seconds()) // 60  # noqa: E731
    assert hour["series"]["sent"][at(five_ago)] == 2 and hour["series"]["sent"][at(thirty_ago)] == 1
    assert hour["series"]["delivered"][at(five_ago)] == 1
    assert hour["series"]["failed"][at(five_ago)] == 2

    day = stats.throughput(db, "day", now)
    assert day["bucket_s"] == 300 and len(day["series"]["sent"]) == 288
    assert day["totals"] == {"sent": 4, "delivered": 1, "failed": 2}


async def test_throughput_endpoint(client, ops_csrf, db):
    business = make_business(db)
    customer = make_customer(db, business)
    add_events(db, add_message(db, business, customer, status="delivered"), ("delivered", datetime.now(timezone.utc)))
    db.commit()
    body = await (await client.get("/ops/api/throughput?window=day")).json()
    assert body["window"] == "day" and body["totals"]["delivered"] == 1
    assert (await client.get("/ops/api/throughput?window=year")).status == 400


async def test_outcomes_per_channel_and_per_business(client, ops_csrf, db):
    acme = make_business(db, slug="acme")
    zed = make_business(db, slug="zed")
    a, z = make_customer(db, acme), make_customer(db, zed)
    add_message(db, acme, a, status="delivered")
    add_message(db, acme, a, status="delivered", channel="sms")
    add_message(db, acme, a, status="sent")
    add_message(db, acme, a, status="failed", reason="bounce: mailbox does not exist")
    add_message(db, acme, a, status="failed", reason="SendGrid 400", channel="email")
    add_message(db, zed, z, status="skipped", reason="booking cancelled", channel="sms")
    add_message(db, zed, z, status="sending", channel="sms")
    add_message(db, zed, z, status="sent", updated_at=datetime.now(timezone.utc) - timedelta(days=3))  # too old
    db.commit()

    body = await (await client.get("/ops/api/outcomes?window=day")).json()
    channels = {row["channel"]: row for row in body["channels"]}
    assert channels["email"] == {"channel": "email", "queued": 0, "sent": 1, "delivered": 1, "bounced": 1,
                                 "failed": 1, "skipped": 0, "unknown": 0}
    assert channels["sms"] == {"channel": "sms", "queued": 1, "sent": 0, "delivered": 1, "bounced": 0,
                               "failed": 0, "skipped": 1, "unknown": 0}
    businesses = {row["business"]: row for row in body["businesses"]}
    assert list(businesses) == ["acme", "zed"]  # busiest first
    assert businesses["acme"]["delivered"] == 2 and businesses["acme"]["bounced"] == 1
    assert businesses["zed"]["skipped"] == 1 and businesses["zed"]["sent"] == 0

    week = await (await client.get("/ops/api/outcomes?window=week", headers=bearer())).json()
    assert {row["business"]: row for row in week["businesses"]}["zed"]["sent"] == 1


@pytest.fixture
def two_businesses(db):
    acme = make_business(db, slug="acme")
    zed = make_business(db, slug="zed")
    jane = make_customer(db, acme, external_id="C-100", name="Jane Doe", email="jane@example.com",
                         phone="+15145550100")
    bob = make_customer(db, zed, external_id="C-200", name="Bob 100% Smith", email="bob@example.com",
                        phone="+15145550200")
    m1 = add_message(db, acme, jane, status="delivered", key="m1")
    for status, detail in (("queued", None), ("sent", "sendgrid"), ("delivered", None)):
        db.add(MessageEvent(business_id=acme.id, message_id=m1.id, status=status, detail=detail))
    m2 = add_message(db, acme, jane, status="skipped", channel="sms", key="m2", reason="quiet hours")
    db.add(MessageEvent(business_id=acme.id, message_id=m2.id, status="skipped", detail="quiet hours"))
    m3 = add_message(db, zed, bob, status="sent", key="m3")
    db.commit()
    return {"m1": m1.id, "m2": m2.id, "m3": m3.id}


@pytest.mark.parametrize("query, expected", [
    ("business=acme", ["m2", "m1"]),
    ("business=ZED", ["m3"]),
    ("customer=C-100", ["m2", "m1"]),
    ("customer=jane%40example.com", ["m2", "m1"]),
    ("customer=smith", ["m3"]),
    ("customer=100%25", ["m3"]),  # a literal %, not a wildcard
    ("recipient=%2B15145550100", ["m2"]),
    ("recipient=514-555-0100", ["m2"]),  # as an operator types it: found in its stored E.164 form
    ("recipient=(514)%20555%200100", ["m2"]),
    ("recipient=5550100", ["m2"]),
    ("recipient=bob@", ["m3"]),
    ("business=acme&recipient=bob@", []),
])
async def test_message_search(client, ops_csrf, two_businesses, query, expected):
    body = await (await client.get(f"/ops/api/messages?{query}")).json()
    assert [m["id"] for m in body["messages"]] == [two_businesses[name] for name in expected]


async def test_search_page_shows_each_message_history(client, ops_csrf, two_businesses):
    page = await (await client.get("/ops/messages?customer=Jane")).text()
    assert f'id="message-{two_businesses["m1"]}"' in page
    assert f'id="message-{two_businesses["m3"]}"' not in page
    assert "sendgrid" in page and "quiet hours" in page
    assert "2 matching messages" in page


async def test_overview_page_and_json(client, ops_csrf):
    page = await (await client.get("/ops")).text()
    for element in ('id="queues"', 'id="workers"', 'id="chart-hour"', 'id="chart-day"', 'id="by-channel"',
                    'id="by-business"'):
        assert element in page
    body = await (await client.get("/ops/api/overview")).json()
    assert [q["queue"] for q in body["queues"]]  # the declared queues, all empty
    assert all(q["ready"] == 0 for q in body["queues"])
    assert body["outcomes"]["columns"] == ["queued", "sent", "delivered", "bounced", "failed", "skipped", "unknown"]
    js = await client.get("/static/ops.js")
    assert js.status == 200


async def test_the_overview_says_whether_a_scheduler_runs(client, ops_csrf, redis_client):
    import json

    from scheduler.leader import LOCK_NAME, STATUS_KEY

    body = await (await client.get("/ops/api/overview")).json()
    assert body["scheduler"]["leader"] is None and body["scheduler"]["late"] is True  # none has ever run
    now = datetime.now(timezone.utc)
    redis_client.set(LOCK_NAME, "host:42:abcd1234")
    redis_client.hset(STATUS_KEY, "scan", json.dumps({"at": (now - timedelta(seconds=3)).isoformat(),
                                                      "by": "host:42:abcd1234", "result": {"enqueued": 2}}))
    try:
        scheduler = (await (await client.get("/ops/api/overview")).json())["scheduler"]
        assert scheduler["leader"] == "host:42:abcd1234" and scheduler["late"] is False
        scan = scheduler["jobs"][0]
        assert scan["job"] == "scan" and scan["result"] == {"enqueued": 2} and 0 <= scan["age_s"] < 60
        # The leader died a while ago: its last scan is old (the lock would have expired too).
        redis_client.hset(STATUS_KEY, "scan", json.dumps({"at": (now - timedelta(minutes=5)).isoformat(),
                                                          "by": "host:42:abcd1234", "result": {}}))
        assert (await (await client.get("/ops/api/overview")).json())["scheduler"]["late"] is True
    finally:
        redis_client.delete(LOCK_NAME, STATUS_KEY)
    page = await (await client.get("/ops")).text()
    assert 'id="scheduler"' in page and 'id="webhook-failures"' in page


async def test_the_overview_shows_failed_webhook_deliveries(client, ops_csrf, db):
    from portal.models import WebhookDelivery

    business = make_business(db, slug="acme-hooks")
    db.add_all([
        WebhookDelivery(business_id=business.id, event_id="evt_f", event_type="booking.cancelled", payload={},
                        url="https://acme.example/hooks", status="failed", attempts=8,
                        last_error="ConnectionError: refused (gave up after 8 attempts)"),
        WebhookDelivery(business_id=business.id, event_id="evt_p", event_type="quote.approved", payload={},
                        url="https://acme.example/hooks", status="pending", attempts=2),
    ])
    db.commit()
    hooks = (await (await client.get("/ops/api/overview")).json())["webhooks"]
    assert hooks["pending"] == 1 and hooks["failed_last_day"] == 1
    assert hooks["recent_failures"] == [{
        "business": "acme-hooks", "event_id": "evt_f", "type": "booking.cancelled", "attempts": 8,
        "error": "ConnectionError: refused (gave up after 8 attempts)",
        "created_at": hooks["recent_failures"][0]["created_at"]}]

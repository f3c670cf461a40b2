"""Server-Sent Events: Redis pub/sub -> the signed-in customer's open page."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import delete

from portal import redis_client
from portal.events import channel
from portal.models import PortalSession
from portal_web.app import create_app
from portal_web.live import TIMING, sse
from tests.factories import make_booking, make_business, make_customer, make_provider, make_service
from tests.portal_web.signin_support import sign_in

GUARD_S = 10  # a hang guard, not a timing assertion


@pytest.fixture
async def live_client(aiohttp_client, settings, session_factory, aredis, stub_broker):
    app = create_app(settings, session_factory=session_factory, redis_client=aredis)
    app[TIMING] = {"heartbeat": 0.2, "max_stream": 30}
    return await aiohttp_client(app)


@pytest.fixture
def shop(db):
    business = make_business(db)
    customer = make_customer(db, business)
    other = make_customer(db, business)
    db.commit()
    return business, customer, other


async def read_event(resp, wanted: str | None = None) -> tuple[str | None, str]:
    """The next SSE event (skipping comments), as (event name, data)."""
    event, data = None, []
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), GUARD_S)).decode()
        assert line, "stream ended"
        line = line.rstrip("\n")
        if line == "":
            if data and (wanted is None or event == wanted):
                return event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


async def wait_subscribed(aredis, name: str) -> None:
    for _ in range(500):
        counts = dict(await aredis.pubsub_numsub(name))
        if counts.get(name.encode(), 0) > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the stream never subscribed")


async def test_published_event_reaches_the_stream(live_client, db, shop, aredis):
    business, customer, other = shop
    await sign_in(live_client, db, customer)
    resp = await live_client.get(f"/{business.slug}/events", headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Cache-Control"] == "no-store"
    name = channel(business.id, customer.id)
    await wait_subscribed(aredis, name)
    # Another customer's event goes to another channel and never shows up here.
    await aredis.publish(channel(business.id, other.id), json.dumps({"type": "booking_updated", "data": {"booking": "x"}}))
    await aredis.publish(name, json.dumps({"type": "booking_updated", "data": {"booking": "abc", "status": "cancelled"}}))
    event, data = await read_event(resp)
    assert event == "booking_updated" and json.loads(data) == {"booking": "abc", "status": "cancelled"}
    resp.close()


async def test_a_stream_ends_once_its_session_is_signed_out(live_client, db, shop, aredis):
    """Signed out in another tab: the open page gets no more events (the stream ends)."""
    business, customer, _ = shop
    await sign_in(live_client, db, customer)
    resp = await live_client.get(f"/{business.slug}/events", headers={"Accept": "text/event-stream"})
    name = channel(business.id, customer.id)
    await wait_subscribed(aredis, name)
    db.execute(delete(PortalSession).where(PortalSession.customer_id == customer.id))
    db.commit()
    await aredis.publish(name, json.dumps({"type": "booking_updated", "data": {"booking": "abc"}}))
    rest = await asyncio.wait_for(resp.content.read(), GUARD_S)
    assert b"booking_updated" not in rest and b"abc" not in rest
    resp.close()


async def test_heartbeats_and_unsubscribe_on_disconnect(live_client, db, shop, aredis):
    business, customer, other = shop
    await sign_in(live_client, db, customer)
    resp = await live_client.get(f"/{business.slug}/events")
    name = channel(business.id, customer.id)
    await wait_subscribed(aredis, name)
    seen = []
    while ": heartbeat" not in seen:
        seen.append((await asyncio.wait_for(resp.content.readline(), GUARD_S)).decode().strip())
    assert seen[0] == "retry: 2000"
    resp.close()  # the browser goes away: the next heartbeat write fails and the stream unsubscribes
    for _ in range(500):
        if dict(await aredis.pubsub_numsub(name)).get(name.encode(), 0) == 0:
            break
        await asyncio.sleep(0.02)
    assert dict(await aredis.pubsub_numsub(name)).get(name.encode(), 0) == 0


async def test_not_signed_in_is_401_not_a_redirect(live_client, shop):
    business, customer, other = shop
    resp = await live_client.get(f"/{business.slug}/events", headers={"Accept": "text/event-stream"},
                                 allow_redirects=False)
    assert resp.status == 401


async def test_a_reschedule_is_pushed_to_the_open_page(live_client, db, shop, aredis, redis_url):
    """End to end: the domain change commits, events.emit publishes, the stream forwards it."""
    from datetime import datetime, timedelta, timezone

    from portal import booking_changes as bc
    from portal.db import tenant_session
    from portal.models import Business

    business, customer, other = shop
    everyday = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    provider = make_provider(db, business, working_hours=everyday)
    service = make_service(db, business)
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(days=5)
    booking = make_booking(db, customer, starts_at=start, provider_id=provider.id, service_id=service.id)
    db.commit()
    await sign_in(live_client, db, customer)
    resp = await live_client.get(f"/{business.slug}/events")
    await wait_subscribed(aredis, channel(business.id, customer.id))
    redis_client.configure(redis_url)
    try:
        from portal_web.keys import SESSIONS

        with tenant_session(live_client.app[SESSIONS], business.id) as s:
            bc.reschedule(s, s.get(Business, business.id), customer.id, booking.public_id, start + timedelta(days=1))
            s.commit()
        event, data = await read_event(resp, "booking_updated")
    finally:
        redis_client.configure(None)
    payload = json.loads(data)
    assert payload["booking"] == booking.public_id and payload["version"] == 2
    resp.close()


def test_sse_framing():
    assert sse("x", '{"a":1}') == b'event: x\ndata: {"a":1}\n\n'
    assert sse(None, "one\ntwo") == b"data: one\ndata: two\n\n"

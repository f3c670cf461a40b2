"""A signed-in operator for the ops tests."""

from __future__ import annotations

import re

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from portal.broker import NAMESPACE, middleware

OPS_TOKEN = "test-ops-token-0123456789"  # tests/conftest.py settings.ops_token


async def sign_in(client) -> str:
    """Sign the test client in as an operator; returns the session's CSRF token."""
    resp = await client.post("/ops/signin", data={"token": OPS_TOKEN, "next": "/ops"}, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    page = await (await client.get("/ops")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.fixture
async def ops_csrf(client) -> str:
    return await sign_in(client)


def bearer() -> dict:
    return {"Authorization": f"Bearer {OPS_TOKEN}", "Accept": "application/json"}


@pytest.fixture
def redis_broker(redis_url, redis_client):
    """A broker like production's (namespace, middleware), on the test Redis."""
    broker = RedisBroker(url=redis_url, namespace=NAMESPACE, middleware=middleware())
    yield broker
    broker.close()


def dead_letter_a_delivery(broker, message_id: int, *, urgent: bool = False) -> None:
    """Run a delivery that blows up on a real worker: with no retries left it lands in the DLQ
    (of "messages", or of "urgent" where sign-in links go)."""

    def deliver_message(message_id):
        raise RuntimeError(f"provider exploded for {message_id}")

    queue = "urgent" if urgent else "messages"
    actor = dramatiq.actor(deliver_message, broker=broker, queue_name=queue, max_retries=0,
                           actor_name="deliver_urgent_message" if urgent else "deliver_message")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send(message_id)
        broker.join(queue)
        worker.join()
    finally:
        worker.stop()


def next_message(consumer, tries: int = 50):
    """The consumer's next message (it backs off while the queue looks empty), or fail."""
    for _ in range(tries):
        fetched = next(consumer)
        if fetched is not None:
            return fetched
    raise AssertionError("no message was handed out")

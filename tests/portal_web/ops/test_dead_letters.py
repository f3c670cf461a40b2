"""Dead letters on the real Redis broker: their error, and the retry and discard actions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.models import Message, MessageEvent
from tests.factories import make_business, make_customer
from tests.portal_web.ops.conftest import OPS_TOKEN, bearer, dead_letter_a_delivery, next_message


@pytest.fixture
def failed_message(db):
    business = make_business(db, slug="acme-cleaning")
    customer = make_customer(db, business)
    message = Message(business_id=business.id, idempotency_key="k-dead-1", kind="appointment_reminder",
                      category="reminders", channel="email", customer_id=customer.id, recipient=customer.email,
                      status="failed", status_reason="provider exploded")
    db.add(message)
    db.commit()
    return message


def dlq_ids(redis_client) -> list[str]:
    return [m.decode() for m in redis_client.zrange("portal:messages.XQ", 0, -1)]


async def test_a_dead_letter_shows_its_error_and_traceback(client, ops_csrf, redis_broker, redis_client,
                                                           failed_message):
    dead_letter_a_delivery(redis_broker, failed_message.id)
    [rid] = dlq_ids(redis_client)

    resp = await client.get("/ops/api/dead-letters?queue=messages")
    assert resp.status == 200
    [letter] = (await resp.json())["dead_letters"]
    assert letter["id"] == rid
    assert letter["actor"] == "deliver_message"
    assert letter["args"] == [failed_message.id]
    assert letter["error"] == f"RuntimeError: provider exploded for {failed_message.id}"
    assert "Traceback" in letter["traceback"] and "deliver_message" in letter["traceback"]

    page = await (await client.get("/ops/dead-letters")).text()
    assert f"RuntimeError: provider exploded for {failed_message.id}" in page
    assert f'action="/ops/dead-letters/messages/{rid}/retry"' in page
    assert f'action="/ops/dead-letters/messages/{rid}/discard"' in page
    assert f'name="csrf" value="{ops_csrf}"' in page


async def test_retry_and_discard_need_the_csrf_token(client, ops_csrf, redis_broker, redis_client, failed_message):
    dead_letter_a_delivery(redis_broker, failed_message.id)
    [rid] = dlq_ids(redis_client)
    for action in ("retry", "discard"):
        for data in ({}, {"csrf": "forged"}):
            resp = await client.post(f"/ops/dead-letters/messages/{rid}/{action}", data=data, allow_redirects=False)
            assert resp.status == 403, (action, data)
    assert dlq_ids(redis_client) == [rid]
    assert redis_client.llen("portal:messages") == 0


async def test_actions_need_an_operator(client, redis_broker, redis_client, failed_message):
    dead_letter_a_delivery(redis_broker, failed_message.id)
    [rid] = dlq_ids(redis_client)
    resp = await client.post(f"/ops/dead-letters/messages/{rid}/discard", allow_redirects=False)
    assert resp.status == 302
    assert dlq_ids(redis_client) == [rid]


async def test_retry_puts_the_message_back_on_its_queue_and_the_row_back_to_queued(
        client, ops_csrf, redis_broker, redis_client, failed_message, db):
    dead_letter_a_delivery(redis_broker, failed_message.id)
    [rid] = dlq_ids(redis_client)

    resp = await client.post(f"/ops/dead-letters/messages/{rid}/retry", data={"csrf": ops_csrf},
                             allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/ops/dead-letters?queue=messages&notice=retried"
    assert dlq_ids(redis_client) == []
    assert redis_client.hlen("portal:messages.XQ.msgs") == 0

    # The broker hands it out again, as a fresh attempt with the same arguments.
    consumer = redis_broker.consume("messages", timeout=100)
    try:
        fetched = next_message(consumer)
        assert fetched.actor_name == "deliver_message"
        assert fetched.args == (failed_message.id,)
        assert fetched.options["redis_message_id"] != rid
        assert "traceback" not in fetched.options and "retries" not in fetched.options
        consumer.ack(fetched)
    finally:
        consumer.close()

    db.expire_all()
    row = db.get(Message, failed_message.id)
    assert row.status == "queued"
    events = db.scalars(select(MessageEvent).where(MessageEvent.message_id == row.id)).all()
    assert [(e.status, e.detail) for e in events][-1] == ("queued", "retried by an operator")

    page = await (await client.get(resp.headers["Location"])).text()
    assert "The message is back on its queue." in page

    again = await client.post(f"/ops/dead-letters/messages/{rid}/retry", data={"csrf": ops_csrf},
                              allow_redirects=False)
    assert again.status == 404


async def test_discard_removes_the_dead_letter_only(client, ops_csrf, redis_broker, redis_client, failed_message, db):
    dead_letter_a_delivery(redis_broker, failed_message.id)
    [rid] = dlq_ids(redis_client)
    resp = await client.post(f"/ops/dead-letters/messages/{rid}/discard", data={"csrf": ops_csrf},
                             allow_redirects=False)
    assert resp.status == 303
    assert dlq_ids(redis_client) == []
    assert redis_client.hlen("portal:messages.XQ.msgs") == 0
    assert redis_client.llen("portal:messages") == 0
    db.expire_all()
    assert db.get(Message, failed_message.id).status == "failed"


async def test_scripts_act_with_the_bearer_token_and_get_json(client, redis_broker, redis_client, failed_message):
    dead_letter_a_delivery(redis_broker, failed_message.id)
    [rid] = dlq_ids(redis_client)
    resp = await client.post(f"/ops/dead-letters/messages/{rid}/retry", headers=bearer())
    assert resp.status == 200
    body = await resp.json()
    assert body["retried"] == rid and body["message_reset"] is True
    assert redis_client.lrange("portal:messages", 0, -1) == [body["new_id"].encode()]


async def test_unknown_queue_or_id_is_404(client, ops_csrf):
    resp = await client.post("/ops/dead-letters/nope/abc/retry", data={"csrf": ops_csrf}, allow_redirects=False)
    assert resp.status == 404
    resp = await client.post("/ops/dead-letters/messages/abc/discard", data={"csrf": ops_csrf}, allow_redirects=False)
    assert resp.status == 404


async def test_a_gone_dead_letter_is_explained_to_operators_not_customers(client, ops_csrf):
    """Another operator got there first: the page says so, without the customers' 'check your email' 404."""
    resp = await client.post("/ops/dead-letters/messages/abc/retry", data={"csrf": ops_csrf}, allow_redirects=False)
    page = await resp.text()
    assert resp.status == 404 and "already retried, discarded or expired" in page
    assert "email or text message" not in page and "Page introuvable" not in page
    resp = await client.get("/ops/dead-letters?queue=nope")
    assert resp.status == 404 and "email or text message" not in await resp.text()


async def test_a_script_gets_json_errors_from_the_actions(client):
    resp = await client.post("/ops/dead-letters/messages/abc/discard",
                             headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert resp.status == 404
    assert (await resp.json())["error"].startswith("That dead letter is gone")


async def test_retrying_an_urgent_delivery_puts_its_row_back_to_queued(client, ops_csrf, redis_broker, redis_client,
                                                                       failed_message, db):
    dead_letter_a_delivery(redis_broker, failed_message.id, urgent=True)
    [rid] = [m.decode() for m in redis_client.zrange("portal:urgent.XQ", 0, -1)]
    resp = await client.post(f"/ops/dead-letters/urgent/{rid}/retry", data={"csrf": ops_csrf}, allow_redirects=False)
    assert resp.status == 303 and redis_client.llen("portal:urgent") == 1
    db.expire_all()
    assert db.get(Message, failed_message.id).status == "queued"

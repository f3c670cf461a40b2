"""The webhook delivery log through the API: the booking system sees what was sent and whether its
endpoint took it, and has an event sent again after an outage outlasted the retries."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import select

from portal.models import Business, WebhookDelivery, utcnow
from tests.factories import make_business
from tests.portal_web.api.conftest import Api


def delivery(db, business, event_id: str, status: str, **fields) -> WebhookDelivery:
    row = WebhookDelivery(business_id=business.id, event_id=event_id, event_type="booking.cancelled",
                          payload={"booking": "b1"}, url="https://old.example/hooks", status=status, **fields)
    db.add(row)
    db.commit()
    return row


@pytest.fixture
def log(db, biz):
    biz = db.get(Business, biz.id)
    biz.webhook_url = "https://booking.example/hooks"
    db.commit()
    delivery(db, biz, "evt_1", "delivered", attempts=1, last_status_code=200, delivered_at=utcnow())
    delivery(db, biz, "evt_2", "failed", attempts=8, last_status_code=503,
             last_error="HTTP 503 (gave up after 8 attempts)")
    delivery(db, make_business(db), "evt_other", "failed")  # another business's
    return biz


def queued_webhooks(broker) -> list[tuple]:
    queue = broker.queues.get("webhooks")
    return [dramatiq.Message.decode(raw).args for raw in list(queue.queue)] if queue else []


async def test_the_log_lists_this_business_s_events_newest_first(api, log):
    status, body = await api.get("/webhook-deliveries")
    assert status == 200
    assert [d["event_id"] for d in body["deliveries"]] == ["evt_2", "evt_1"]
    failed = body["deliveries"][0]
    assert failed["status"] == "failed" and failed["attempts"] == 8 and failed["last_status_code"] == 503
    assert failed["last_error"] == "HTTP 503 (gave up after 8 attempts)" and failed["data"] == {"booking": "b1"}
    assert [d["event_id"] for d in (await api.get("/webhook-deliveries?status=delivered"))[1]["deliveries"]] == ["evt_1"]
    assert len((await api.get("/webhook-deliveries?limit=1"))[1]["deliveries"]) == 1
    for query in ("status=lost", "limit=many"):
        status, body = await api.get(f"/webhook-deliveries?{query}")
        assert status == 422 and body["fields"]


async def test_a_failed_event_is_sent_again_to_the_current_url(api, db, log, stub_broker):
    status, body = await api.post("/webhook-deliveries/evt_2/redeliver")
    assert status == 202 and body["status"] == "pending" and body["attempts"] == 0
    db.expire_all()
    row = db.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == "evt_2"))
    assert row.url == "https://booking.example/hooks" and row.next_attempt_at <= utcnow() + timedelta(seconds=1)
    assert queued_webhooks(stub_broker) == [(row.id,)]
    # Asked again while pending: left to its round, nothing queued twice.
    assert (await api.post("/webhook-deliveries/evt_2/redeliver"))[0] == 202
    assert queued_webhooks(stub_broker) == [(row.id,)]


async def test_unknown_or_another_business_s_event_is_404(api, log, stub_broker):
    for event_id in ("evt_nope", "evt_other"):
        status, body = await api.post(f"/webhook-deliveries/{event_id}/redeliver")
        assert status == 404 and body["error"] == "unknown webhook event"
    assert queued_webhooks(stub_broker) == []


async def test_no_redelivery_without_a_webhook_url(api, db, log, stub_broker):
    biz = db.get(Business, log.id)
    biz.webhook_url = None
    db.commit()
    status, body = await api.post("/webhook-deliveries/evt_1/redeliver")
    assert status == 409 and "webhook_url" in body["error"]
    db.expire_all()
    assert db.scalar(select(WebhookDelivery.status).where(WebhookDelivery.event_id == "evt_1")) == "delivered"


async def test_redeliver_takes_no_body_and_a_key(client, api, log):
    assert (await api.post("/webhook-deliveries/evt_2/redeliver", {"force": True}))[0] == 422
    other = Api(client, "cpk_wrong")
    assert (await other.get("/webhook-deliveries"))[0] == 401

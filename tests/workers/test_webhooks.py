"""Outbound webhooks: recorded in the change's transaction, signed, delivered
by the worker with retries against a local receiver, and logged."""

import asyncio
import json
import time

import pytest
from aiohttp import web
from sqlalchemy import select

from portal import webhooks_out
from portal.db import tenant_session
from portal.models import WebhookDelivery
from tests.factories import make_business
from tests.fakes.dns import PUBLIC, resolve_as
from workers import webhooks as worker


@pytest.fixture
def business(db):
    b = make_business(db)
    db.commit()
    return b


@pytest.fixture
def wired(monkeypatch, session_factory, stub_broker):
    monkeypatch.setattr(worker._config, "session_factory", session_factory)
    monkeypatch.setattr(worker._config, "allow_private", True)  # the receiver listens on 127.0.0.1
    monkeypatch.setattr(worker._config, "max_attempts", 3)
    monkeypatch.setattr(worker, "BACKOFF_BASE_S", 0)  # retry at once: no waiting in tests
    return stub_broker


@pytest.fixture
def webhook_worker(stub_broker):
    """A worker on the webhooks queue only."""
    import dramatiq

    w = dramatiq.Worker(stub_broker, queues={"webhooks"}, worker_timeout=50, worker_threads=1)
    w.start()
    yield w
    w.stop()


class Receiver:
    """A booking system's endpoint on 127.0.0.1: answers the scripted statuses in turn."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests = []

    async def handle(self, request):
        self.requests.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        status, headers = status if isinstance(status, tuple) else (status, {})  # (503, {"Retry-After": "5"})
        if 300 <= status < 400:
            headers = {**headers, "Location": "/hooks"}
        return web.Response(status=status, text="ok", headers=headers)


async def receiver(aiohttp_server, statuses):
    rec = Receiver(statuses)
    app = web.Application()
    app.router.add_post("/hooks", rec.handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    rec.server = server
    return rec, str(server.make_url("/hooks"))


def record(session_factory, business, url, event="booking.rescheduled", data=None):
    with tenant_session(session_factory, business.id) as s:
        from portal.models import Business

        row = s.get(Business, business.id)
        row.webhook_url = url
        delivery = webhooks_out.record_event(s, row, event, data or {"booking": "bk-1", "version": 2})
        s.commit()
        return delivery.id


async def run_worker(broker, webhook_worker):
    # The receiver lives on this event loop, so wait for the worker in a thread.
    await asyncio.to_thread(lambda: (broker.join("webhooks", timeout=20_000), webhook_worker.join()))


def test_no_url_no_delivery(db, business):
    assert webhooks_out.record_event(db, business, "quote.approved", {"quote": "q-1"}) is None
    assert db.scalars(select(WebhookDelivery)).all() == []


def test_unknown_event_type_is_a_bug(db, business):
    business.webhook_url = "https://example.com/hooks"
    with pytest.raises(ValueError):
        webhooks_out.record_event(db, business, "booking.exploded", {})


def test_enqueued_only_after_commit(session_factory, business, wired):
    with tenant_session(session_factory, business.id) as s:
        from portal.models import Business

        row = s.get(Business, business.id)
        row.webhook_url = "https://example.com/hooks"
        webhooks_out.record_event(s, row, "booking.cancelled", {"booking": "bk-1"})
        s.rollback()
    assert wired.queues["webhooks"].qsize() == 0
    delivery_id = record(session_factory, business, "https://example.com/hooks")
    assert wired.queues["webhooks"].qsize() == 1
    with tenant_session(session_factory, business.id) as s:
        assert s.get(WebhookDelivery, delivery_id).status == "pending"


def test_signature_round_trip():
    body = b'{"id":"evt_1"}'
    headers = webhooks_out.signed_headers("s3cret", body, now=1_700_000_000)
    ts, sig = headers["X-Portal-Timestamp"], headers["X-Portal-Signature"]
    assert sig.startswith("v1=") and len(sig) == 3 + 64
    assert webhooks_out.verify("s3cret", ts, body, sig, now=1_700_000_100)
    assert not webhooks_out.verify("s3cret", ts, body + b" ", sig, now=1_700_000_100)  # tampered body
    assert not webhooks_out.verify("other", ts, body, sig, now=1_700_000_100)  # wrong secret
    assert not webhooks_out.verify("s3cret", ts, body, sig, now=1_700_001_000)  # stale
    assert not webhooks_out.verify("s3cret", "soon", body, sig)


async def test_500_then_200_is_retried_and_signed(aiohttp_server, session_factory, business, wired, webhook_worker, db):
    rec, url = await receiver(aiohttp_server, [500, 200])
    delivery_id = record(session_factory, business, url, "quote.declined", {"quote": "q-7", "comment": "too dear"})
    await run_worker(wired, webhook_worker)

    assert len(rec.requests) == 2
    (h1, b1), (h2, b2) = rec.requests
    assert b1 == b2  # the same event: the receiver can dedupe by id
    doc = json.loads(b2)
    assert doc["type"] == "quote.declined" and doc["data"] == {"quote": "q-7", "comment": "too dear"}
    assert doc["id"].startswith("evt_") and doc["created_at"].endswith("Z")
    for headers, body in rec.requests:
        assert headers["Content-Type"] == "application/json"
        assert webhooks_out.verify(business.webhook_secret, headers["X-Portal-Timestamp"], body,
                                   headers["X-Portal-Signature"], now=time.time())
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.delivered_at is not None and delivery.last_error is None


async def test_gives_up_after_max_attempts(aiohttp_server, session_factory, business, wired, webhook_worker, db):
    rec, url = await receiver(aiohttp_server, [503])
    delivery_id = record(session_factory, business, url)
    await run_worker(wired, webhook_worker)
    assert len(rec.requests) == 3
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 503)
    assert "gave up after 3 attempts" in delivery.last_error


async def test_client_error_is_not_retried(aiohttp_server, session_factory, business, wired, webhook_worker, db):
    rec, url = await receiver(aiohttp_server, [410])
    delivery_id = record(session_factory, business, url)
    await run_worker(wired, webhook_worker)
    assert len(rec.requests) == 1
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 410)


async def test_429_is_retried(aiohttp_server, session_factory, business, wired, webhook_worker, db):
    rec, url = await receiver(aiohttp_server, [429, 204])
    delivery_id = record(session_factory, business, url)
    await run_worker(wired, webhook_worker)
    db.expire_all()
    assert db.get(WebhookDelivery, delivery_id).status == "delivered" and len(rec.requests) == 2


@pytest.mark.parametrize("retry_after", ["nan", "-30"])
async def test_a_retry_after_that_is_no_delay_falls_back_to_the_backoff(aiohttp_server, session_factory, business,
                                                                        wired, webhook_worker, db, retry_after):
    rec, url = await receiver(aiohttp_server, [(503, {"Retry-After": retry_after}), 200])
    delivery_id = record(session_factory, business, url)
    await run_worker(wired, webhook_worker)
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2) and len(rec.requests) == 2
    assert worker._retry_after(_answer(503, {"Retry-After": retry_after})) is None


def _answer(status, headers):
    import requests

    resp = requests.Response()
    resp.status_code, resp.headers = status, requests.structures.CaseInsensitiveDict(headers)
    return resp


async def test_connection_refused_is_retried_then_logged(aiohttp_server, session_factory, business, wired, webhook_worker,
                                                         db):
    rec, url = await receiver(aiohttp_server, [200])
    await rec.server.close()  # nothing listens on that port any more
    delivery_id = record(session_factory, business, url)
    await run_worker(wired, webhook_worker)
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, None)
    assert "ConnectionError" in delivery.last_error


def test_redelivered_job_after_success_does_nothing(session_factory, business, wired, db):
    delivery_id = record(session_factory, business, "http://127.0.0.1:9/never")
    db.expire_all()
    row = db.get(WebhookDelivery, delivery_id)
    row.status = "delivered"
    db.commit()
    assert worker.attempt(delivery_id) == "delivered"
    assert worker.attempt(999_999) == "missing"


def test_backoff_grows_and_is_capped(monkeypatch):
    monkeypatch.setattr(worker, "BACKOFF_BASE_S", 10)
    assert [worker.backoff_s(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert worker.backoff_s(50) == worker.BACKOFF_MAX_S


def test_overdue_pending_deliveries_are_enqueued_again(session_factory, business, wired, db):
    from datetime import timedelta

    from portal.models import utcnow

    delivery_id = record(session_factory, business, "https://example.com/hooks")
    wired.flush_all()
    assert webhooks_out.redeliver_overdue(db) == 0  # just queued: not overdue
    db.get(WebhookDelivery, delivery_id).next_attempt_at = utcnow() - timedelta(hours=1)
    db.commit()
    assert webhooks_out.redeliver_overdue(db) == 1
    assert wired.queues["webhooks"].qsize() == 1


async def test_redirects_are_not_followed(aiohttp_server, session_factory, business, wired, webhook_worker, db):
    rec, url = await receiver(aiohttp_server, [302])  # back to itself: following it would post twice
    delivery_id = record(session_factory, business, url)
    await run_worker(wired, webhook_worker)
    assert len(rec.requests) == 1
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 302)


@pytest.fixture
def guarded(wired, monkeypatch):
    """The production setting: private addresses refused; nothing may actually be posted."""
    monkeypatch.setattr(worker._config, "allow_private", False)
    refused = lambda *a, **kw: pytest.fail("posted to a refused URL")  # noqa: E731
    monkeypatch.setattr(worker.requests, "post", refused)
    monkeypatch.setattr(worker.netguard, "guarded_session", refused)  # the production path's post
    return wired


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hooks", "http://[::1]/hooks", "http://[::ffff:127.0.0.1]/hooks",
                                 "http://10.0.0.7/hooks", "http://169.254.169.254/latest/meta-data/"])
def test_internal_address_is_refused_at_send_time_and_not_retried(session_factory, business, guarded, db, url):
    delivery_id = record(session_factory, business, url)
    guarded.flush_all()
    assert worker.attempt(delivery_id) == "failed"
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, None)
    assert delivery.next_attempt_at is None
    assert delivery.last_error.startswith("refused, not sent:") and "private or internal" in delivery.last_error
    assert delivery.last_error.endswith("not retried")
    assert guarded.queues["webhooks"].qsize() == 0


def test_host_rebound_to_an_internal_address_after_it_was_set_is_refused(session_factory, business, guarded, db,
                                                                         monkeypatch):
    resolve_as(monkeypatch, {"booking.example.com": [PUBLIC]})  # what the API saw when the URL was set
    delivery_id = record(session_factory, business, "https://booking.example.com/hooks")
    guarded.flush_all()
    resolve_as(monkeypatch, {"booking.example.com": ["169.254.169.254"]})  # and what DNS says now
    assert worker.attempt(delivery_id) == "failed"
    db.expire_all()
    assert "169.254.169.254" in db.get(WebhookDelivery, delivery_id).last_error
    assert guarded.queues["webhooks"].qsize() == 0


def test_host_that_does_not_resolve_is_retried_like_a_network_error(session_factory, business, guarded, db, monkeypatch):
    resolve_as(monkeypatch, {})
    delivery_id = record(session_factory, business, "https://booking.example.com/hooks")
    guarded.flush_all()
    assert worker.attempt(delivery_id) == "pending"
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert delivery.attempts == 1 and "UnresolvedHost" in delivery.last_error
    assert guarded.queues["webhooks"].qsize() == 1  # the next attempt
    for _ in range(2):  # max_attempts is 3 in these tests
        worker.attempt(delivery_id)
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert delivery.status == "failed" and "gave up after 3 attempts" in delivery.last_error


async def test_a_name_that_resolves_elsewhere_at_connect_time_is_refused_before_the_request(
        aiohttp_server, session_factory, business, wired, db, monkeypatch):
    # DNS rebinding: the check just before the post saw a public address, the connect reached 127.0.0.1.
    rec, url = await receiver(aiohttp_server, [200])
    monkeypatch.setattr(worker._config, "allow_private", False)
    monkeypatch.setattr(worker.netguard, "check_url", lambda url: None)  # what the check was told: public
    delivery_id = record(session_factory, business, url)
    wired.flush_all()
    assert await asyncio.to_thread(worker.attempt, delivery_id) == "failed"
    assert rec.requests == []
    db.expire_all()
    delivery = db.get(WebhookDelivery, delivery_id)
    assert delivery.last_error.startswith("refused, not sent:") and delivery.next_attempt_at is None
    assert "connected to a private or internal network address (127.0.0.1)" in delivery.last_error
    assert wired.queues["webhooks"].qsize() == 0

"""Prometheus: the web app's /metrics, and Dramatiq's middleware on the workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.prometheus import Prometheus
from prometheus_client import CONTENT_TYPE_LATEST

from portal import broker as portal_broker
from portal.queues import DeadLetterErrors, error_summary
from tests.factories import make_business, make_customer
from tests.portal_web.ops.conftest import OPS_TOKEN
from tests.portal_web.ops.test_dashboard import add_message


async def test_metrics_from_loopback_carry_app_metrics_and_scrape_time_gauges(client, db, redis_broker):
    business = make_business(db)
    customer = make_customer(db, business)
    for _ in range(2):
        add_message(db, business, customer, status="delivered")
    add_message(db, business, customer, status="failed", channel="sms")
    db.commit()
    redis_broker.enqueue(dramatiq.Message(queue_name="messages", actor_name="deliver_message", args=(1,),
                                          kwargs={}, options={}))
    assert (await client.get("/healthz")).status == 200
    await client.post("/ops/dead-letters/messages/abc/retry", allow_redirects=False)

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    text = await resp.text()
    # Request latency, labelled by route pattern, never by raw path.
    assert 'portal_request_duration_seconds_count{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/ops/dead-letters/{queue}/{id}/retry",status="302"' in text
    assert "/ops/dead-letters/messages/abc" not in text
    for name in ("portal_messages_total", "portal_webhook_verification_failures_total", "portal_signins_total"):
        assert f"# TYPE {name} counter" in text
    # Read from the database and Redis at scrape time.
    assert 'portal_messages_current{channel="email",status="delivered"} 2.0' in text
    assert 'portal_messages_current{channel="sms",status="failed"} 1.0' in text
    assert 'portal_queue_messages{queue="messages",state="ready"} 1.0' in text
    assert 'portal_queue_messages{queue="messages",state="dead"} 0.0' in text


async def test_metrics_through_a_proxy_need_the_ops_token(client, db):
    business = make_business(db)
    db.commit()
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert (await client.get("/metrics", headers=proxied)).status == 401
    for token in ("wrong", business.api_key):
        resp = await client.get("/metrics", headers={**proxied, "Authorization": f"Bearer {token}"})
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    ok = await client.get("/metrics", headers={**proxied, "Authorization": f"Bearer {OPS_TOKEN}"})
    assert ok.status == 200


async def test_metrics_in_multiprocess_mode(client, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert "# TYPE portal_messages_current gauge" in await resp.text()


def test_worker_metrics_are_on_for_portal_worker_unless_turned_off(tmp_path):
    (tmp_path / "counter_123.db").write_bytes(b"old run")
    env = {"dramatiq_prom_db": str(tmp_path)}
    portal_broker.prepare_worker_env(env)
    assert env["PORTAL_WORKER_METRICS"] == "1"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert not (tmp_path / "counter_123.db").exists()

    for off in ({"WORKER_METRICS": "0"}, {"PORTAL_DEV": "1"}):
        env = {"dramatiq_prom_db": str(tmp_path), **off}
        portal_broker.prepare_worker_env(env)
        assert "PORTAL_WORKER_METRICS" not in env and "PROMETHEUS_MULTIPROC_DIR" not in env


@pytest.mark.parametrize("flag, expected", [("1", True), (None, False)])
def test_prometheus_middleware_only_on_worker_redis_brokers(monkeypatch, redis_url, flag, expected):
    monkeypatch.delenv("PORTAL_BROKER", raising=False)
    if flag:
        monkeypatch.setenv("PORTAL_WORKER_METRICS", flag)
    else:
        monkeypatch.delenv("PORTAL_WORKER_METRICS", raising=False)
    broker = portal_broker.build_broker(redis_url)
    try:
        kinds = [type(m) for m in broker.middleware]
        assert (Prometheus in kinds) is expected
        assert DeadLetterErrors in kinds
    finally:
        broker.close()


def test_never_on_the_stub_broker(monkeypatch):
    monkeypatch.setenv("PORTAL_WORKER_METRICS", "1")
    monkeypatch.setenv("PORTAL_BROKER", "stub")
    broker = portal_broker.build_broker("redis://127.0.0.1:6379/0")
    assert isinstance(broker, StubBroker)
    assert Prometheus not in [type(m) for m in broker.middleware]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


@pytest.mark.integration
def test_portal_worker_serves_dramatiq_metrics_and_keeps_dead_letter_errors(tmp_path, redis_url, redis_client,
                                                                            database_url):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PORTAL_BROKER", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(PORTAL_DEV="1", WORKER_METRICS="1", REDIS_URL=redis_url, DATABASE_URL=database_url,
               dramatiq_prom_host="127.0.0.1", dramatiq_prom_port=str(port), dramatiq_prom_db=str(tmp_path / "prom"))
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "portal", "worker", "--processes", "1", "--threads", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: scrape(port) is not None or proc.poll() is not None, "the exposition server")
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()
        # A message no actor handles is dead-lettered by the real worker.
        broker = RedisBroker(url=redis_url, namespace="portal")
        broker.enqueue(dramatiq.Message(queue_name="messages", actor_name="no_such_actor", args=(), kwargs={},
                                        options={}))
        broker.close()
        wait_for(lambda: redis_client.zcard("portal:messages.XQ") == 1, "the dead letter")
        text = wait_for(lambda: (t := scrape(port)) and "dramatiq_message_rejects_total{" in t and t,
                        "the rejects counter")
        assert 'dramatiq_message_rejects_total{actor_name="no_such_actor",queue_name="messages"} 1.0' in text
        [body] = redis_client.hvals("portal:messages.XQ.msgs")
        assert "ActorNotFound" in error_summary(json.loads(body)["options"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

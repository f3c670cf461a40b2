"""Real worker processes on the real Redis broker.

Each test commits its own rows (a business with a unique slug, deleted at the
end), starts ``portal worker`` as a subprocess with the outbox providers
writing to a temporary directory, and enqueues on Redis the way the web app does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import delete

from portal.broker import NAMESPACE
from portal.db import make_session_factory, system_session
from portal.models import Business, Message
from portal.outbox import queue_notice
from tests.factories import make_booking, make_business, make_customer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
WAIT_S = 90  # an upper bound, not a timing assertion: heartbeat timeout (15 s) + maintenance + start-up


def wait_for(predicate, timeout=WAIT_S, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Workers:
    """Worker subprocesses, each in its own process group, stopped (or killed) at the end."""

    def __init__(self, tmp_path: Path, env: dict):
        self.tmp_path, self.env, self.procs = tmp_path, env, []

    def start(self, args: list[str], **extra_env) -> subprocess.Popen:
        n = len(self.procs)
        log = open(self.tmp_path / f"worker-{n}.log", "wb")
        proc = subprocess.Popen([PYTHON, *args], cwd=ROOT, env={**self.env, **extra_env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name
        log.close()
        self.procs.append(proc)
        return proc

    def kill9(self, proc) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path}\n" + Path(p.log_path).read_text(errors="replace")[-4000:]
                         for p in self.procs)


@pytest.fixture
def outbox_dir(tmp_path):
    return tmp_path / "outbox"


@pytest.fixture
def workers(tmp_path, database_url, redis_url, redis_client, settings, outbox_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("PORTAL_BROKER", "PORTAL_DEV", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(
        REDIS_URL=redis_url, DATABASE_URL=database_url, SECRET_KEY=settings.secret_key,
        PUBLIC_BASE_URL=settings.public_base_url, OPS_TOKEN=settings.ops_token, EMAIL_PROVIDER="outbox",
        SMS_PROVIDER="outbox", OUTBOX_DIR=str(outbox_dir), WORKER_METRICS="0", PYTHONUNBUFFERED="1",
    )
    group = Workers(tmp_path, env)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def committed(engine):
    """A session factory whose commits are real; the business (and everything under it) is deleted after."""
    factory = make_session_factory(engine)
    slugs = []
    yield factory, slugs
    with system_session(factory) as session:
        for slug in slugs:
            session.execute(delete(Business).where(Business.slug == slug))
        session.commit()


@pytest.fixture
def redis_broker(redis_url):
    broker = RedisBroker(url=redis_url, namespace=NAMESPACE)
    broker.declare_queue("messages")
    yield broker
    broker.close()


def send_on_redis(broker: RedisBroker, message_id: int) -> None:
    """What ``portal.outbox.enqueue`` does in the web app, on the real broker."""
    broker.enqueue(dramatiq.Message(queue_name="messages", actor_name="deliver_message", args=(message_id,),
                                    kwargs={}, options={}))


def queue_confirmation(committed) -> int:
    factory, slugs = committed
    slug = f"itest-{uuid.uuid4().hex[:10]}"
    slugs.append(slug)
    with system_session(factory) as session:
        business = make_business(session, slug=slug, name="Integration Cleaning")
        customer = make_customer(session, business, email=f"{slug}@example.com")
        booking = make_booking(session, customer)
        (message,) = queue_notice(session, kind="booking_confirmation", customer=customer, booking=booking,
                                  key=f"booking:{booking.id}:v1", channels=["email"])
        session.commit()  # the after-commit enqueue lands on the test's StubBroker; Redis gets it below
        return message.id


def outbox_files(outbox_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(outbox_dir.glob("*.json"))]


def row(committed, message_id) -> Message:
    factory, _ = committed
    with system_session(factory) as session:
        message = session.get(Message, message_id)
        session.expunge(message)
        return message


def test_real_worker_delivers_from_redis(workers, committed, redis_broker, outbox_dir):
    message_id = queue_confirmation(committed)
    workers.start(["-m", "portal", "worker", "--processes", "1", "--threads", "2"])
    send_on_redis(redis_broker, message_id)
    try:
        files = wait_for(lambda: outbox_files(outbox_dir), what="the outbox file")
        wait_for(lambda: row(committed, message_id).status == "sent", what="the row to be sent")
    except AssertionError:
        pytest.fail(workers.logs())
    (record,) = files
    assert record["message_id"] == message_id and record["attachments"] == ["invite.ics"]
    assert row(committed, message_id).provider_id == record["name"]


def test_worker_killed_mid_send_is_redelivered_and_sends_once(workers, committed, redis_broker, outbox_dir,
                                                              tmp_path):
    """kill -9 during the provider call: Redis redelivers the job to another worker within a
    minute (portal.broker's heartbeat settings); the lease (2 s here) has run out with no status
    callback, so that worker sends it -- once."""
    message_id = queue_confirmation(committed)
    marker = tmp_path / "send-started"
    stalled = workers.start(["-m", "dramatiq", "tests.messages.stalling_worker", "--processes", "1",
                             "--threads", "1"], STALL_MARKER=str(marker), STALL_SECONDS="600", SENDING_LEASE="2")
    send_on_redis(redis_broker, message_id)
    try:
        wait_for(marker.exists, what="the send to start")
    except AssertionError:
        pytest.fail(workers.logs())
    assert row(committed, message_id).status == "sending"
    workers.kill9(stalled)
    assert outbox_files(outbox_dir) == []

    workers.start(["-m", "portal", "worker", "--processes", "1", "--threads", "2"], SENDING_LEASE="2")
    try:
        wait_for(lambda: row(committed, message_id).status == "sent", what="the redelivered send")
    except AssertionError:
        pytest.fail(workers.logs())
    workers.stop_all()  # graceful: anything still in flight finishes before we count
    (record,) = outbox_files(outbox_dir)
    assert record["message_id"] == message_id
    message = row(committed, message_id)
    assert message.attempts == 2 and message.provider_id == record["name"]

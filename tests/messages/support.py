"""Helpers shared by the messaging tests (tests/messages, tests/workers/test_messaging*)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import dramatiq

from messages.providers.base import Email, SendResult, Sms
from portal.models import Consent, utcnow


class RecordingSender:
    """An EmailSender / SmsSender that records what it is asked to send.

    ``script`` holds exceptions to raise on the next calls, in order; a call
    with the script empty succeeds.
    """

    def __init__(self, name: str = "recording"):
        self.name = name
        self.sent: list[Email | Sms] = []
        self.calls = 0
        self.script: list[Exception] = []
        self._lock = threading.Lock()

    def _send(self, item):
        with self._lock:
            self.calls += 1
            if self.script:
                raise self.script.pop(0)
            self.sent.append(item)
            return SendResult(provider=self.name, provider_id=f"{self.name}-{len(self.sent)}")

    def send_email(self, email: Email) -> SendResult:
        assert isinstance(email, Email)
        return self._send(email)

    def send_sms(self, sms: Sms) -> SendResult:
        assert isinstance(sms, Sms)
        return self._send(sms)


def daytime_zone() -> str:
    """A fixed-offset zone where it is about 14:00 now, so quiet hours never hold an SMS back
    (a test sending texts must pass at any hour of the day)."""
    offset = ((14 - datetime.now(timezone.utc).hour + 12) % 24) - 12
    return f"Etc/GMT{-offset:+d}"  # Etc/GMT-5 is UTC+5


def consent_sms(session, customer, granted: bool = True, *, category=None, age_s: int = 0):
    row = Consent(business_id=customer.business_id, customer_id=customer.id, channel="sms", category=category,
                  granted=granted, source="booking_system", created_at=utcnow() - timedelta(seconds=age_s))
    session.add(row)
    session.flush()
    return row


def drain(broker, queues: tuple[str, ...] = ("urgent", "messages")) -> None:
    """Run a worker until the queues (and their delay queues) are empty, then stop it.

    The worker starts only now, after the test's data is committed: the test
    and the worker take turns on the one connection of the rolled-back test
    transaction, never use it at the same time.
    """
    worker = dramatiq.Worker(broker, worker_timeout=20, worker_threads=1)
    worker.start()
    try:
        for queue in queues:
            broker.join(queue, fail_fast=False, timeout=30_000)
    finally:
        worker.stop()
        # A stopped worker leaves its middleware on the broker; the next one would warn about it.
        for middleware in list(broker.middleware):
            if getattr(middleware, "worker", None) is worker:
                broker.middleware.remove(middleware)

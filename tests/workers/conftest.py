"""Fixtures for the worker tests."""

from types import SimpleNamespace

import pytest

from tests.messages.support import RecordingSender
from workers import messaging


@pytest.fixture
def senders(settings, session_factory, stub_broker):
    """``deliver_message`` configured with recording senders and quick retries, on the StubBroker."""
    email, sms = RecordingSender("rec-email"), RecordingSender("rec-sms")
    messaging.configure(settings, email_sender=email, sms_sender=sms, session_factory=session_factory,
                        backoff_base_s=0.01, max_attempts=3)
    yield SimpleNamespace(email=email, sms=sms, broker=stub_broker)
    messaging.reset()

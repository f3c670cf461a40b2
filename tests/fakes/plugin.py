"""Pytest fixtures for the provider fakes (registered from tests/conftest.py).

    def test_x(fake_twilio, settings):
        settings = fake_twilio.configure(settings)   # real SDK -> this fake
        fake_twilio.fail(21610)                       # next send: recipient opted out
"""

from __future__ import annotations

import pytest

from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio


@pytest.fixture
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_sendgrid():
    with FakeSendGrid() as fake:
        yield fake

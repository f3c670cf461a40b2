"""Fixtures shared by the portal tests; a module defining its own of the same name wins."""

from __future__ import annotations

import pytest

from tests.factories import make_business, make_customer
from tests.fakes import sendgrid_keypair

TWILIO_TOKEN = "test-twilio-auth-token-0123456789"


@pytest.fixture
def business(db):
    """The business at /pro-home."""
    return make_business(db, slug="pro-home", name="Pro Home Services")


@pytest.fixture
def jane(db, business):
    return make_customer(db, business, name="Jane Doe", email="jane.doe@example.com")


@pytest.fixture
def sendgrid_key():
    """(private key to sign events with, public key as SENDGRID_WEBHOOK_PUBLIC_KEY holds it)."""
    return sendgrid_keypair()


def with_webhook_secrets(settings, sendgrid_key):
    """Settings whose Twilio token and SendGrid key the tests can sign callbacks with."""
    return settings.replace(twilio_auth_token=TWILIO_TOKEN, sendgrid_webhook_public_key=sendgrid_key[1])

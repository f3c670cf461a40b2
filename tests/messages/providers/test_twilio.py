"""TwilioSmsSender drives the real twilio SDK against the local fake, for every failure class."""

from __future__ import annotations

import base64

import pytest

from messages.providers.base import Sms
from messages.providers.twilio import TwilioSmsSender, status_callback_url
from portal.errors import PermanentProviderError, TransientProviderError, UnknownDeliveryError
from tests.fakes import closed_port_url


@pytest.fixture
def sender(fake_twilio, settings):
    sender = TwilioSmsSender(fake_twilio.configure(settings.replace(provider_timeout_s=0.5)))
    yield sender
    sender.close()


def sms(**fields) -> Sms:
    values = dict(to="+15145550100", body="Reminder: tomorrow 9:00", sender="+15005550006", message_id=42)
    values.update(fields)
    return Sms(**values)


def test_sends_through_the_sdk_with_our_message_id_in_the_status_callback(sender, fake_twilio):
    result = sender.send_sms(sms())
    assert result.provider == "twilio"
    assert result.provider_id == fake_twilio.last_sid
    (request,) = fake_twilio.sends
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{fake_twilio.account_sid}:{fake_twilio.auth_token}".encode()).decode()
    assert request.form == {"To": "+15145550100", "From": "+15005550006", "Body": "Reminder: tomorrow 9:00",
                            "StatusCallback": "http://portal.test/webhooks/twilio/status?mid=42"}


def test_an_explicit_status_callback_and_default_sender_are_used(sender, fake_twilio):
    sender.send_sms(sms(sender="", status_callback="https://x.test/cb?mid=1"))
    form = fake_twilio.sends[0].form
    assert form["StatusCallback"] == "https://x.test/cb?mid=1"
    assert form["From"] == fake_twilio.from_number


def test_status_callback_url():
    assert status_callback_url("https://portal.example.com/", 7) == "https://portal.example.com/webhooks/twilio/status?mid=7"


@pytest.mark.parametrize("code", [21211, 21610, 21614, 21408])
def test_permanent_errors_fail_at_once_with_their_code(sender, fake_twilio, code):
    fake_twilio.fail(code)
    with pytest.raises(PermanentProviderError) as info:
        sender.send_sms(sms())
    assert info.value.code == code
    assert len(fake_twilio.sends) == 1


def test_invalid_number_rejected_by_twilio_itself(sender, fake_twilio):
    with pytest.raises(PermanentProviderError) as info:
        sender.send_sms(sms(to="+1 514 not a number"))
    assert info.value.code == 21211


def test_bad_credentials_are_retried_not_failed(fake_twilio, settings):
    # The message is fine; the credentials are not. Failing for good would lose every text sent meanwhile.
    sender = TwilioSmsSender(fake_twilio.configure(settings).replace(twilio_auth_token="wrong"))
    try:
        with pytest.raises(TransientProviderError, match="TWILIO_AUTH_TOKEN") as info:
            sender.send_sms(sms())
    finally:
        sender.close()
    assert info.value.code == 20003


def test_rate_limit_is_transient_and_honours_retry_after(sender, fake_twilio):
    fake_twilio.fail(20429, retry_after=7)
    with pytest.raises(TransientProviderError) as info:
        sender.send_sms(sms())
    assert info.value.code == 20429
    assert info.value.retry_after == 7
    # The next attempt goes through.
    assert sender.send_sms(sms()).provider_id == fake_twilio.last_sid
    assert len(fake_twilio.sends) == 2


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_transient(sender, fake_twilio, status):
    fake_twilio.fail_status(status)
    with pytest.raises(TransientProviderError) as info:
        sender.send_sms(sms())
    assert info.value.retry_after is None


def test_connection_refused_is_transient(settings):
    sender = TwilioSmsSender(settings.replace(twilio_api_base=closed_port_url(), twilio_account_sid="AC1",
                                              twilio_auth_token="t", twilio_from_number="+15005550006"))
    try:
        with pytest.raises(TransientProviderError):
            sender.send_sms(sms())
    finally:
        sender.close()


def test_tls_handshake_failure_is_transient(fake_twilio, settings):
    # https to a server that does not speak TLS: the handshake fails before any request goes out,
    # so nothing can have been sent and a retry is safe (an "unknown" would wait for a callback forever).
    base = fake_twilio.url.replace("http://", "https://")
    sender = TwilioSmsSender(fake_twilio.configure(settings).replace(twilio_api_base=base))
    try:
        with pytest.raises(TransientProviderError):
            sender.send_sms(sms())
    finally:
        sender.close()
    assert fake_twilio.sends == []


def test_timeout_after_sending_is_unknown_and_the_message_exists(sender, fake_twilio):
    fake_twilio.hang()
    with pytest.raises(UnknownDeliveryError):
        sender.send_sms(sms())
    # Twilio did take the message: its callback (with our id) will reconcile it.
    callback = fake_twilio.status_callback(fake_twilio.last_sid, "delivered")
    assert callback.path == "/webhooks/twilio/status?mid=42"
    assert len(fake_twilio.sends) == 1

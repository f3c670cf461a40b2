"""SendGridEmailSender drives the real sendgrid SDK against the local fake, for every failure class."""

from __future__ import annotations

import base64

import pytest

from messages.providers.base import MESSAGE_ID_ARG, Email
from messages.providers.sendgrid import SendGridEmailSender
from portal.errors import PermanentProviderError, TransientProviderError, UnknownDeliveryError
from tests.fakes import closed_port_url

UNSUBSCRIBE = {"List-Unsubscribe": "<http://portal.test/unsubscribe/u1.1.2.reminders.email.sig>",
               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


@pytest.fixture
def sender(fake_sendgrid, settings):
    return SendGridEmailSender(fake_sendgrid.configure(settings.replace(provider_timeout_s=0.5)))


def email(**fields) -> Email:
    values = dict(to="jane@example.com", subject="Your appointment", text="See you tomorrow",
                  html="<p>See you tomorrow</p>", sender="no-reply@example.com", sender_name="Pro Home",
                  reply_to="help@prohome.example", message_id=42, categories=["reminders"])
    values.update(fields)
    return Email(**values)


def test_sends_with_message_id_categories_headers_and_attachments(sender, fake_sendgrid):
    ics = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    result = sender.send_email(email(headers=UNSUBSCRIBE, attachments=[("invite.ics", "text/calendar", ics)]))
    (request,) = fake_sendgrid.sends
    assert request.headers["Authorization"] == f"Bearer {fake_sendgrid.api_key}"
    assert result.provider == "sendgrid"
    assert result.provider_id == fake_sendgrid.sent[0]["x_message_id"]
    body = request.json
    assert body["personalizations"][0]["to"] == [{"email": "jane@example.com"}]
    assert body["from"] == {"email": "no-reply@example.com", "name": "Pro Home"}
    assert body["reply_to"] == {"email": "help@prohome.example"}
    assert body["subject"] == "Your appointment"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["custom_args"] == {MESSAGE_ID_ARG: "42"}
    assert body["categories"] == ["reminders"]
    assert body["headers"] == UNSUBSCRIBE
    (attachment,) = body["attachments"]
    assert attachment["filename"] == "invite.ics" and attachment["type"] == "text/calendar"
    assert base64.b64decode(attachment["content"]) == ics
    # Events about it carry our id back.
    assert fake_sendgrid.event_for("delivered")[MESSAGE_ID_ARG] == "42"


def test_plain_text_only_and_caller_custom_args_are_kept(sender, fake_sendgrid):
    sender.send_email(email(html=None, message_id=None, custom_args={MESSAGE_ID_ARG: "9", "kind": "invoice"}))
    body = fake_sendgrid.sends[0].json
    assert body["content"] == [{"type": "text/plain", "value": "See you tomorrow"}]
    assert body["custom_args"] == {MESSAGE_ID_ARG: "9", "kind": "invoice"}
    assert "headers" not in body


def test_request_sendgrid_rejects_is_permanent_400(sender, fake_sendgrid):
    with pytest.raises(PermanentProviderError) as info:
        sender.send_email(email(to="jane@localhost"))
    assert info.value.code == 400
    assert "personalizations.0.to.0.email" in str(info.value)


def test_email_the_sdk_cannot_build_is_permanent_and_not_sent(sender, fake_sendgrid):
    with pytest.raises(PermanentProviderError):
        sender.send_email(email(to="not-an-address"))
    assert fake_sendgrid.sends == []


@pytest.mark.parametrize("status", [400, 413])
def test_client_errors_are_permanent(sender, fake_sendgrid, status):
    fake_sendgrid.fail(status)
    with pytest.raises(PermanentProviderError) as info:
        sender.send_email(email())
    assert info.value.code == status
    assert len(fake_sendgrid.sends) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_wrong_or_limited_api_key_is_retried_not_failed(sender, fake_sendgrid, status):
    # The email is fine; the key is not. Failing for good would lose every email sent meanwhile.
    fake_sendgrid.fail(status)
    with pytest.raises(TransientProviderError, match="SENDGRID_API_KEY") as info:
        sender.send_email(email())
    assert info.value.code == status


def test_rate_limit_is_transient_and_honours_retry_after(sender, fake_sendgrid):
    fake_sendgrid.fail(429, retry_after=12)
    with pytest.raises(TransientProviderError) as info:
        sender.send_email(email())
    assert info.value.code == 429
    assert info.value.retry_after == 12


def test_rate_limit_without_retry_after_uses_the_reset_header(sender, fake_sendgrid):
    fake_sendgrid.fail(429)
    with pytest.raises(TransientProviderError) as info:
        sender.send_email(email())
    assert info.value.retry_after is not None and info.value.retry_after >= 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(sender, fake_sendgrid, status):
    fake_sendgrid.fail(status)
    with pytest.raises(TransientProviderError):
        sender.send_email(email())


def test_connection_refused_is_transient(settings):
    sender = SendGridEmailSender(settings.replace(sendgrid_api_key="SG.x.y", sendgrid_api_host=closed_port_url()))
    with pytest.raises(TransientProviderError):
        sender.send_email(email())


def test_timeout_after_sending_is_unknown(sender, fake_sendgrid):
    fake_sendgrid.hang()
    with pytest.raises(UnknownDeliveryError):
        sender.send_email(email())
    assert len(fake_sendgrid.sent) == 1  # SendGrid accepted it: events will reconcile

from __future__ import annotations

import json

from messages.outbox_files import read_outbox_item
from messages.providers.base import Email, Sms
from messages.providers.factory import email_sender, sms_sender
from messages.providers.outbox import OutboxSender
from messages.providers.sendgrid import SendGridEmailSender
from messages.providers.twilio import TwilioSmsSender


def test_outbox_writes_email_and_sms(settings):
    sender = OutboxSender(settings.outbox_dir)
    result = sender.send_email(Email(to="a@example.com", subject="Hi", text="Hello", html="<p>Hello</p>",
                                     sender="no-reply@example.com", sender_name="Pro Home", message_id=5,
                                     headers={"List-Unsubscribe": "<http://portal.test/unsubscribe/x>"},
                                     attachments=[("a.ics", "text/calendar", b"BEGIN:VCALENDAR")]))
    assert result.provider == "outbox"
    item = read_outbox_item(settings.outbox_dir, result.provider_id)
    assert item["to"] == "a@example.com" and item["message_id"] == 5
    assert item["headers"]["List-Unsubscribe"] == "<http://portal.test/unsubscribe/x>"
    assert item["attachments"] == ["a.ics"]
    assert (settings.outbox_dir / f"{result.provider_id}.eml").exists()
    sms = sender.send_sms(Sms(to="+15145550100", body="Hi", sender="+15005550006", message_id=6))
    data = json.loads((settings.outbox_dir / f"{sms.provider_id}.json").read_text())
    assert data["channel"] == "sms" and data["message_id"] == 6


def test_factory_picks_the_configured_providers(settings, fake_twilio, fake_sendgrid):
    assert isinstance(email_sender(settings), OutboxSender)
    assert isinstance(sms_sender(settings), OutboxSender)
    assert isinstance(email_sender(fake_sendgrid.configure(settings)), SendGridEmailSender)
    twilio = sms_sender(fake_twilio.configure(settings))
    assert isinstance(twilio, TwilioSmsSender)
    twilio.close()


def test_outbox_eml_keeps_a_long_list_unsubscribe_header_as_written(settings):
    # A real unsubscribe URL is longer than a folded line: it must not become an RFC 2047 encoded word,
    # which no mail client reads as the <URL> RFC 8058 asks for.
    url = "http://portal.test/unsubscribe/u1.1.4.booking_updates.email.3tOv2azrOkdYJqunjRVrG-2Cpcg_pmdY"
    result = OutboxSender(settings.outbox_dir).send_email(Email(
        to="a@example.com", subject="Hi", text="Hello", html=None, sender="no-reply@example.com",
        headers={"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))
    raw = (settings.outbox_dir / f"{result.provider_id}.eml").read_bytes()
    assert f"List-Unsubscribe: <{url}>\n".encode() in raw

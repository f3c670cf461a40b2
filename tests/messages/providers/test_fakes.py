"""The fakes speak the providers' real shapes, and their signatures pass the SDKs' own verifiers."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl

import requests
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from twilio.request_validator import RequestValidator

from tests.fakes import closed_port_url


def _twilio_post(fake, auth=None, **form):
    url = f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    with requests.Session() as http:
        return http.post(url, data=form, auth=auth or (fake.account_sid, fake.auth_token), timeout=5)


def test_twilio_accepts_a_message_and_records_it(fake_twilio):
    resp = _twilio_post(fake_twilio, To="+15145550100", From="+15005550006", Body="Hi",
                        StatusCallback="http://portal.test/webhooks/twilio/status?mid=7")
    assert resp.status_code == 201
    body = resp.json()
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert body["status"] == "queued" and body["to"] == "+15145550100"
    assert len(fake_twilio.sends) == 1
    assert fake_twilio.sends[0].form["StatusCallback"].endswith("mid=7")


def test_twilio_errors_have_the_real_shape(fake_twilio):
    fake_twilio.fail(21610)
    fake_twilio.fail(20429, retry_after=7)
    fake_twilio.fail_status(503)
    first = _twilio_post(fake_twilio, To="+15145550100", From="+15005550006", Body="Hi")
    assert first.status_code == 400
    assert first.json() == {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                            "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}
    second = _twilio_post(fake_twilio, To="+15145550100", From="+15005550006", Body="Hi")
    assert second.status_code == 429 and second.headers["Retry-After"] == "7"
    assert second.json()["code"] == 20429
    assert _twilio_post(fake_twilio, To="+15145550100", From="+15005550006", Body="Hi").status_code == 503
    assert _twilio_post(fake_twilio, To="not-a-number", From="+15005550006", Body="Hi").json()["code"] == 21211
    assert _twilio_post(fake_twilio, auth=("AC0", "bad"), To="+15145550100", From="+1", Body="x").status_code == 401
    assert len(fake_twilio.sends) == 5


def test_twilio_callbacks_pass_the_sdk_validator(fake_twilio):
    _twilio_post(fake_twilio, To="+15145550100", From="+15005550006", Body="Hi",
                 StatusCallback="https://portal.example.com/webhooks/twilio/status?mid=9")
    cb = fake_twilio.status_callback(fake_twilio.last_sid, "undelivered", error_code=30006)
    params = dict(parse_qsl(cb.body.decode()))
    assert params["MessageStatus"] == "undelivered" and params["ErrorCode"] == "30006"
    validator = RequestValidator(fake_twilio.auth_token)
    assert validator.validate(cb.url, params, cb.headers["X-Twilio-Signature"])
    assert cb.path == "/webhooks/twilio/status?mid=9"
    assert not RequestValidator("other-token").validate(cb.url, params, cb.headers["X-Twilio-Signature"])


def test_sendgrid_accepts_mail_and_answers_202_with_a_message_id(fake_sendgrid):
    body = {"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "no-reply@example.com"},
            "subject": "Hi", "content": [{"type": "text/plain", "value": "Hello"}],
            "custom_args": {"portal_message_id": "12"}}
    with requests.Session() as http:
        resp = http.post(f"{fake_sendgrid.url}/v3/mail/send", json=body,
                         headers={"Authorization": f"Bearer {fake_sendgrid.api_key}"}, timeout=5)
        assert resp.status_code == 202 and resp.text == ""
        assert resp.headers["X-Message-Id"] == fake_sendgrid.sent[0]["x_message_id"]
        bad = http.post(f"{fake_sendgrid.url}/v3/mail/send", json={**body, "custom_args": {"id": 12}},
                        headers={"Authorization": f"Bearer {fake_sendgrid.api_key}"}, timeout=5)
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "custom_args.id"
        fake_sendgrid.fail(429, retry_after=3)
        limited = http.post(f"{fake_sendgrid.url}/v3/mail/send", json=body,
                            headers={"Authorization": f"Bearer {fake_sendgrid.api_key}"}, timeout=5)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
        assert set(limited.json()["errors"][0]) == {"message", "field", "help"}
        unauthorised = http.post(f"{fake_sendgrid.url}/v3/mail/send", json=body,
                                 headers={"Authorization": "Bearer nope"}, timeout=5)
        assert unauthorised.status_code == 401
    assert len(fake_sendgrid.sends) == 4


def test_sendgrid_events_pass_the_sdk_verifier(fake_sendgrid):
    fake_sendgrid.sent.append({"x_message_id": "abc123", "body": {
        "personalizations": [{"to": [{"email": "a@example.com"}]}], "custom_args": {"portal_message_id": "5"},
        "categories": ["reminders"]}})
    event = fake_sendgrid.event_for("bounce")
    assert event["portal_message_id"] == "5" and event["sg_message_id"].startswith("abc123.")
    signed = fake_sendgrid.events("https://portal.example.com/webhooks/sendgrid/events", [event])
    verifier = EventWebhook(fake_sendgrid.public_key)
    payload = signed.body.decode()
    assert verifier.verify_signature(payload, signed.headers[EventWebhookHeader.SIGNATURE],
                                     signed.headers[EventWebhookHeader.TIMESTAMP])
    assert not verifier.verify_signature(payload.replace("bounce", "delivered"),
                                         signed.headers[EventWebhookHeader.SIGNATURE],
                                         signed.headers[EventWebhookHeader.TIMESTAMP])
    assert abs(int(signed.headers[EventWebhookHeader.TIMESTAMP]) - time.time()) < 3600
    assert json.loads(payload)[0]["event"] == "bounce"


def test_closed_port_refuses_connections():
    with requests.Session() as http:
        try:
            http.get(closed_port_url(), timeout=5)
        except requests.ConnectionError:
            pass
        else:  # pragma: no cover
            raise AssertionError("expected the connection to be refused")

"""Malformed requests found by the route sweep (test_route_sweep.py), each pinned down on its own:
a clear 4xx (or, inside a webhook batch, a "malformed" outcome), never a 500, nothing written."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from messages.links import unsubscribe_token
from messages.providers.base import MESSAGE_ID_ARG
from portal.models import Booking, CommunicationPreference, Message, ProcessedEvent, Suppression
from tests.factories import make_booking, make_business, make_customer
from tests.fakes import sign_sendgrid_events, sign_twilio
from tests.portal_web.conftest import TWILIO_TOKEN, with_webhook_secrets
from tests.portal_web.signin_support import sign_in

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OPS_TOKEN = "test-ops-token-0123456789"  # tests/conftest.py settings.ops_token


@pytest.fixture
def settings(settings, sendgrid_key):
    return with_webhook_secrets(settings, sendgrid_key)


@pytest.fixture
def me(db):
    customer = make_customer(db, make_business(db))
    db.commit()
    return customer


async def ops_sign_in(client) -> None:
    resp = await client.post("/ops/signin", data={"token": OPS_TOKEN, "next": "/ops"}, allow_redirects=False)
    assert resp.status == 302


# -- unreadable bodies ----------------------------------------------------------

UNREADABLE = [
    ("invalid UTF-8", b"reason=\xff\xfe", FORM),
    ("unknown charset", b"reason=x", {"Content-Type": "application/x-www-form-urlencoded; charset=nope"}),
    ("multipart without boundary", b"reason=x", {"Content-Type": "multipart/form-data"}),
    ("broken multipart part", b"--zz\r\ngarbage\r\n\r\n", {"Content-Type": "multipart/form-data; boundary=zz"}),
]


@pytest.mark.parametrize("label, body, headers", UNREADABLE, ids=[u[0] for u in UNREADABLE])
@pytest.mark.parametrize("token_in", ["form", "header"])
async def test_an_unreadable_form_is_400_on_portal_posts(client, db, me, label, body, headers, token_in):
    csrf = await sign_in(client, db, me)
    booking = make_booking(db, me)
    db.commit()
    if token_in == "header":  # the CSRF check then needs no body, but the handler still reads one
        headers = {**headers, "X-CSRF-Token": csrf}
    else:
        body = f"csrf_token={csrf}&".encode() + body
    for path in (f"/{me.business.slug}/bookings/{booking.public_id}/cancel", f"/{me.business.slug}/preferences",
                 f"/{me.business.slug}/signin"):
        resp = await client.post(path, data=body, headers=headers, allow_redirects=False)
        assert resp.status in (400, 403), (path, resp.status)
        assert "text/html" in resp.headers["Content-Type"]
    db.expire_all()
    assert db.get(Booking, booking.id).status == "scheduled"


@pytest.mark.parametrize("label, body, headers", UNREADABLE, ids=[u[0] for u in UNREADABLE])
async def test_an_unreadable_form_is_400_on_ops_and_twilio_posts(client, label, body, headers):
    resp = await client.post("/ops/signin", data=body, headers=headers, allow_redirects=False)
    assert resp.status == 400
    await ops_sign_in(client)
    resp = await client.post("/ops/dead-letters/messages/x/discard", data=body, headers=headers, allow_redirects=False)
    assert resp.status == 400
    for path in ("/webhooks/twilio/status", "/webhooks/twilio/inbound"):
        resp = await client.post(path, data=body, headers=headers)
        assert resp.status == 400 and (await resp.json())["error"], path


async def test_a_body_that_fails_its_content_encoding_is_400(client, db, me, settings):
    path = f"/unsubscribe/{unsubscribe_token(settings.secret_key, me.business_id, me.id, 'reminders', 'email')}"
    resp = await client.post(path, data=b"List-Unsubscribe=One-Click",
                             headers={**FORM, "Content-Encoding": "gzip", "Connection": "close"})
    assert resp.status == 400
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(CommunicationPreference)) == 0


# -- CSRF origins ---------------------------------------------------------------

@pytest.mark.parametrize("header, value", [("Origin", "http://["), ("Referer", "http://[::1/x")])
async def test_a_malformed_origin_or_referer_is_refused_as_foreign(client, db, me, header, value):
    csrf = await sign_in(client, db, me)
    resp = await client.post(f"/{me.business.slug}/preferences", data={"csrf_token": csrf, "locale": "fr"},
                             headers={header: value}, allow_redirects=False)
    assert resp.status == 403
    db.expire_all()
    assert db.get(type(me), me.id).locale == "en"


# -- self-service form values ---------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("version", "\u00b2"),                      # isdigit() says yes, int() says no
    ("slot", "0001-01-01T00:00:00+01:00"),      # before year 1 in UTC
    ("slot", "9999-12-31T23:59:59-01:00"),      # after year 9999 in UTC
])
async def test_reschedule_values_that_do_not_convert_are_422(client, db, me, field, value):
    csrf = await sign_in(client, db, me)
    booking = make_booking(db, me)
    db.commit()
    data = {"csrf_token": csrf, "slot": "2030-01-01T10:00:00Z", "version": "1", field: value}
    resp = await client.post(f"/{me.business.slug}/bookings/{booking.public_id}/reschedule", data=data,
                             allow_redirects=False)
    assert resp.status == 422
    assert "text/html" in resp.headers["Content-Type"]
    db.expire_all()
    assert (db.get(Booking, booking.id).version, db.get(Booking, booking.id).starts_at) == (1, booking.starts_at)


# -- /ops -----------------------------------------------------------------------

async def test_ops_api_errors_are_json(client):
    await ops_sign_in(client)
    for method, path, status in (("GET", "/ops/api/throughput?window=zz", 400), ("POST", "/ops/api/queues", 405),
                                 ("GET", "/ops/api/dead-letters?queue=nope", 404)):
        resp = await client.request(method, path)
        assert resp.status == status and (await resp.json())["error"], path
    # The pages themselves still answer with a page.
    resp = await client.get("/ops/dead-letters?queue=nope")
    assert resp.status == 404 and "text/html" in resp.headers["Content-Type"]


async def test_ops_search_with_a_nul_is_400(client):
    await ops_sign_in(client)
    for path in ("/ops/messages?customer=a%00b", "/ops/api/messages?business=%00"):
        resp = await client.get(path)
        assert resp.status == 400, path


# -- webhooks -------------------------------------------------------------------

def sms_message(db, customer, **fields) -> Message:
    values = dict(business_id=customer.business_id, idempotency_key=f"malformed:{customer.id}",
                  kind="appointment_reminder", category="reminders", channel="sms", customer_id=customer.id,
                  recipient=customer.phone, status="sent", provider="twilio", provider_id="SM" + "b" * 32)
    values.update(fields)
    message = Message(**values)
    db.add(message)
    db.commit()
    return message


async def twilio_post(client, settings, path, params):
    signed = sign_twilio(TWILIO_TOKEN, settings.public_base_url + path, params)
    return await client.post(path, data=signed.body, headers=signed.headers)


@pytest.mark.parametrize("mid", ["%C2%B2", "999999999999999999"])
async def test_twilio_status_with_an_unusable_mid_falls_back_to_the_sid(client, db, me, settings, mid):
    message = sms_message(db, me)
    resp = await twilio_post(client, settings, f"/webhooks/twilio/status?mid={mid}",
                             {"MessageSid": message.provider_id, "MessageStatus": "delivered"})
    assert resp.status == 200 and (await resp.json())["result"] == "delivered"


@pytest.mark.parametrize("path, params", [
    ("/webhooks/twilio/status", {"MessageSid": "SM" + "b" * 32, "MessageStatus": "failed", "ErrorCode": "\x00"}),
    ("/webhooks/twilio/status", {"MessageSid": "SM\x00", "MessageStatus": "delivered"}),
    ("/webhooks/twilio/status", {"MessageSid": "S" * 5000, "MessageStatus": "delivered"}),
    ("/webhooks/twilio/inbound", {"From": "+1514\x00", "Body": "STOP"}),
])
async def test_signed_twilio_callbacks_with_impossible_values_are_400(client, db, me, settings, path, params):
    message = sms_message(db, me)
    resp = await twilio_post(client, settings, path, params)
    assert resp.status == 400 and (await resp.json())["error"]
    db.expire_all()
    assert db.get(Message, message.id).status == "sent"
    assert db.scalar(select(func.count()).select_from(ProcessedEvent)) == 0


async def sendgrid_post(client, settings, sendgrid_key, payload: str):
    signed = sign_sendgrid_events(sendgrid_key[0], payload, url=settings.public_base_url + "/webhooks/sendgrid/events")
    return await client.post("/webhooks/sendgrid/events", data=signed.body, headers=signed.headers)


async def test_sendgrid_events_with_impossible_values_are_malformed_and_change_nothing(client, db, me, settings,
                                                                                        sendgrid_key):
    message = sms_message(db, me, channel="email", recipient=me.email, provider="sendgrid", provider_id="xmsg1")
    good = {"event": "bounce", "email": me.email, MESSAGE_ID_ARG: str(message.id), "sg_message_id": "xmsg1.filter"}
    events = [{**good, "sg_event_id": "e1", "email": "x" * 5000},
              {**good, "sg_event_id": "e2\x00"},
              {**good, "sg_event_id": "e3", "reason": "no\x00"},
              {**good, "sg_event_id": "e4", "sg_message_id": "x" * 300}]
    resp = await sendgrid_post(client, settings, sendgrid_key, json.dumps(events))
    assert resp.status == 200 and (await resp.json())["results"] == ["malformed"] * 4
    db.expire_all()
    assert db.get(Message, message.id).status == "sent"
    assert db.scalar(select(func.count()).select_from(Suppression)) == 0
    assert db.scalar(select(func.count()).select_from(ProcessedEvent)) == 0


@pytest.mark.parametrize("ours", ["\u00b2", "999999999999999999"])
async def test_sendgrid_unusable_message_id_falls_back_to_sg_message_id(client, db, me, settings, sendgrid_key, ours):
    message = sms_message(db, me, channel="email", recipient=me.email, provider="sendgrid", provider_id="xmsg2")
    event = {"event": "delivered", "sg_event_id": "e5", "email": me.email, MESSAGE_ID_ARG: ours,
             "sg_message_id": "xmsg2.filter"}
    resp = await sendgrid_post(client, settings, sendgrid_key, json.dumps([event]))
    assert resp.status == 200 and (await resp.json())["results"] == ["delivered"]


async def test_sendgrid_deeply_nested_json_is_400(client, settings, sendgrid_key):
    resp = await sendgrid_post(client, settings, sendgrid_key, "[" * 5000 + "]" * 5000)
    assert resp.status == 400 and (await resp.json())["error"]


async def test_sendgrid_timestamp_that_is_not_ascii_digits_is_403(client, sendgrid_key):
    signed = sign_sendgrid_events(sendgrid_key[0], "[]", url="x")
    resp = await client.post("/webhooks/sendgrid/events", data=b"[]", headers={
        **signed.headers, "X-Twilio-Email-Event-Webhook-Timestamp": "\u00b2"})
    assert resp.status == 403


# -- live updates ---------------------------------------------------------------

async def test_head_on_the_live_stream_is_headers_only(client, db, me):
    await sign_in(client, db, me)
    resp = await client.head(f"/{me.business.slug}/events")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    assert await resp.read() == b""
    # The connection is still good for the next request (no stray event bytes on it).
    assert (await client.get(f"/{me.business.slug}/")).status == 200

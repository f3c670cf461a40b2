"""SendGrid's signed Event Webhook through the full app: genuine, tampered, stale, malformed, duplicated."""

from __future__ import annotations

import base64
import itertools
import json
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from messages.providers.base import MESSAGE_ID_ARG, Email
from messages.providers.sendgrid import SendGridEmailSender
from portal.models import CommunicationPreference, Consent, Message, MessageEvent, ProcessedEvent, Suppression
from tests.factories import make_business, make_customer
from tests.fakes import sendgrid_event, sendgrid_keypair, sign_sendgrid_events

_keys = itertools.count(1)


@pytest.fixture
def settings(settings, fake_sendgrid):
    return fake_sendgrid.configure(settings)


@pytest.fixture
def customer(db):
    return make_customer(db, make_business(db))


@pytest.fixture
def events_url(settings):
    return f"{settings.public_base_url}/webhooks/sendgrid/events"


def make_message(db, customer, **fields) -> Message:
    values = dict(business_id=customer.business_id, idempotency_key=f"sg-test:{next(_keys)}", kind="invoice_issued",
                  category="billing", channel="email", customer_id=customer.id, recipient=customer.email,
                  status="sent", provider="sendgrid", provider_id=f"xmsg{next(_keys)}")
    values.update(fields)
    message = Message(**values)
    db.add(message)
    db.flush()
    return message


def event(message, kind, **extra) -> dict:
    return sendgrid_event(kind, email=message.recipient, sg_message_id=message.provider_id,
                          custom_args={MESSAGE_ID_ARG: str(message.id)}, categories=[message.category], **extra)


def history(db, message) -> list[str]:
    return list(db.scalars(select(MessageEvent.status).where(MessageEvent.message_id == message.id)
                           .order_by(MessageEvent.id)))


def failures() -> float:
    return REGISTRY.get_sample_value("portal_webhook_verification_failures_total", {"source": "sendgrid"}) or 0.0


async def test_delivered_then_the_same_event_again(client, db, fake_sendgrid, events_url, customer):
    message = make_message(db, customer)
    signed = fake_sendgrid.events(events_url, [event(message, "delivered")])
    resp = await signed.send(client)
    assert resp.status == 200 and (await resp.json())["results"] == ["delivered"]
    db.expire_all()
    assert message.status == "delivered" and history(db, message) == ["delivered"]
    # SendGrid retries the batch (newly signed): the event id has been seen.
    again = fake_sendgrid.events(events_url, signed.body.decode())
    assert (await (await again.send(client)).json())["results"] == ["duplicate"]
    db.expire_all()
    assert history(db, message) == ["delivered"]


async def test_message_found_by_sg_message_id_without_custom_args(client, db, fake_sendgrid, events_url, customer):
    message = make_message(db, customer)
    ev = sendgrid_event("delivered", email=message.recipient, sg_message_id=message.provider_id)
    assert MESSAGE_ID_ARG not in ev
    await fake_sendgrid.events(events_url, [ev]).send(client)
    db.expire_all()
    assert message.status == "delivered"


async def test_bounce_fails_the_message_and_suppresses_the_address(client, db, fake_sendgrid, events_url, customer):
    message = make_message(db, customer)
    await fake_sendgrid.events(events_url, [event(message, "bounce")]).send(client)
    db.expire_all()
    assert message.status == "failed" and "bounce" in message.status_reason
    assert customer.email_status == "bounced"
    row = db.scalar(select(Suppression).where(Suppression.business_id == customer.business_id))
    assert (row.channel, row.address, row.reason) == ("email", customer.email, "bounce")


async def test_a_blocked_soft_bounce_fails_the_message_only(client, db, fake_sendgrid, events_url, customer):
    message = make_message(db, customer)
    await fake_sendgrid.events(events_url, [event(message, "bounce", type="blocked")]).send(client)
    db.expire_all()
    assert message.status == "failed" and customer.email_status == "ok"
    assert db.scalar(select(Suppression).where(Suppression.business_id == customer.business_id)) is None


@pytest.mark.parametrize("reason, email_status", [("Bounced Address", "bounced"), ("Spam Reporting Address", "spam"),
                                                  ("Invalid", "invalid"), ("Unsubscribed Address", "ok")])
async def test_dropped_suppresses_the_address(client, db, fake_sendgrid, events_url, customer, reason, email_status):
    message = make_message(db, customer, status="sending")
    await fake_sendgrid.events(events_url, [event(message, "dropped", reason=reason)]).send(client)
    db.expire_all()
    assert message.status == "failed" and customer.email_status == email_status
    assert db.scalar(select(Suppression.reason).where(Suppression.business_id == customer.business_id)) == "dropped"


async def test_spam_report_suppresses_the_address_and_keeps_the_delivery(client, db, fake_sendgrid, events_url,
                                                                          customer):
    message = make_message(db, customer, status="delivered")
    await fake_sendgrid.events(events_url, [event(message, "spamreport")]).send(client)
    db.expire_all()
    assert message.status == "delivered" and history(db, message) == ["spamreport"]
    assert customer.email_status == "spam"
    assert db.scalar(select(Suppression.reason).where(Suppression.business_id == customer.business_id)) == "spamreport"


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
async def test_unsubscribe_turns_the_category_off_by_email(client, db, fake_sendgrid, events_url, customer, kind):
    message = make_message(db, customer)
    await fake_sendgrid.events(events_url, [event(message, kind)]).send(client)
    db.expire_all()
    pref = db.scalar(select(CommunicationPreference).where(CommunicationPreference.customer_id == customer.id))
    assert (pref.category, pref.channel, pref.enabled) == ("billing", "email", False)
    consent = db.scalar(select(Consent).where(Consent.customer_id == customer.id))
    assert (consent.channel, consent.category, consent.granted, consent.source) == (
        "email", "billing", False, f"sendgrid_{kind}")
    assert message.status == "sent"  # unsubscribing says nothing about this delivery


async def test_unsubscribe_from_a_sign_in_link_turns_nothing_off(client, db, fake_sendgrid, events_url, customer):
    # Sign-in links cannot be turned off (the one-click page says so too): no preference row, no consent
    # row, and no customer.preferences_changed for a category the booking system's API does not know.
    message = make_message(db, customer, kind="signin_link", category="account")
    resp = await fake_sendgrid.events(events_url, [event(message, "unsubscribe")]).send(client)
    assert resp.status == 200
    db.expire_all()
    assert db.scalar(select(CommunicationPreference).where(CommunicationPreference.customer_id == customer.id)) is None
    assert db.scalar(select(Consent).where(Consent.customer_id == customer.id)) is None
    assert history(db, message) == ["unsubscribe"]


async def test_a_batch_mixes_known_unknown_and_ignored_events(client, db, fake_sendgrid, events_url, customer):
    message = make_message(db, customer)
    unknown = sendgrid_event("bounce", email="stranger@example.com", custom_args={MESSAGE_ID_ARG: "999999999"})
    batch = [event(message, "processed"), event(message, "open"), unknown, event(message, "delivered")]
    resp = await fake_sendgrid.events(events_url, batch).send(client)
    assert (await resp.json())["results"] == ["unchanged", "ignored", "unknown message", "delivered"]
    db.expire_all()
    assert message.status == "delivered"
    assert db.scalar(select(Suppression).where(func.lower(Suppression.address) == "stranger@example.com")) is None


async def test_unknown_message_gets_200_and_changes_nothing(client, db, fake_sendgrid, events_url):
    before = db.scalar(select(func.count()).select_from(ProcessedEvent))
    ev = sendgrid_event("bounce", email="nobody@example.com", sg_message_id="nosuchid.filter-1")
    resp = await fake_sendgrid.events(events_url, [ev]).send(client)
    assert resp.status == 200
    assert db.scalar(select(func.count()).select_from(ProcessedEvent)) == before
    assert db.scalar(select(func.count()).select_from(Suppression)) == 0


def _forgeries(fake_sendgrid, events_url, batch):
    good = fake_sendgrid.events(events_url, batch)
    sig, ts = "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"
    yield "payload changed", good.body.replace(b"bounce", b"delivered"), good.headers
    yield "no signature", good.body, {k: v for k, v in good.headers.items() if k != sig}
    yield "no timestamp", good.body, {k: v for k, v in good.headers.items() if k != ts}
    yield "timestamp changed", good.body, {**good.headers, ts: str(int(good.headers[ts]) + 1)}
    yield "signature not base64", good.body, {**good.headers, sig: "%%%not base64%%%"}
    yield "signature of garbage", good.body, {**good.headers, sig: base64.b64encode(b"x" * 70).decode()}
    stale = fake_sendgrid.events(events_url, batch, timestamp=int(time.time()) - 301)
    yield "stale", stale.body, stale.headers
    future = fake_sendgrid.events(events_url, batch, timestamp=int(time.time()) + 600)
    yield "future", future.body, future.headers
    other_key, _ = sendgrid_keypair()
    other = sign_sendgrid_events(other_key, batch, url=events_url)
    yield "other key", other.body, other.headers


async def test_forged_stale_or_unsigned_batches_get_403_and_change_nothing(client, db, fake_sendgrid, events_url,
                                                                            customer):
    message = make_message(db, customer)
    batch = [event(message, "bounce")]
    for label, body, headers in _forgeries(fake_sendgrid, events_url, batch):
        before = failures()
        resp = await client.post("/webhooks/sendgrid/events", data=body, headers=headers)
        assert resp.status == 403, label
        assert failures() == before + 1, label
    db.expire_all()
    assert message.status == "sent" and history(db, message) == []
    assert customer.email_status == "ok"
    assert db.scalar(select(func.count()).select_from(Suppression)) == 0


@pytest.mark.parametrize("payload", ["{not json", '{"event": "bounce"}', "[1, 2]", ""])
async def test_signed_but_malformed_bodies_get_400(client, fake_sendgrid, events_url, payload):
    resp = await fake_sendgrid.events(events_url, payload).send(client)
    assert resp.status == 400


async def test_without_a_configured_key_every_batch_is_refused(client, db, fake_sendgrid, events_url, customer,
                                                               aiohttp_client, settings, session_factory, aredis):
    from portal_web.app import create_app

    keyless = await aiohttp_client(create_app(settings.replace(sendgrid_webhook_public_key=""),
                                              session_factory=session_factory, redis_client=aredis))
    message = make_message(db, customer)
    resp = await fake_sendgrid.events(events_url, [event(message, "bounce")]).send(keyless)
    assert resp.status == 403


async def test_end_to_end_send_then_events_from_the_fake(client, db, settings, fake_sendgrid, events_url, customer):
    message = make_message(db, customer, status="unknown", provider=None, provider_id=None)
    sender = SendGridEmailSender(settings)
    sender.send_email(Email(to=customer.email, subject="Invoice", text="Your invoice", html=None,
                            sender="billing@example.com", message_id=message.id, categories=["billing"]))
    delivered = fake_sendgrid.event_for("delivered")
    assert (await fake_sendgrid.events(events_url, [delivered]).send(client)).status == 200
    db.expire_all()
    assert message.status == "delivered"  # an "unknown" send reconciled
    assert message.provider == "sendgrid" and message.provider_id == fake_sendgrid.sent[-1]["x_message_id"]
    assert json.loads(fake_sendgrid.sends[0].body)["custom_args"] == {MESSAGE_ID_ARG: str(message.id)}

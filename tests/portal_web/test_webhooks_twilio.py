"""Twilio webhooks through the full app: signed with the SDK's own RequestValidator, tampered and not."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, select, text

from messages import channels
from messages.providers.base import Sms
from messages.providers.twilio import TwilioSmsSender
from portal import redis_client as portal_redis
from portal.db import system_session
from portal.errors import UnknownDeliveryError
from portal.models import Business, Consent, Message, MessageEvent, ProcessedEvent, Suppression, WebhookDelivery
from tests.factories import make_business, make_customer
from portal_web.webhooks.twilio import handle_status
from tests.fakes import inbound_sms, sign_twilio, twilio_status_callback

_keys = itertools.count(1)


@pytest.fixture
def settings(settings, fake_twilio):
    return fake_twilio.configure(settings)


def make_message(db, customer, *, channel="sms", **fields) -> Message:
    values = dict(business_id=customer.business_id, idempotency_key=f"test:{next(_keys)}:{channel}",
                  kind="appointment_reminder", category="reminders", channel=channel, customer_id=customer.id,
                  recipient=customer.phone if channel == "sms" else customer.email, status="sent",
                  provider="twilio" if channel == "sms" else "sendgrid")
    values.update(fields)
    message = Message(**values)
    db.add(message)
    db.flush()
    return message


def status_url(settings, message_id) -> str:
    return f"{settings.public_base_url}/webhooks/twilio/status?mid={message_id}"


def inbound_url(settings) -> str:
    return f"{settings.public_base_url}/webhooks/twilio/inbound"


def failures(source: str) -> float:
    return REGISTRY.get_sample_value("portal_webhook_verification_failures_total", {"source": source}) or 0.0


def history(db, message) -> list[str]:
    return list(db.scalars(select(MessageEvent.status).where(MessageEvent.message_id == message.id)
                           .order_by(MessageEvent.id)))


def callback(settings, fake_twilio, message, status, **kw):
    return twilio_status_callback(settings.twilio_auth_token, status_url(settings, message.id),
                                  message_sid=message.provider_id, status=status, to=message.recipient,
                                  from_=fake_twilio.from_number, account_sid=fake_twilio.account_sid, **kw)


@pytest.fixture
def customer(db):
    return make_customer(db, make_business(db))


# -- status callbacks ---------------------------------------------------------

async def test_delivered_callback_updates_the_message_once(client, db, settings, fake_twilio, customer):
    message = make_message(db, customer, provider_id="SM" + "a" * 32)
    cb = callback(settings, fake_twilio, message, "delivered")
    resp = await cb.send(client)
    assert resp.status == 200
    db.expire_all()
    assert message.status == "delivered"
    assert history(db, message) == ["delivered"]
    # Twilio retries the same callback: nothing happens twice.
    again = await cb.send(client)
    assert again.status == 200 and (await again.json())["result"] == "duplicate"
    db.expire_all()
    assert history(db, message) == ["delivered"]


async def test_a_late_sent_callback_does_not_move_a_delivered_message_back(client, db, settings, fake_twilio, customer):
    message = make_message(db, customer, provider_id="SM" + "b" * 32, status="delivered")
    resp = await callback(settings, fake_twilio, message, "sent").send(client)
    assert resp.status == 200
    db.expire_all()
    assert message.status == "delivered" and history(db, message) == []


@pytest.mark.parametrize("code, phone_status", [(30006, "not_mobile"), (21610, "opted_out"), (30005, "invalid")])
async def test_undelivered_with_an_error_code_marks_the_number(client, db, settings, fake_twilio, customer,
                                                               code, phone_status):
    message = make_message(db, customer, provider_id="SM" + "c" * 32)
    resp = await callback(settings, fake_twilio, message, "undelivered", error_code=code).send(client)
    assert resp.status == 200
    db.expire_all()
    assert message.status == "failed" and str(code) in message.status_reason
    assert customer.phone_status == phone_status
    suppressed = db.scalar(select(Suppression).where(Suppression.address == customer.phone))
    assert (suppressed is not None and suppressed.reason == "stop") == (code == 21610)


async def test_failed_without_a_code_leaves_the_number_alone(client, db, settings, fake_twilio, customer):
    message = make_message(db, customer, provider_id="SM" + "d" * 32)
    await callback(settings, fake_twilio, message, "failed").send(client)
    db.expire_all()
    assert message.status == "failed" and customer.phone_status == "ok"


async def test_unknown_message_gets_200_and_changes_nothing(client, db, settings, fake_twilio):
    before = db.scalar(select(func.count()).select_from(ProcessedEvent))
    cb = twilio_status_callback(settings.twilio_auth_token, status_url(settings, 999999999),
                                message_sid="SM" + "e" * 32, status="delivered", to="+15145550100",
                                from_=fake_twilio.from_number)
    resp = await cb.send(client)
    assert resp.status == 200 and (await resp.json())["result"] == "unknown message"
    assert db.scalar(select(func.count()).select_from(ProcessedEvent)) == before


async def test_message_found_by_sid_when_the_url_has_no_id(client, db, settings, fake_twilio, customer):
    message = make_message(db, customer, provider_id="SM" + "f" * 32)
    cb = twilio_status_callback(settings.twilio_auth_token, f"{settings.public_base_url}/webhooks/twilio/status",
                                message_sid=message.provider_id, status="delivered", to=message.recipient,
                                from_=fake_twilio.from_number)
    assert (await cb.send(client)).status == 200
    db.expire_all()
    assert message.status == "delivered"


def _tampered(settings, fake_twilio, message):
    good = callback(settings, fake_twilio, message, "delivered")
    yield "body changed", good.url, good.body.replace(b"delivered", b"failed"), good.headers
    yield "no signature", good.url, good.body, {k: v for k, v in good.headers.items() if k != "X-Twilio-Signature"}
    yield "garbage signature", good.url, good.body, {**good.headers, "X-Twilio-Signature": "not-a-signature"}
    other = twilio_status_callback("another-auth-token", status_url(settings, message.id),
                                   message_sid=message.provider_id, status="delivered", to=message.recipient,
                                   from_=fake_twilio.from_number)
    yield "other token", other.url, other.body, other.headers
    # Signed for the internal host rather than the public URL Twilio was given.
    internal = sign_twilio(settings.twilio_auth_token, f"http://127.0.0.1:8080/webhooks/twilio/status?mid={message.id}",
                           dict(x.split("=", 1) for x in good.body.decode().split("&")))
    yield "internal url", good.url, internal.body, internal.headers
    # A genuine signature replayed against another message id.
    yield "other message", status_url(settings, message.id + 1), good.body, good.headers


async def test_forged_status_callbacks_get_403_and_change_nothing(client, db, settings, fake_twilio, customer):
    message = make_message(db, customer, provider_id="SM" + "1" * 32)
    for label, url, body, headers in _tampered(settings, fake_twilio, message):
        before = failures("twilio")
        path = url[len(settings.public_base_url):]
        resp = await client.post(path, data=body, headers=headers)
        assert resp.status == 403, label
        assert failures("twilio") == before + 1, label
    db.expire_all()
    assert message.status == "sent" and history(db, message) == []
    assert customer.phone_status == "ok"


async def test_signed_callback_without_a_status_is_a_400(client, settings):
    cb = sign_twilio(settings.twilio_auth_token, status_url(settings, 1), {"AccountSid": "AC1"})
    assert (await cb.send(client)).status == 400


async def test_end_to_end_send_then_callback_from_the_fake(client, db, settings, fake_twilio, customer):
    message = make_message(db, customer, status="sending", provider=None)
    sender = TwilioSmsSender(settings)
    try:
        result = sender.send_sms(Sms(to=customer.phone, body="Hi", sender="", message_id=message.id))
    finally:
        sender.close()
    cb = fake_twilio.status_callback(result.provider_id, "delivered")
    assert cb.url == status_url(settings, message.id)
    assert (await cb.send(client)).status == 200
    db.expire_all()
    assert message.status == "delivered"
    assert message.provider == "twilio" and message.provider_id == result.provider_id


async def test_unknown_delivery_is_reconciled_from_the_callback(client, db, settings, fake_twilio, customer):
    message = make_message(db, customer, status="sending", provider=None)
    sender = TwilioSmsSender(settings.replace(provider_timeout_s=0.5))
    fake_twilio.hang()
    try:
        with pytest.raises(UnknownDeliveryError):
            sender.send_sms(Sms(to=customer.phone, body="Hi", sender="", message_id=message.id))
    finally:
        sender.close()
    message.status = "unknown"  # what the sending actor records for a timeout
    db.flush()
    # Twilio did create it; its callback names our message id, and the provider id is learnt from it.
    assert (await fake_twilio.status_callback(fake_twilio.last_sid, "sent").send(client)).status == 200
    db.expire_all()
    assert message.status == "sent" and message.provider_id == fake_twilio.last_sid
    assert (await fake_twilio.status_callback(fake_twilio.last_sid, "delivered").send(client)).status == 200
    db.expire_all()
    assert message.status == "delivered"
    assert history(db, message) == ["sent", "delivered"]
    assert len(fake_twilio.sends) == 1


async def test_status_change_is_published_live(client, db, settings, fake_twilio, customer, redis_url, redis_client):
    message = make_message(db, customer, provider_id="SM" + "2" * 32)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(f"portal:live:{customer.business_id}:{customer.id}")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    portal_redis.configure(redis_url)
    try:
        assert (await callback(settings, fake_twilio, message, "delivered").send(client)).status == 200
    finally:
        portal_redis.configure(None)
    published = pubsub.get_message(timeout=5)
    pubsub.close()
    assert published is not None and b'"message_status"' in published["data"]
    assert b'"delivered"' in published["data"]


# -- inbound SMS --------------------------------------------------------------

def two_businesses_one_phone(db, phone="+15145559876"):
    first = make_customer(db, make_business(db, help_reply="Pro Home: call 514-555-0000 for help."), phone=phone)
    second = make_customer(db, make_business(db), phone=phone)
    for customer in (first, second):
        db.add(Consent(business_id=customer.business_id, customer_id=customer.id, channel="sms", granted=True,
                       source="booking_system"))
    db.flush()
    return first, second


def latest_consent(db, customer) -> Consent:
    return db.scalar(select(Consent).where(Consent.customer_id == customer.id, Consent.channel == "sms")
                     .order_by(Consent.id.desc()).limit(1))


@pytest.mark.parametrize("body", ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT", "ARRET", "arrêt",
                                  "  Arrêt. ", "Stop!"])
async def test_stop_keywords_opt_the_number_out_everywhere(client, db, settings, fake_twilio, body):
    customers = two_businesses_one_phone(db)
    resp = await fake_twilio.inbound(inbound_url(settings), from_=customers[0].phone, body=body).send(client)
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    assert "<Message>" not in await resp.text()
    db.expire_all()
    for customer in customers:
        assert customer.phone_status == "opted_out"
        suppression = db.scalar(select(Suppression).where(Suppression.business_id == customer.business_id,
                                                          Suppression.address == customer.phone))
        assert suppression.reason == "stop" and suppression.channel == "sms"
        consent = latest_consent(db, customer)
        assert consent.granted is False and consent.source == "sms_keyword"


async def test_stop_tells_the_booking_system_the_whole_state_like_the_portal_does(client, db, settings, fake_twilio):
    customer = make_customer(db, make_business(db, webhook_url="https://booking.example/hooks"), phone="+15145559872")
    db.add(Consent(business_id=customer.business_id, customer_id=customer.id, channel="sms", granted=True,
                   source="booking_system"))
    db.flush()
    assert (await fake_twilio.inbound(inbound_url(settings), from_=customer.phone, body="STOP").send(client)).status == 200
    db.expire_all()
    hook = db.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == customer.business_id))
    assert hook.event_type == "customer.preferences_changed"
    assert hook.payload["changed"] == [{"category": None, "channel": "sms", "enabled": False}]
    prefs = hook.payload["preferences"]
    assert prefs and all(by_channel["sms"] is False and by_channel["email"] is True for by_channel in prefs.values())


async def test_start_opts_back_in_and_duplicates_do_nothing(client, db, settings, fake_twilio):
    customers = two_businesses_one_phone(db)
    phone = customers[0].phone
    await fake_twilio.inbound(inbound_url(settings), from_=phone, body="STOP").send(client)
    for word in ("START", "unstop"):
        start = fake_twilio.inbound(inbound_url(settings), from_=phone, body=word)
        assert (await start.send(client)).status == 200
        assert (await start.send(client)).status == 200  # Twilio retried it
        db.expire_all()
        for customer in customers:
            assert customer.phone_status == "ok"
            assert db.scalar(select(Suppression).where(Suppression.address == phone)) is None
            assert latest_consent(db, customer).granted is True
    consents = db.scalars(select(Consent).where(Consent.customer_id == customers[0].id)).all()
    assert [c.granted for c in consents] == [True, False, True, True]  # seed, STOP, START, UNSTOP


async def test_start_gives_no_consent_to_a_business_the_customer_never_gave_it(client, db, settings, fake_twilio):
    """One number, two businesses, SMS consent given to the first only: STOP then START lifts the STOP
    everywhere but leaves the second without consent (a START is not a consent to a business never chosen)."""
    given = make_customer(db, make_business(db), phone="+15145559870")
    never = make_customer(db, make_business(db), phone="+15145559870")
    db.add(Consent(business_id=given.business_id, customer_id=given.id, channel="sms", granted=True,
                   source="booking_system"))
    db.flush()
    for word in ("STOP", "START"):
        assert (await fake_twilio.inbound(inbound_url(settings), from_=given.phone, body=word).send(client)).status == 200
    db.expire_all()
    assert channels.blocked(db, given, "sms", "reminders") is None
    assert never.phone_status == "ok" and db.scalar(select(Suppression).where(Suppression.address == never.phone)) is None
    assert channels.blocked(db, never, "sms", "reminders") == "no SMS consent on record"
    assert [c.granted for c in db.scalars(select(Consent).where(Consent.customer_id == never.id))] == [False]


async def test_start_restores_consent_only_for_the_categories_given(client, db, settings, fake_twilio):
    customer = make_customer(db, make_business(db), phone="+15145559871")
    db.add(Consent(business_id=customer.business_id, customer_id=customer.id, channel="sms", category="reminders",
                   granted=True, source="portal"))
    db.flush()
    for word in ("STOP", "START"):
        await fake_twilio.inbound(inbound_url(settings), from_=customer.phone, body=word).send(client)
    db.expire_all()
    assert channels.blocked(db, customer, "sms", "reminders") is None
    assert channels.blocked(db, customer, "sms", "billing") == "no SMS consent on record"


async def test_help_replies_with_the_business_help_text(client, db, settings, fake_twilio):
    first, _second = two_businesses_one_phone(db)
    make_message(db, first, status="delivered")  # the business that texted this number last
    resp = await fake_twilio.inbound(inbound_url(settings), from_=first.phone, body="help").send(client)
    text = await resp.text()
    assert resp.status == 200 and "<Message>Pro Home: call 514-555-0000 for help.</Message>" in text
    db.expire_all()
    assert first.phone_status == "ok"


async def test_help_from_an_unknown_number_gets_a_generic_reply(client, settings, fake_twilio):
    resp = await fake_twilio.inbound(inbound_url(settings), from_="+15145550000", body="HELP").send(client)
    assert "Reply STOP" in await resp.text()


async def test_help_in_french_without_a_custom_reply(client, db, settings, fake_twilio):
    customer = make_customer(db, make_business(db, name="Ménage Pro", support_phone="+15145551111"), locale="fr")
    resp = await fake_twilio.inbound(inbound_url(settings), from_=customer.phone, body="Aide").send(client)
    text = await resp.text()
    assert "Ménage Pro" in text and "ARRET" in text and "Aide : +1 514-555-1111" in text  # as emails write it


async def test_other_replies_change_nothing(client, db, settings, fake_twilio, customer):
    resp = await fake_twilio.inbound(inbound_url(settings), from_=customer.phone, body="stop calling me at 6").send(client)
    assert resp.status == 200 and "<Message>" not in await resp.text()
    db.expire_all()
    assert customer.phone_status == "ok"


async def test_stop_from_an_unknown_number_changes_nothing(client, db, settings, fake_twilio):
    before = db.scalar(select(func.count()).select_from(ProcessedEvent))
    resp = await fake_twilio.inbound(inbound_url(settings), from_="+15145550001", body="STOP").send(client)
    assert resp.status == 200
    assert db.scalar(select(func.count()).select_from(ProcessedEvent)) == before
    assert db.scalar(select(func.count()).select_from(Suppression)) == 0


async def test_forged_inbound_stop_gets_403_and_changes_nothing(client, db, settings, fake_twilio, customer):
    forged = inbound_sms("guessed-token", inbound_url(settings), from_=customer.phone, to=fake_twilio.from_number,
                         body="STOP")
    before = failures("twilio")
    assert (await forged.send(client)).status == 403
    assert failures("twilio") == before + 1
    db.expire_all()
    assert customer.phone_status == "ok"
    assert db.scalar(select(Suppression).where(Suppression.address == customer.phone)) is None


# -- two callbacks for one message at once (PostgreSQL, committed rows, two connections) ------

@pytest.fixture
def committed_sms(committed_factory):
    factory = committed_factory
    with system_session(factory) as s:
        business = make_business(s, slug=f"cb-race-{uuid.uuid4().hex[:8]}")
        message = make_message(s, make_customer(s, business), status="sending", provider_id="SM" + "7" * 32)
        s.commit()
        ids = business.id, message.id, message.provider_id
    yield factory, ids
    with system_session(factory) as s:
        s.execute(delete(Business).where(Business.id == ids[0]))  # cascades to the message and its history
        s.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.startswith(f"{ids[2]}:")))
        s.commit()


def test_a_sent_callback_racing_a_delivered_one_does_not_move_it_back(committed_sms):
    """Twilio posts "sent" and "delivered" within milliseconds: the one that reads the row
    while the other is writing it waits for that write, then sees "delivered" and changes nothing."""
    factory, (business_id, message_id, sid) = committed_sms
    outcome = {}

    def late_sent():
        with system_session(factory) as s:
            outcome["sent"] = handle_status(s, str(message_id), {"MessageSid": sid, "MessageStatus": "sent"})
            s.commit()

    with system_session(factory) as first:
        assert handle_status(first, str(message_id), {"MessageSid": sid, "MessageStatus": "delivered"}) == "delivered"
        first.flush()
        other = threading.Thread(target=late_sent)
        other.start()
        with factory() as watcher:  # wait (not a timing assertion) until the second callback waits on our lock
            for _ in range(200):
                waiting = watcher.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                              " AND wait_event_type = 'Lock'"))
                watcher.rollback()
                if waiting:
                    break
                time.sleep(0.05)
        first.commit()
        other.join(30)
    with system_session(factory) as s:
        assert s.get(Message, message_id).status == "delivered"
    assert outcome["sent"] == "unchanged"

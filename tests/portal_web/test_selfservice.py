"""Self-service booking pages through the full app: lists, detail, reschedule, cancel, attachments."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal.models import Booking, BookingAttachment, Business, Message, WebhookDelivery
from tests.factories import make_booking, make_business, make_customer, make_provider, make_service
from tests.portal_web.signin_support import sign_in

EVERY_DAY = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SLOT_RE = re.compile(r'name="slot" value="([^"]+)"')


def next_local(days: int, hour: int, tz: str = "America/Toronto") -> datetime:
    local = datetime.now(ZoneInfo(tz)).replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=days)
    return local.astimezone(timezone.utc)


@pytest.fixture
def shop(db):
    business = make_business(db, webhook_url="https://booking.example/hooks", reschedule_min_notice_minutes=24 * 60,
                             cancel_min_notice_minutes=24 * 60, booking_horizon_days=14, max_reschedules=2)
    provider = make_provider(db, business, name="Alex Martin", photo_url="/static/demo/alex.svg",
                             working_hours=EVERY_DAY)
    service = make_service(db, business, name="Deep cleaning", duration_minutes=60)
    customer = make_customer(db, business, name="Jane Doe", timezone="America/Vancouver")
    booking = make_booking(db, customer, starts_at=next_local(4, 10), provider_id=provider.id,
                           service_id=service.id, address="12 Elm St")
    past = make_booking(db, customer, starts_at=next_local(-5, 10), provider_id=provider.id, service_id=service.id,
                        status="completed")
    db.commit()
    return business, provider, service, customer, booking, past


async def test_lists_and_detail(client, db, shop):
    business, provider, service, customer, booking, past = shop
    await sign_in(client, db, customer)
    resp = await client.get(f"/{business.slug}/bookings")
    html = await resp.text()
    assert resp.status == 200
    upcoming, _, older = html.partition("Past and cancelled")
    assert booking.public_id in upcoming and past.public_id in older
    assert 'src="/static/live.js"' in html

    resp = await client.get(f"/{business.slug}/bookings/{booking.public_id}")
    html = await resp.text()
    assert resp.status == 200
    assert "Deep cleaning" in html and "Alex Martin" in html and "12 Elm St" in html
    assert 'src="/static/demo/alex.svg"' in html
    # Shown in the customer's timezone (Vancouver), not the business's.
    local = booking.starts_at.astimezone(ZoneInfo("America/Vancouver"))
    assert f"{local.hour % 12 or 12}:00" in html
    assert f'href="/{business.slug}/bookings/{booking.public_id}/reschedule"' in html


async def test_provider_photo_hidden_when_business_says_so(client, db, shop):
    business, provider, service, customer, booking, past = shop
    db.get(Business, business.id).show_provider_photos = False
    db.commit()
    await sign_in(client, db, customer)
    html = await (await client.get(f"/{business.slug}/bookings/{booking.public_id}")).text()
    assert "Alex Martin" in html and "alex.svg" not in html


async def test_reschedule_through_the_pages(client, db, shop, stub_broker):
    business, provider, service, customer, booking, past = shop
    csrf = await sign_in(client, db, customer)
    page = await client.get(f"/{business.slug}/bookings/{booking.public_id}/reschedule")
    html = await page.text()
    assert page.status == 200
    slots = SLOT_RE.findall(html)
    assert slots and "America/Vancouver" in html
    target = slots[3]
    resp = await client.post(f"/{business.slug}/bookings/{booking.public_id}/reschedule",
                             data={"csrf_token": csrf, "slot": target, "version": "1"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"/{business.slug}/bookings/{booking.public_id}?done=rescheduled"
    db.expire_all()
    row = db.get(Booking, booking.id)
    assert row.starts_at == datetime.fromisoformat(target) and row.version == 2
    assert db.scalar(select(Message.kind).where(Message.booking_id == booking.id)) == "reschedule_confirmation"
    detail = await (await client.get(resp.headers["Location"])).text()
    assert "Your booking was rescheduled" in detail

    # The same form posted again (stale version) is refused with a clear message, nothing changes.
    again = await client.post(f"/{business.slug}/bookings/{booking.public_id}/reschedule",
                              data={"csrf_token": csrf, "slot": slots[5], "version": "1"})
    assert again.status == 409
    assert "changed while you were looking" in await again.text()
    db.expire_all()
    assert db.get(Booking, booking.id).version == 2


async def test_taken_slot_shows_a_clear_message(client, db, shop):
    business, provider, service, customer, booking, past = shop
    csrf = await sign_in(client, db, customer)
    slots = SLOT_RE.findall(await (await client.get(f"/{business.slug}/bookings/{booking.public_id}/reschedule")).text())
    # Someone else books that time meanwhile.
    make_booking(db, make_customer(db, business), starts_at=datetime.fromisoformat(slots[0]), provider_id=provider.id,
                 service_id=service.id)
    db.commit()
    resp = await client.post(f"/{business.slug}/bookings/{booking.public_id}/reschedule",
                             data={"csrf_token": csrf, "slot": slots[0], "version": "1"})
    html = await resp.text()
    assert resp.status == 409
    assert "that time was just taken" in html and 'role="alert"' in html
    assert slots[0] not in SLOT_RE.findall(html)  # fresh slots, without the taken one


@pytest.mark.parametrize("slot", ["", "tomorrow", "2025-06-05T18:00:00", "x" * 100])
async def test_bad_slot_values_are_422(client, db, shop, slot):
    business, provider, service, customer, booking, past = shop
    csrf = await sign_in(client, db, customer)
    resp = await client.post(f"/{business.slug}/bookings/{booking.public_id}/reschedule",
                             data={"csrf_token": csrf, "slot": slot})
    assert resp.status == 422
    db.expire_all()
    assert db.get(Booking, booking.id).version == 1


async def test_post_without_csrf_is_refused(client, db, shop):
    business, provider, service, customer, booking, past = shop
    await sign_in(client, db, customer)
    resp = await client.post(f"/{business.slug}/bookings/{booking.public_id}/cancel", data={"reason": "x"})
    assert resp.status == 403
    db.expire_all()
    assert db.get(Booking, booking.id).status == "scheduled"


async def test_a_refused_post_is_explained_in_the_customers_language(client, db, shop):
    business, provider, service, customer, booking, past = shop
    customer.locale = "fr"
    db.commit()
    await sign_in(client, db, customer)
    assert "Rendez-vous" in await (await client.get(f"/{business.slug}/bookings")).text()
    resp = await client.post(f"/{business.slug}/bookings/{booking.public_id}/cancel", data={"reason": "x"})
    html = await resp.text()
    assert resp.status == 403 and resp.headers["Content-Language"] == "fr"
    assert "Accès refusé" in html and "Ce formulaire a expiré" in html and "Forbidden" not in html


async def test_cancel_with_reason(client, db, shop, stub_broker):
    business, provider, service, customer, booking, past = shop
    csrf = await sign_in(client, db, customer)
    page = await client.get(f"/{business.slug}/bookings/{booking.public_id}/cancel")
    assert page.status == 200 and 'name="reason"' in await page.text()
    resp = await client.post(f"/{business.slug}/bookings/{booking.public_id}/cancel",
                             data={"csrf_token": csrf, "reason": "Moving away", "version": "1"}, allow_redirects=False)
    assert resp.status == 303
    db.expire_all()
    row = db.get(Booking, booking.id)
    assert (row.status, row.cancel_reason, row.version) == ("cancelled", "Moving away", 2)
    hook = db.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id))
    assert hook.event_type == "booking.cancelled"
    html = await (await client.get(resp.headers["Location"])).text()
    assert "Your booking was cancelled" in html and "Moving away" in html
    assert "/reschedule" not in html


async def test_policy_refusals_are_explained(client, db, shop):
    business, provider, service, customer, booking, past = shop
    soon = make_booking(db, customer, starts_at=datetime.now(timezone.utc) + timedelta(hours=3),
                        provider_id=provider.id, service_id=service.id)
    db.commit()
    csrf = await sign_in(client, db, customer)
    html = await (await client.get(f"/{business.slug}/bookings/{soon.public_id}")).text()
    assert "too late to reschedule" in html and "too late to cancel" in html
    resp = await client.post(f"/{business.slug}/bookings/{soon.public_id}/cancel", data={"csrf_token": csrf})
    assert resp.status == 422 and "too late to cancel" in await resp.text()


async def test_attachments_download_only_for_the_owner(client, db, shop, aiohttp_client, settings, session_factory,
                                                       aredis):
    business, provider, service, customer, booking, past = shop
    att = BookingAttachment(business_id=business.id, booking_id=booking.id, filename="plan \"v2\".html",
                            content_type="text/html", content=b"<script>alert(1)</script>")
    db.add(att)
    db.commit()
    await sign_in(client, db, customer)
    url = f"/{business.slug}/bookings/{booking.public_id}/attachments/{att.public_id}"
    html = await (await client.get(f"/{business.slug}/bookings/{booking.public_id}")).text()
    assert url in html
    resp = await client.get(url)
    assert resp.status == 200 and await resp.read() == b"<script>alert(1)</script>"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in resp.headers["Content-Security-Policy"]

    # Another customer of the same business, signed in, gets the same 404 as for nonsense.
    from portal_web.app import create_app

    other = await aiohttp_client(create_app(settings, session_factory=session_factory, redis_client=aredis))
    await sign_in(other, db, make_customer(db, business))
    assert (await other.get(url)).status == 404
    # Not signed in: to the sign-in page.
    anonymous = await aiohttp_client(create_app(settings, session_factory=session_factory, redis_client=aredis))
    resp = await anonymous.get(url, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].split("?")[0].endswith("/signin")

    db.get(Business, business.id).show_attachments = False
    db.commit()
    assert (await client.get(url)).status == 404
    assert url not in await (await client.get(f"/{business.slug}/bookings/{booking.public_id}")).text()


SELF_SERVICE_TEMPLATES = ["bookings", "booking", "booking_card", "booking_live_script", "reschedule", "cancel",
                          "invoices", "invoice", "invoice_body", "invoice_print", "quotes", "quote", "payment_method",
                          "payment_method_current", "payment_method_test", "payment_method_stripe", "preferences"]


SAME_IN_FRENCH = {"Description", "Total"}


def test_every_self_service_string_has_a_french_translation():
    from babel.messages.extract import extract_from_file

    from portal import booking_changes, preferences, selfservice
    from portal.payments import stripe_gateway, test_gateway
    from portal_web import i18n
    from portal_web.views.selfservice import billing, bookings, common

    fr = i18n.translations("fr")
    missing = []
    for name in SELF_SERVICE_TEMPLATES:
        for _line, msg, _comments, _ctx in extract_from_file(
                "jinja2.ext:babel_extract", f"templates/portal/{name}.html",
                keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
                options={"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}):
            singular = msg[0] if isinstance(msg, tuple) else msg
            if singular and fr.gettext(singular) == singular and singular not in SAME_IN_FRENCH:
                missing.append(singular)
    labels = [*bookings.STATUS_LABELS.values(), *bookings.MESSAGE_STATUS_LABELS.values(),
              *bookings.MESSAGE_KIND_LABELS.values(), *billing.INVOICE_STATUS_LABELS.values(),
              *billing.QUOTE_STATUS_LABELS.values(), *common.NOTICES.values(), *preferences.CATEGORY_LABELS.values(),
              *preferences.CHANNEL_LABELS.values(), *preferences.WORDING.values(), booking_changes.SLOT_TAKEN,
              booking_changes.BOOKING_MISSING, selfservice.INVOICE_MISSING, selfservice.QUOTE_MISSING,
              *(label for label, _brand, _last4 in test_gateway.TEST_CARDS.values())]
    missing += [m for m in labels if fr.gettext(m) == m and m not in SAME_IN_FRENCH]
    # Messages raised by the domain and shown on the pages.
    import inspect
    import re

    for module in (booking_changes, selfservice, stripe_gateway, test_gateway, preferences):
        for msg in re.findall(r'(?:Allowed\(False, |ValidationError\(|PolicyError\(|ProviderError\(|NotFound\(|Conflict\()"([^"{]+)"', inspect.getsource(module)):
            if fr.gettext(msg) == msg:
                missing.append(msg)
    assert sorted(set(missing)) == []


async def test_pages_in_french(client, db, shop):
    business, provider, service, customer, booking, past = shop
    await sign_in(client, db, customer)
    html = await (await client.get(f"/{business.slug}/bookings?lang=fr")).text()
    assert "À venir" in html and "Passés et annulés" in html and 'lang="fr"' in html
    detail = await (await client.get(f"/{business.slug}/bookings/{booking.public_id}")).text()
    assert "Changer la date" in detail and "Prévu" in detail

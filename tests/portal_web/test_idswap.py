"""The ID-swap matrix: every self-service URL with another customer's or another business's ids
answers exactly what a made-up id gets (404), shows none of their data, and changes nothing."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from portal.models import Booking, BookingAttachment, Quote, WebhookDelivery
from tests.factories import make_booking, make_business, make_customer, make_invoice, make_provider, make_quote
from tests.portal_web.signin_support import sign_in

EVERY_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

# (method, path template) with {slug} {booking} {attachment} {invoice} {quote}
URLS = [
    ("GET", "/{slug}/bookings/{booking}"),
    ("GET", "/{slug}/bookings/{booking}/reschedule"),
    ("POST", "/{slug}/bookings/{booking}/reschedule"),
    ("GET", "/{slug}/bookings/{booking}/cancel"),
    ("POST", "/{slug}/bookings/{booking}/cancel"),
    ("GET", "/{slug}/bookings/{booking}/attachments/{attachment}"),
    ("GET", "/{slug}/invoices/{invoice}"),
    ("GET", "/{slug}/invoices/{invoice}/print"),
    ("GET", "/{slug}/quotes/{quote}"),
    ("POST", "/{slug}/quotes/{quote}/decision"),
]


def own(db, business, customer, tag: str) -> dict:
    """A booking with an attachment, an invoice and a quote, all marked with ``tag``."""
    provider = make_provider(db, business, name=f"Provider {tag}", working_hours=EVERY_DAY)
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(days=6)
    booking = make_booking(db, customer, starts_at=start, provider_id=provider.id, address=f"{tag} address",
                           notes=f"{tag} notes")
    attachment = BookingAttachment(business_id=business.id, booking_id=booking.id, filename=f"{tag}.pdf",
                                   content=f"{tag} file".encode(), content_type="application/pdf")
    db.add(attachment)
    invoice = make_invoice(db, customer, number=f"{tag}-INV")
    quote = make_quote(db, customer, number=f"{tag}-Q")
    db.flush()
    return {"tag": tag, "booking": booking.public_id, "attachment": attachment.public_id,
            "invoice": invoice.public_id, "quote": quote.public_id, "slot": start + timedelta(days=1)}


@pytest.fixture
def world(db):
    a = make_business(db, slug="alpha-co", webhook_url="https://a.example/h")
    b = make_business(db, slug="beta-co", webhook_url="https://b.example/h")
    me = make_customer(db, a, name="Me")
    data = {"me": own(db, a, me, "MINE"),
            "neighbour": own(db, a, make_customer(db, a, name="Neighbour"), "NEIGHBOUR-SECRET"),
            "stranger": own(db, b, make_customer(db, b, name="Stranger"), "STRANGER-SECRET")}
    db.commit()
    return a, b, me, data


def made_up() -> dict:
    return {k: secrets.token_urlsafe(16) for k in ("booking", "attachment", "invoice", "quote")}


def mask(text: str, ids: dict) -> str:
    for key in ("booking", "attachment", "invoice", "quote"):
        text = text.replace(ids[key], "<id>")
    return text


async def call(client, method, path, csrf, slot=None):
    if method == "GET":
        return await client.get(path, allow_redirects=False)
    data = {"csrf_token": csrf, "version": "1", "reason": "x", "decision": "approve"}
    if slot is not None:
        data["slot"] = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    return await client.post(path, data=data, allow_redirects=False)


@pytest.mark.parametrize("victim", ["neighbour", "stranger"])
@pytest.mark.parametrize("method, template", URLS)
async def test_foreign_ids_are_404_and_reveal_nothing(client, db, world, victim, method, template, stub_broker):
    a, b, me, data = world
    csrf = await sign_in(client, db, me)
    ids = data[victim]
    fake = made_up()
    resp = await call(client, method, template.format(slug=a.slug, **ids), csrf, ids["slot"])
    baseline = await call(client, method, template.format(slug=a.slug, **fake), csrf, ids["slot"])
    assert resp.status == 404
    # Identical to a made-up id's page once the ids themselves (echoed in the language links) are masked.
    text = await resp.text()
    assert (baseline.status, mask(await baseline.text(), fake)) == (404, mask(text, ids))
    for secret in (ids["tag"], "Neighbour", "Stranger"):
        assert secret not in text

    # Nothing changed for anyone.
    db.expire_all()
    assert db.scalars(select(WebhookDelivery)).all() == []
    for who in ("neighbour", "stranger"):
        booking = db.scalar(select(Booking).where(Booking.public_id == data[who]["booking"]))
        quote = db.scalar(select(Quote).where(Quote.public_id == data[who]["quote"]))
        assert (booking.status, booking.version, quote.status) == ("scheduled", 1, "pending")


async def test_own_ids_work_on_the_same_urls(client, db, world):
    """The matrix is meaningful: with my own ids the GETs succeed."""
    a, b, me, data = world
    await sign_in(client, db, me)
    for method, template in URLS:
        if method == "GET":
            resp = await client.get(template.format(slug=a.slug, **data["me"]), allow_redirects=False)
            assert resp.status == 200, template


async def test_lists_show_only_my_rows(client, db, world):
    a, b, me, data = world
    await sign_in(client, db, me)
    for path in ("/bookings", "/invoices", "/quotes", "/"):
        html = await (await client.get(f"/{a.slug}{path}")).text()
        assert "SECRET" not in html and "Neighbour" not in html, path


async def test_my_session_means_nothing_on_another_business(client, db, world):
    a, b, me, data = world
    await sign_in(client, db, me)
    for method, template in URLS:
        for ids in (data["stranger"], data["me"]):
            path = template.format(slug=b.slug, **ids)
            resp = await client.get(path, allow_redirects=False) if method == "GET" else \
                await client.post(path, data={"decision": "approve"}, allow_redirects=False)
            assert resp.status in (303, 401, 403, 405), (path, resp.status)
            assert "SECRET" not in await resp.text() and "MINE" not in await resp.text()
    for path in ("/bookings", "/invoices", "/quotes", "/payment-method", "/preferences", "/events"):
        resp = await client.get(f"/{b.slug}{path}", allow_redirects=False)
        assert resp.status in (303, 401), path

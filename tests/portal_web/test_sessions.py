"""Server-side sessions: fixation, sign-out, timeouts, one business only, CSRF on signed-in POSTs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import func, select

from portal.models import PortalSession
from portal.security import hash_token
from portal_web.app import create_app
from portal_web.sessions import COOKIE, purge_expired
from tests.factories import make_booking, make_business, make_customer
from tests.portal_web.signin_support import csrf_from, mint_link, sign_in


def cookie_value(client, slug="pro-home") -> str | None:
    for morsel in client.session.cookie_jar:
        if morsel.key == COOKIE and morsel["path"] == f"/{slug}":
            return morsel.value
    return None


def rows(db, **where) -> int:
    db.expire_all()
    query = select(func.count(PortalSession.id))
    for key, value in where.items():
        query = query.where(getattr(PortalSession, key) == value)
    return db.scalar(query)


async def test_sign_in_makes_a_new_id_and_ignores_a_planted_one(client, db, jane):
    client.session.cookie_jar.update_cookies({COOKIE: "attacker-chosen-value"})
    await sign_in(client, db, jane)
    value = cookie_value(client)
    assert value and value != "attacker-chosen-value"
    assert rows(db, session_hash=hash_token("attacker-chosen-value")) == 0
    assert rows(db, session_hash=hash_token(value)) == 1


async def test_signing_in_again_destroys_the_previous_session(client, db, jane):
    await sign_in(client, db, jane)
    first = cookie_value(client)
    await sign_in(client, db, jane)
    second = cookie_value(client)
    assert first != second
    assert rows(db, session_hash=hash_token(first)) == 0 and rows(db, customer_id=jane.id) == 1
    # The old id is useless.
    client.session.cookie_jar.clear()
    resp = await client.get("/pro-home/", headers={"Cookie": f"{COOKIE}={first}"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/pro-home/signin"


async def test_sign_out_destroys_the_row_and_needs_the_csrf_token(client, db, jane):
    csrf = await sign_in(client, db, jane)
    value = cookie_value(client)
    # Typed or reloaded, the address signs nothing out (no token): it leads to the home page.
    typed = await client.get("/pro-home/signout", allow_redirects=False)
    assert typed.status == 303 and typed.headers["Location"] == "/pro-home/"
    assert rows(db, customer_id=jane.id) == 1
    assert (await client.post("/pro-home/signout", allow_redirects=False)).status == 403
    assert (await client.post("/pro-home/signout", data={"csrf_token": "x" * 43}, allow_redirects=False)).status == 403
    bad_origin = await client.post("/pro-home/signout", data={"csrf_token": csrf},
                                   headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert bad_origin.status == 403
    assert rows(db, customer_id=jane.id) == 1
    resp = await client.post("/pro-home/signout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/pro-home/signin"
    assert rows(db, customer_id=jane.id) == 0
    assert cookie_value(client) is None
    resp = await client.get("/pro-home/", headers={"Cookie": f"{COOKIE}={value}"}, allow_redirects=False)
    assert resp.status == 303


async def test_another_customers_csrf_token_is_refused(client, db, business, jane):
    omar = make_customer(db, business, name="Omar", email="omar@example.com")
    omar_csrf = await sign_in(client, db, omar)
    client.session.cookie_jar.clear()
    await sign_in(client, db, jane)
    resp = await client.post("/pro-home/signout", data={"csrf_token": omar_csrf}, allow_redirects=False)
    assert resp.status == 403
    resp = await client.post("/pro-home/signout", headers={"X-CSRF-Token": omar_csrf}, allow_redirects=False)
    assert resp.status == 403


async def test_a_session_is_valid_for_its_own_business_only(client, db, jane):
    other = make_business(db, slug="other-co", name="Other Co")
    make_customer(db, other, email="jane.doe@example.com")
    await sign_in(client, db, jane)
    value = cookie_value(client)
    resp = await client.get("/other-co/", headers={"Cookie": f"{COOKIE}={value}"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/other-co/signin"
    assert rows(db, session_hash=hash_token(value)) == 1  # untouched at home
    assert (await client.get("/pro-home/")).status == 200


async def test_idle_and_absolute_timeouts(client, db, settings, jane):
    await sign_in(client, db, jane)
    start = datetime.now(timezone.utc)
    # Active every 20 minutes: fine until the absolute timeout.
    step = timedelta(minutes=20)
    t = start
    while t + step < start + timedelta(seconds=settings.session_absolute_timeout_s):
        t += step
        with time_machine.travel(t, tick=False):
            assert (await client.get("/pro-home/", allow_redirects=False)).status == 200, t
    # The browser drops the cookie then (Max-Age); the server refuses it anyway.
    value = cookie_value(client)
    client.session.cookie_jar.clear()
    with time_machine.travel(start + timedelta(seconds=settings.session_absolute_timeout_s + 1), tick=False):
        resp = await client.get("/pro-home/", headers={"Cookie": f"{COOKIE}={value}"}, allow_redirects=False)
        assert resp.status == 303
    assert rows(db, customer_id=jane.id) == 0


async def test_idle_timeout(client, db, settings, jane):
    await sign_in(client, db, jane)
    later = datetime.now(timezone.utc) + timedelta(seconds=settings.session_idle_timeout_s + 5)
    with time_machine.travel(later, tick=False):
        resp = await client.get("/pro-home/dashboard", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/pro-home/signin"
    assert rows(db, customer_id=jane.id) == 0


def test_purge_expired(db, settings, jane):
    from portal_web.sessions import create_session

    create_session(db, jane.business_id, jane.id, settings)
    old = datetime.now(timezone.utc) - timedelta(days=1)
    create_session(db, jane.business_id, jane.id, settings, now=old)
    assert purge_expired(db, settings) == 1
    assert rows(db, customer_id=jane.id) == 1


async def test_cookie_is_secure_when_the_public_url_is_https(aiohttp_client, db, settings, session_factory, aredis,
                                                             stub_broker, jane):
    app = create_app(settings.replace(public_base_url="https://portal.test"), session_factory=session_factory,
                     redis_client=aredis)
    client = await aiohttp_client(app)
    path = mint_link(db, jane)
    html = await (await client.get(path)).text()
    resp = await client.post(path, data={"csrf_token": csrf_from(html)}, allow_redirects=False)
    assert resp.status == 303
    set_cookie = resp.headers["Set-Cookie"]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert "Path=/pro-home" in set_cookie


async def test_signed_out_visitors_are_sent_to_sign_in_in_their_language(client, db, business):
    resp = await client.get("/pro-home/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/pro-home/signin"
    resp = await client.get("/pro-home/?lang=fr", allow_redirects=False)
    assert resp.headers["Location"] == "/pro-home/connexion"
    make_business(db, slug="fr-co", name="Fr Co", default_locale="fr")
    assert (await client.get("/fr-co/", allow_redirects=False)).headers["Location"] == "/fr-co/connexion"
    resp = await client.get("/pro-home/", headers={"Accept-Language": "de, fr-CA;q=0.8, en;q=0.5"},
                            allow_redirects=False)
    assert resp.headers["Location"] == "/pro-home/connexion"
    resp = await client.get("/pro-home/", headers={"Accept": "application/json"}, allow_redirects=False)
    assert resp.status == 401
    resp = await client.get("/pro-home", allow_redirects=False)
    assert resp.status == 301 and resp.headers["Location"] == "/pro-home/"


async def test_dashboard_shows_own_next_bookings_and_enabled_sections(client, db, business, jane):
    business.show_quotes = False
    db.flush()
    mine = make_booking(db, jane, address="12 Maple Ave")
    other = make_booking(db, make_customer(db, business), address="99 Other St")
    past = make_booking(db, jane, starts_at=datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=3),
                        address="1 Old Rd", status="completed")
    await sign_in(client, db, jane)
    resp = await client.get("/pro-home/")
    html = await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    assert f"/pro-home/bookings/{mine.public_id}" in html and "12 Maple Ave" in html
    assert other.public_id not in html and past.public_id not in html
    for href in ("/pro-home/bookings", "/pro-home/invoices", "/pro-home/payment-method", "/pro-home/preferences"):
        assert f'href="{href}"' in html
    assert 'href="/pro-home/quotes"' not in html
    assert 'action="/pro-home/signout"' in html
    assert (await client.get("/pro-home/dashboard")).status == 200



@pytest.mark.parametrize("reschedule, cancel, label", [
    (True, True, "Details, reschedule or cancel"), (True, False, "Details or reschedule"),
    (False, True, "Details or cancel"), (False, False, "View booking")])
async def test_dashboard_booking_links_offer_only_what_the_business_allows(client, db, business, jane, reschedule,
                                                                          cancel, label):
    business.allow_reschedule, business.allow_cancel = reschedule, cancel
    booking = make_booking(db, jane)
    await sign_in(client, db, jane)
    html = await (await client.get("/pro-home/")).text()
    assert f'<a href="/pro-home/bookings/{booking.public_id}">{label}<' in html

async def test_the_customer_locale_applies_after_sign_in_and_lang_overrides(client, db, business):
    marie = make_customer(db, business, name="Marie Tremblay", email="marie@example.com", locale="fr")
    make_booking(db, marie)
    await sign_in(client, db, marie)
    html = await (await client.get("/pro-home/")).text()
    assert '<html lang="fr">' in html and "Vos prochains rendez-vous" in html and "Se déconnecter" in html
    assert "Factures" in html
    resp = await client.get("/pro-home/?lang=en")
    html = await resp.text()
    assert '<html lang="en">' in html and "Your next appointments" in html
    # The choice is remembered for this business's pages.
    html = await (await client.get("/pro-home/")).text()
    assert '<html lang="en">' in html


async def test_dashboard_shows_services_providers_and_counts_of_this_customer_only(client, db, business, jane):
    from tests.factories import make_invoice, make_provider, make_quote, make_service

    cleaning = make_service(db, business, name="Window cleaning")
    alex = make_provider(db, business, name="Alex Martin")
    make_booking(db, jane, service_id=cleaning.id, provider_id=alex.id)
    make_booking(db, jane, service_id=None, provider_id=None,
                 starts_at=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=5))
    make_invoice(db, jane)
    make_invoice(db, jane, payment_status="partially_paid", amount_paid_cents=100)
    make_invoice(db, jane, payment_status="paid")
    make_quote(db, jane)
    make_quote(db, jane, status="approved")
    omar = make_customer(db, business, email="omar@example.com")
    make_invoice(db, omar)
    make_quote(db, omar)
    business.show_quotes = True
    db.flush()
    await sign_in(client, db, jane)
    html = await (await client.get("/pro-home/")).text()
    assert "Window cleaning" in html and "with Alex Martin" in html
    assert "Appointment" in html  # the booking with no service
    assert "2 open invoices" in html and "1 awaiting your answer" in html


async def test_dashboard_rows_of_another_business_never_show_even_naming_my_customer_id(client, db, business, jane):
    # The dashboard's reads are Core statements with their own business filter
    # (not the session's tenant criteria): rows another business holds under my
    # customer id, and another business's service on my booking, stay out.
    from sqlalchemy import update

    from portal.models import Booking, Invoice, Quote
    from tests.factories import make_invoice, make_quote, make_service

    other = make_business(db, slug="other-co", name="Other Co")
    theirs = make_service(db, other, name="SECRET service")
    mine = make_booking(db, jane, service_id=theirs.id, provider_id=None)
    moved = make_booking(db, jane, address="SECRET street",
                         starts_at=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2))
    invoice, quote = make_invoice(db, jane), make_quote(db, jane)
    for model, row in ((Booking, moved), (Invoice, invoice), (Quote, quote)):
        db.execute(update(model).where(model.id == row.id).values(business_id=other.id))
    business.show_quotes = True
    db.flush()
    await sign_in(client, db, jane)
    html = await (await client.get("/pro-home/")).text()
    assert mine.public_id in html and "Appointment" in html
    assert "SECRET" not in html and moved.public_id not in html
    assert "0 open invoices" in html and "0 awaiting your answer" in html


async def test_the_idle_clock_is_written_at_most_every_touch_interval(client, db, jane):
    from portal_web.sessions import TOUCH_EVERY

    await sign_in(client, db, jane)

    def last_seen():
        db.expire_all()
        return db.scalar(select(PortalSession.last_seen_at).where(PortalSession.customer_id == jane.id))

    first = last_seen()
    start = datetime.now(timezone.utc)
    with time_machine.travel(start + TOUCH_EVERY / 2, tick=False):
        assert (await client.get("/pro-home/", allow_redirects=False)).status == 200
    assert last_seen() == first  # no write for a page view soon after the last one
    later = start + TOUCH_EVERY + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        assert (await client.get("/pro-home/", allow_redirects=False)).status == 200
    assert abs(last_seen() - later) < timedelta(seconds=1)


async def test_dashboard_of_an_unknown_or_disabled_portal_is_404(client, db, business, jane):
    await sign_in(client, db, jane)
    assert (await client.get("/no-such-co/", allow_redirects=False)).status == 404
    business.portal_enabled = False
    db.flush()
    assert (await client.get("/pro-home/", allow_redirects=False)).status == 404


async def test_dashboard_on_a_real_engine_reads_and_touches_without_a_transaction(
        aiohttp_client, settings, engine, aredis, stub_broker):
    # In production the dashboard's hop runs each statement on its own (no BEGIN/COMMIT) on
    # PostgreSQL: the page, its idle-clock write and the deletion of a timed-out session are
    # each committed by themselves. Committed rows here, not the per-test rolled-back ones.
    import uuid

    from sqlalchemy import delete

    from portal.db import make_session_factory, system_session
    from portal.models import Business
    from portal_web.sessions import TOUCH_EVERY, create_session

    factory = make_session_factory(engine)
    slug = f"real-{uuid.uuid4().hex[:8]}"
    with system_session(factory) as s:
        business = make_business(s, slug=slug, name="Real Engine Co")
        customer = make_customer(s, business, name="Rae Engine")
        make_booking(s, customer, address="12 Committed Street")
        raw, row = create_session(s, business.id, customer.id, settings)
        s.commit()
        business_id, session_id, started = business.id, row.id, row.last_seen_at

    def last_seen():
        with engine.connect() as conn:
            return conn.scalar(select(PortalSession.last_seen_at).where(PortalSession.id == session_id))

    try:
        app = create_app(settings, session_factory=factory, redis_client=aredis)
        client = await aiohttp_client(app, cookies={COOKIE: raw})
        html = await (await client.get(f"/{slug}/")).text()
        assert "Hello, Rae Engine" in html and "12 Committed Street" in html
        later = started + TOUCH_EVERY + timedelta(seconds=1)
        with time_machine.travel(later, tick=False):
            assert (await client.get(f"/{slug}/", allow_redirects=False)).status == 200
        assert abs(last_seen().replace(tzinfo=timezone.utc) - later) < timedelta(seconds=1)
        idle_out = later + timedelta(seconds=settings.session_idle_timeout_s + 1)
        with time_machine.travel(idle_out, tick=False):
            resp = await client.get(f"/{slug}/", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith(f"/{slug}/")
        assert last_seen() is None  # the timed-out row was deleted, and that stayed
    finally:
        with system_session(factory) as s:
            s.execute(delete(PortalSession).where(PortalSession.business_id == business_id))
            s.execute(delete(Business).where(Business.id == business_id))
            s.commit()


@pytest.mark.parametrize("show_invoices", [True, False])
@pytest.mark.parametrize("show_quotes", [True, False])
def test_dashboard_counts_only_what_the_business_shows(db, business, jane, show_invoices, show_quotes):
    from portal_web.views.auth import dashboard_data
    from tests.factories import make_invoice, make_quote

    make_invoice(db, jane)
    make_quote(db, jane)
    business.show_invoices, business.show_quotes = show_invoices, show_quotes
    db.flush()
    data = dashboard_data(db, business, jane)
    assert (data["open_invoices"], data["pending_quotes"]) == (int(show_invoices), int(show_quotes))


def test_dashboard_shows_the_next_three_scheduled_bookings_with_the_counts(db, business, jane):
    from portal_web.views.auth import dashboard_data
    from tests.factories import make_booking, make_invoice

    now = datetime.now(timezone.utc).replace(microsecond=0)
    later = [make_booking(db, jane, starts_at=now + timedelta(days=d)) for d in (4, 2, 9, 3)]
    make_booking(db, jane, starts_at=now - timedelta(days=1))
    make_booking(db, jane, starts_at=now + timedelta(days=1), status="cancelled")
    make_invoice(db, jane)
    business.show_invoices = business.show_quotes = True
    db.flush()
    data = dashboard_data(db, business, jane)
    assert [row.public_id for row in data["upcoming"]] == [later[i].public_id for i in (1, 3, 0)]
    assert (data["open_invoices"], data["pending_quotes"]) == (1, 0)

"""Headless Chromium: an open booking page follows a change the office makes through the API.

The office moves a booking to a later, longer slot: the page's start *and* end update in
place (the end used to keep its old value: "1:00 PM (until 11:00 AM)").
"""

from __future__ import annotations

from datetime import datetime, timedelta

import aiohttp
from playwright.async_api import expect
from sqlalchemy import select

from portal.businesses import rotate_api_key
from portal.db import scope_to
from portal.models import Booking, Business, Customer
from portal_web.i18n import fmt_datetime

GUARD_MS = 10_000  # how long to wait for the page, not a timing requirement


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def _signed_in_home(live_portal, browser, customer: str, locale: str, continue_as: str):
    """A page signed in as a demo customer through a fresh link, on the home page, and the
    script errors it has had since it opened."""
    link = live_portal.signin_link(customer)
    page = await (await browser.new_context(locale=locale)).new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(link)
    await page.get_by_role("button", name=continue_as).click()
    await page.wait_for_url(f"{live_portal.url}/{live_portal.slug}/")
    return page, errors


async def test_live_update_moves_the_end_time_too(live_portal, browser):
    base = f"{live_portal.url}/{live_portal.slug}"
    with live_portal.db() as db:
        business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
        scope_to(db, business.id)
        jane = db.scalar(select(Customer).where(Customer.external_id == "cust-jane"))
        jane.timezone = "UTC"  # the page shows times in it: easy to check
        api_key = rotate_api_key(db, business)
        booking = db.scalar(select(Booking).where(Booking.external_id == "bk-jane-1"))
        public_id, old_start = booking.public_id, booking.starts_at
        db.commit()
    new_start = old_start + timedelta(days=1, hours=4)
    new_end = new_start + timedelta(hours=3)

    page, errors = await _signed_in_home(live_portal, browser, "cust-jane", "en-CA",
                                         "Continue as j•••@example.com to Pro Home Services")
    await page.goto(f"{base}/bookings/{public_id}")
    await expect(page.locator("html")).to_have_attribute("data-live", "open", timeout=GUARD_MS)
    ends = page.locator('[data-booking] [data-field="ends"]')
    await expect(ends).to_have_count(1)

    async with aiohttp.ClientSession() as http:
        resp = await http.put(f"{live_portal.url}/api/v1/bookings/bk-jane-1", headers={"Authorization": f"Bearer {api_key}"},
                              json={"customer": "cust-jane", "starts_at": _iso(new_start), "ends_at": _iso(new_end),
                                    "notify": False})
        assert resp.status == 200, await resp.text()

    await expect(page.locator("#live-banner")).to_contain_text("This booking was just updated", timeout=GUARD_MS)
    when = page.locator('[data-booking] [data-field="when"]')
    assert datetime.fromisoformat(await when.get_attribute("datetime")) == new_start
    assert datetime.fromisoformat(await ends.get_attribute("datetime")) == new_end
    # Intl may put a narrow no-break space before AM/PM: compare the digits only.
    hour = new_end.hour % 12 or 12
    await expect(ends).to_contain_text(f"{hour}:{new_end.minute:02d}")
    assert errors == []


async def test_the_home_page_follows_a_booking_change(live_portal, browser):
    """The page a customer lands on after signing in lists the next bookings: it follows a change too."""
    with live_portal.db() as db:
        business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
        scope_to(db, business.id)
        jane = db.scalar(select(Customer).where(Customer.external_id == "cust-jane"))
        api_key = rotate_api_key(db, business)
        booking = db.scalar(select(Booking).where(Booking.external_id == "bk-jane-1"))
        public_id, new_start = booking.public_id, booking.starts_at + timedelta(days=1, hours=2)
        jane_tz = jane.timezone or business.timezone
        db.commit()

    page, _ = await _signed_in_home(live_portal, browser, "cust-jane", "en-CA",
                                    "Continue as j•••@example.com to Pro Home Services")
    await expect(page.locator("html")).to_have_attribute("data-live", "open", timeout=GUARD_MS)
    await page.evaluate("window.__notReloaded = true")  # gone if the page reloads
    async with aiohttp.ClientSession() as http:
        resp = await http.put(f"{live_portal.url}/api/v1/bookings/bk-jane-1", headers={"Authorization": f"Bearer {api_key}"},
                              json={"customer": "cust-jane", "starts_at": _iso(new_start),
                                    "ends_at": _iso(new_start + timedelta(hours=2)), "notify": False})
        assert resp.status == 200, await resp.text()

    await expect(page.locator("#live-banner")).to_contain_text("This booking was just updated", timeout=GUARD_MS)
    when = page.locator(f'[data-booking="{public_id}"] [data-field="when"]')
    assert datetime.fromisoformat(await when.get_attribute("datetime")) == new_start
    # Written as the server writes it ("Thursday, December 17, 2026, 12:00 PM"), not Intl's "... at 12:00 PM".
    expected = fmt_datetime(new_start, "en", jane_tz, "long")
    assert " ".join((await when.inner_text()).split()) == " ".join(expected.split())
    assert await page.evaluate("window.__notReloaded") is True


async def test_the_home_page_shows_a_booking_the_office_cancels(live_portal, browser):
    with live_portal.db() as db:
        business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
        api_key = rotate_api_key(db, business)
        public_id = db.scalar(select(Booking.public_id).where(Booking.external_id == "bk-marie-1",
                                                             Booking.business_id == business.id))
        db.commit()

    page, _ = await _signed_in_home(live_portal, browser, "cust-marie", "fr-CA",
                                    "Continuer en tant que m•••@example.com vers Pro Home Services")
    await expect(page.locator("html")).to_have_attribute("data-live", "open", timeout=GUARD_MS)
    status = page.locator(f'[data-booking="{public_id}"] [data-field="status"]')
    await expect(status).to_be_hidden()  # a scheduled booking needs no badge here
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{live_portal.url}/api/v1/bookings/bk-marie-1/cancel", json={"notify": False},
                               headers={"Authorization": f"Bearer {api_key}"})
        assert resp.status == 200, await resp.text()
    await expect(status).to_have_text("Annulé", timeout=GUARD_MS)
    await expect(status).to_be_visible()

"""Headless Chromium through the self-service flow on the running app:

sign in -> reschedule -> the confirmation is in the outbox -> the office cancels a
booking through the API and the open page shows it without a reload -> change
preferences (reminder emails off, reminder texts on) -> the next reminder goes by SMS.
"""

from __future__ import annotations

from datetime import datetime

import aiohttp
from playwright.async_api import expect
from sqlalchemy import select

from portal import tokens
from portal.businesses import rotate_api_key
from portal.db import scope_to
from portal.models import Booking, Business, Consent, Customer, Message, Reminder
from scheduler.reminders import handle_reminder
from tests.browser.conftest import screenshot_path
from tests.messages.support import daytime_zone

DESKTOP = {"width": 1100, "height": 800}
GUARD_MS = 10_000  # how long to wait for the page, not a timing requirement


async def test_reschedule_live_update_and_preferences(live_portal, browser):
    base = f"{live_portal.url}/{live_portal.slug}"
    with live_portal.db() as db:
        business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
        scope_to(db, business.id)
        jane = db.scalar(select(Customer).where(Customer.external_id == "cust-jane"))
        jane.timezone = daytime_zone()
        api_key = rotate_api_key(db, business)
        link = base + tokens.link_path(live_portal.slug, tokens.mint(db, jane, "signin", 900))[len(f"/{live_portal.slug}"):]
        first = db.scalar(select(Booking).where(Booking.external_id == "bk-jane-1"))
        second = db.scalar(select(Booking).where(Booking.external_id == "bk-jane-2"))
        first_id, second_id, second_pk, jane_id = first.public_id, second.public_id, second.id, jane.id
        db.commit()

    context = await browser.new_context(viewport=DESKTOP, locale="en-CA")
    page = await context.new_page()
    # Sign in.
    await page.goto(link)
    await page.get_by_role("button", name="Continue as j•••@example.com to Pro Home Services").click()
    await page.wait_for_url(f"{base}/")

    # Reschedule the first booking to the first free time.
    await page.goto(f"{base}/bookings/{first_id}")
    await page.get_by_role("link", name="Reschedule").click()
    await expect(page.get_by_role("heading", name="Reschedule")).to_be_visible()
    slot = page.locator("input[name=slot]").first
    new_start = await slot.get_attribute("value")
    await slot.check()
    await page.screenshot(path=screenshot_path("selfservice-reschedule.png"), full_page=True)
    await page.get_by_role("button", name="Confirm the new time").click()
    await page.wait_for_url(f"{base}/bookings/{first_id}?done=rescheduled")
    await expect(page.get_by_role("status")).to_contain_text("Your booking was rescheduled")

    # The confirmation went out through the outbox.
    await live_portal.run_queue()
    with live_portal.db() as db:
        booking = db.scalar(select(Booking).where(Booking.public_id == first_id))
        assert booking.starts_at == datetime.fromisoformat(new_start) and booking.version == 2
        confirmation = db.scalar(select(Message).where(Message.booking_id == booking.id,
                                                       Message.kind == "reschedule_confirmation"))
        assert confirmation.status == "sent" and confirmation.channel == "email"
    sent = [m for m in live_portal.outbox() if m["message_id"] == confirmation.id]
    assert sent and sent[0]["to"] == "jane.doe@example.com"

    # The office cancels the other booking through the API: the open bookings page shows it, no reload.
    await page.goto(f"{base}/bookings")
    await expect(page.locator("html")).to_have_attribute("data-live", "open", timeout=GUARD_MS)
    card = page.locator(f'[data-booking="{second_id}"]')
    await expect(card.locator('[data-field="status"]')).to_have_text("Scheduled")
    await page.evaluate("window.__notReloaded = true")  # gone if the page reloads
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{live_portal.url}/api/v1/bookings/bk-jane-2/cancel", json={"reason": "Rain"},
                               headers={"Authorization": f"Bearer {api_key}"})
        assert resp.status == 200, await resp.text()
    await expect(card.locator('[data-field="status"]')).to_have_text("Cancelled", timeout=GUARD_MS)
    await expect(page.locator("#live-banner")).to_contain_text("This booking was just updated")
    assert await page.evaluate("window.__notReloaded") is True
    await page.screenshot(path=screenshot_path("selfservice-live-update.png"), full_page=True)

    # Preferences: no reminder emails, reminder texts instead (records the SMS consent).
    await page.goto(f"{base}/preferences")
    await page.locator("#pref-reminders-email").uncheck()
    await page.locator("#pref-reminders-sms").check()
    await page.screenshot(path=screenshot_path("selfservice-preferences.png"), full_page=True)
    await page.get_by_role("button", name="Save preferences").click()
    await page.wait_for_url(f"{base}/preferences?done=saved")
    await expect(page.get_by_role("status")).to_contain_text("Your preferences were saved")
    await expect(page.locator("#pref-reminders-sms")).to_be_checked()
    await expect(page.locator("#pref-reminders-email")).not_to_be_checked()
    await context.close()

    # The next reminder honours them: the rescheduled booking's reminder goes by SMS only.
    with live_portal.db() as db:
        consent = db.scalar(select(Consent).where(Consent.customer_id == jane_id, Consent.channel == "sms"))
        assert consent.granted and consent.source == "portal" and "Reply STOP" in consent.wording
        reminder = db.scalar(select(Reminder).where(Reminder.booking_id == booking.id, Reminder.status == "planned",
                                                    Reminder.booking_version == 2)
                             .order_by(Reminder.offset_minutes.desc()))
        reminder_id, due = reminder.id, reminder.due_at
        # The office's cancellation stopped the other booking's reminders.
        assert db.scalar(select(Reminder.id).where(Reminder.booking_id == second_pk, Reminder.status == "planned")) \
            is None
    assert handle_reminder(live_portal.session_factory, reminder_id, due) == "enqueued"
    await live_portal.run_queue()
    with live_portal.db() as db:
        reminders = db.scalars(select(Message).where(Message.booking_id == booking.id,
                                                     Message.kind == "appointment_reminder")).all()
        assert [(m.channel, m.status) for m in reminders] == [("sms", "sent")]
    texts = [m for m in live_portal.outbox() if m["message_id"] == reminders[0].id]
    assert texts and texts[0]["channel"] == "sms" and texts[0]["to"] == "+15145550100"

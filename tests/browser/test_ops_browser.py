"""Headless Chromium on the operator dashboard while messages flow:

sign in with the token -> the page polls and redraws queue counts and charts by
itself as new messages are enqueued and sent -> screenshot -> retry a dead letter
with the CSRF-protected button -> sign out.
"""

from __future__ import annotations

import math
import os
import re
from datetime import datetime, timedelta, timezone

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from playwright.async_api import expect
from sqlalchemy import select

from portal.broker import NAMESPACE, middleware
from portal.db import scope_to
from portal.models import Booking, Business, Customer, Message, MessageEvent
from portal.outbox import queue_notice
from portal.queues import WorkerRegistry
from scheduler.main import SchedulerService
from tests.browser.conftest import screenshot_path
from tests.portal_web.ops.conftest import dead_letter_a_delivery

VIEWPORT = {"width": 1280, "height": 900}
GUARD_MS = 30_000  # how long to wait for the page (it polls every 5 s), not a timing requirement
# (status, reason) by position: mostly delivered, with the usual trickle of trouble.
MIX = [("delivered", None)] * 7 + [("sent", None)] * 2 + [("failed", "bounce: mailbox does not exist")] + [
    ("delivered", None)] * 6 + [("skipped", "booking cancelled")] + [("delivered", None)] * 5 + [
    ("failed", "Twilio 21211: not a valid phone number")]


def seed_history(db, business: Business, customers: list[Customer]) -> None:
    """A day of delivery history, busier in the daytime (UTC), one row per message with its events."""
    now = datetime.now(timezone.utc)
    i = 0
    for minutes_ago in range(1, 24 * 60):
        at = now - timedelta(minutes=minutes_ago)
        daylight = max(0.0, math.sin(math.pi * (at.hour + at.minute / 60 - 6) / 14))
        rate = 1 + 5 * daylight  # messages per minute
        for n in range(int(rate + (minutes_ago * 0.618) % 1)):
            status, reason = MIX[i % len(MIX)]
            customer = customers[i % len(customers)]
            channel = "sms" if i % 3 == 0 else "email"
            when = at - timedelta(seconds=7 * n)
            message = Message(business_id=business.id, idempotency_key=f"ops-history:{i}",
                              kind="appointment_reminder", category="reminders", channel=channel,
                              customer_id=customer.id, status=status, status_reason=reason, attempts=1,
                              recipient=customer.phone if channel == "sms" else customer.email,
                              created_at=when - timedelta(seconds=30), updated_at=when)
            message.events = [MessageEvent(business_id=business.id, status=step, detail=detail, created_at=when)
                              for step, detail in (("queued", None), (status, reason))]
            db.add(message)
            i += 1


def delivery(message_id: int) -> dramatiq.Message:
    return dramatiq.Message(queue_name="messages", actor_name="deliver_message", args=(message_id,), kwargs={},
                            options={})


async def ready_count(page) -> str:
    return await page.locator('#queues td[data-queue="messages"][data-field="ready"]').inner_text()


async def test_ops_dashboard_while_messages_flow(live_portal, browser, redis_url, redis_client):
    with live_portal.db() as db:
        business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
        scope_to(db, business.id)
        customers = db.scalars(select(Customer).order_by(Customer.id)).all()
        seed_history(db, business, customers)
        booking_ids = [b.id for b in db.scalars(select(Booking).where(Booking.status == "scheduled"))]
        db.commit()

    # The Redis side: a dead letter from a real worker, then messages waiting.
    broker = RedisBroker(url=redis_url, namespace=NAMESPACE, middleware=middleware())
    try:
        dead_letter_a_delivery(broker, 4242)
        WorkerRegistry().after_worker_boot(broker, None)  # this broker stands for the worker from here on
        for i in range(3):
            broker.enqueue(delivery(100 + i))
        broker.enqueue(delivery(200), delay=3_600_000)
        # The scheduler's jobs run once, as the active scheduler's would: the overview names it.
        scheduler = SchedulerService(live_portal.settings, live_portal.session_factory, redis_client)
        scheduler.elect()
        scheduler.scan()
        scheduler.sweep()

        context = await browser.new_context(viewport=VIEWPORT, locale="en-CA")
        page = await context.new_page()
        await page.goto(f"{live_portal.url}/ops")
        await expect(page).to_have_url(re.compile(r"/ops/signin\?next=/ops$"))
        await page.get_by_label("Token").fill(live_portal.settings.ops_token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{live_portal.url}/ops")

        cell = page.locator('#queues td[data-queue="messages"][data-field="ready"]')
        await expect(cell).to_have_text("3", timeout=GUARD_MS)
        await expect(page.locator('#queues td[data-queue="messages"][data-field="delayed"]')).to_have_text("1")
        await expect(page.locator('#queues td[data-queue="messages"][data-field="dead"]')).to_have_text("1")
        await expect(page.locator("#workers tbody tr")).to_have_count(1)
        await expect(page.locator("#workers tbody tr")).to_contain_text(f":{os.getpid()}")
        await expect(page.locator("#scheduler-leader")).to_have_text(f"Active: {scheduler.leader.identity}")
        await expect(page.locator('#scheduler td[data-job="scan"]')).to_contain_text("s ago")
        await expect(page.locator("#chart-hour polyline[data-series=sent]")).to_have_count(1)
        await expect(page.locator("#chart-day polyline[data-series=failed]")).to_have_count(1)
        bounced = page.locator('#by-business td[data-row="pro-home-services"][data-field="bounced"]')
        await expect(bounced).not_to_have_text("0")

        # Messages keep flowing: the page redraws without a reload.
        hour_before = await page.locator("#hour-totals").inner_text()
        for i in range(2):
            broker.enqueue(delivery(300 + i))
        with live_portal.db() as db:
            scope_to(db, business.id)
            for booking in db.scalars(select(Booking).where(Booking.id.in_(booking_ids))):
                queue_notice(db, kind="booking_confirmation", customer=booking.customer, booking=booking,
                             key=f"ops-shot:{booking.id}", channels=["email"])
            db.commit()
        await live_portal.run_queue()
        await expect(cell).to_have_text("5", timeout=GUARD_MS)
        await expect(page.locator("#hour-totals")).not_to_have_text(hour_before, timeout=GUARD_MS)
        await page.screenshot(path=screenshot_path("ops-dashboard.png"), full_page=True)

        # The dead letter, its error, and the retry button (a CSRF-protected form).
        await page.get_by_role("link", name="Dead letters").click()
        letter = page.locator("article.letter")
        await expect(letter).to_have_count(1)
        await expect(letter.locator(".error")).to_have_text("RuntimeError: provider exploded for 4242")
        await letter.get_by_role("button", name="Retry").click()
        await expect(page.get_by_role("status")).to_have_text("The message is back on its queue.")
        await expect(page.locator("article.letter")).to_have_count(0)
        assert redis_client.zcard("portal:messages.XQ") == 0
        assert redis_client.llen("portal:messages") == 6

        # Search shows each message's history.
        await page.get_by_role("link", name="Messages").click()
        await page.get_by_label("Customer (external id, name or email)").fill("cust-jane")
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("article.message").first.locator(".history li").first).to_be_visible()

        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(f"{live_portal.url}/ops/signin")
        await page.goto(f"{live_portal.url}/ops")
        await expect(page).to_have_url(re.compile(r"/ops/signin"))
        await context.close()
    finally:
        broker.close()

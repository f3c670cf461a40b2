"""The printable invoice: its Print button works through live.js, so it only shows
where that script runs; without JavaScript the page is still the printable invoice."""

from __future__ import annotations

from playwright.async_api import expect
from sqlalchemy import select

from portal.db import scope_to
from portal.models import Business, Customer, Invoice


async def _signed_in_print_page(live_portal, browser, *, javascript: bool):
    base = f"{live_portal.url}/{live_portal.slug}"
    with live_portal.db() as db:
        business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
        scope_to(db, business.id)
        jane = db.scalar(select(Customer).where(Customer.external_id == "cust-jane"))
        invoice_id = db.scalar(select(Invoice.public_id).where(Invoice.customer_id == jane.id)
                               .order_by(Invoice.id).limit(1))
    link = live_portal.signin_link("cust-jane")
    page = await (await browser.new_context(locale="en-CA", java_script_enabled=javascript)).new_page()
    await page.goto(link)
    await page.get_by_role("button", name="Continue as j•••@example.com to Pro Home Services").click()
    await page.wait_for_url(f"{base}/")
    await page.goto(f"{base}/invoices/{invoice_id}/print")
    await expect(page.get_by_role("link", name="Back to the invoice")).to_be_visible()
    return page


async def test_print_button_shows_with_javascript(live_portal, browser):
    page = await _signed_in_print_page(live_portal, browser, javascript=True)
    await expect(page.get_by_role("button", name="Print")).to_be_visible()


async def test_no_dead_print_button_without_javascript(live_portal, browser):
    page = await _signed_in_print_page(live_portal, browser, javascript=False)
    await expect(page.get_by_role("button", name="Print")).to_be_hidden()

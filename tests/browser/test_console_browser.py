"""Headless Chromium: the pages a customer and an operator first meet load without a console error.

Chromium asks for /favicon.ico on every page; it was a 404, logged as an error on each one.
"""

from __future__ import annotations


async def test_first_pages_load_without_console_errors(live_portal, browser):
    base = f"{live_portal.url}/{live_portal.slug}"
    link = live_portal.signin_link("cust-jane")

    page = await (await browser.new_context(locale="en-CA")).new_page()
    errors = []
    page.on("console", lambda msg: errors.append(f"{msg.text} @ {page.url}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"{exc} @ {page.url}"))

    await page.goto(f"{base}/signin", wait_until="networkidle")
    await page.goto(f"{base}/connexion", wait_until="networkidle")
    await page.goto(link, wait_until="networkidle")
    await page.get_by_role("button", name="Continue as j•••@example.com to Pro Home Services").click()
    await page.wait_for_url(f"{base}/")
    await page.wait_for_load_state("networkidle")
    await page.goto(f"{live_portal.url}/ops/signin", wait_until="networkidle")
    assert errors == []

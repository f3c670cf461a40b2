"""Headless Chromium signs in from a link found in the outbox, in English and in French,
and the embed snippet loads only on an allowed origin."""

from __future__ import annotations

from aiohttp import web
from playwright.async_api import expect
from sqlalchemy import select

from portal.models import Business, Message
from tests.browser.conftest import screenshot_path

DESKTOP = {"width": 1100, "height": 760}
PHONE = {"width": 390, "height": 780}

CASES = [
    # email, sign-in path, label, button, sent heading, continue text, dashboard heading
    ("jane.doe@example.com", "signin", "Email or mobile number", "Send me a sign-in link", "Check your messages",
     "Continue as j•••@example.com to Pro Home Services", "Hello, Jane Doe", "en"),
    ("marie.tremblay@example.com", "connexion", "Courriel ou numéro de cellulaire", "M’envoyer un lien de connexion",
     "Consultez vos messages", "Continuer en tant que m•••@example.com vers Pro Home Services",
     "Bonjour, Marie Tremblay", "fr"),
]


async def test_sign_in_from_the_outbox_link_in_english_and_french(live_portal, browser):
    base = f"{live_portal.url}/{live_portal.slug}"
    for email, path, label, send, sent, cont, hello, lang in CASES:
        context = await browser.new_context(viewport=DESKTOP, locale="fr-CA" if lang == "fr" else "en-CA")
        page = await context.new_page()
        await page.goto(f"{base}/{path}")
        await expect(page.locator("html")).to_have_attribute("lang", lang)
        await page.screenshot(path=screenshot_path(f"signin-{lang}.png"))
        # Keyboard first: the skip link is the first stop.
        await page.keyboard.press("Tab")
        await expect(page.locator(".skip-link")).to_be_focused()
        await page.get_by_label(label).fill(email)
        await page.get_by_role("button", name=send).click()
        await expect(page.get_by_role("heading", name=sent)).to_be_visible()

        await live_portal.run_queue()
        link = live_portal.last_link(email)
        assert link.startswith(f"{base}/link/")
        with live_portal.db() as db:
            message = db.scalar(select(Message).where(Message.recipient == email, Message.kind == "signin_link"))
            assert message.status == "sent" and message.locale == lang

        await page.goto(link)
        button = page.get_by_role("button", name=cont)
        await expect(button).to_be_visible()
        await page.screenshot(path=screenshot_path(f"link-{lang}.png"))
        await button.click()
        await page.wait_for_url(f"{base}/")
        await expect(page.get_by_role("heading", name=hello)).to_be_visible()
        await expect(page.locator(".booking").first).to_be_visible()
        await page.screenshot(path=screenshot_path(f"dashboard-{lang}.png"), full_page=True)
        if lang == "fr":
            await page.set_viewport_size(PHONE)
            await page.screenshot(path=screenshot_path("dashboard-fr-mobile.png"), full_page=True)
        # The link is used up: opening it again offers a fresh one.
        await page.goto(link)
        await expect(page.locator("form[action$='/" + path + "'] input[name=identifier]")).to_be_visible()
        await context.close()


async def _host_page(embed_src: str, slug: str) -> web.AppRunner:
    html = (f'<!doctype html><html lang="en"><body><h1>Our website</h1>'
            f'<script src="{embed_src}" data-business="{slug}" async></script>'
            f'<div id="frame"></div><script src="{embed_src}" data-business="{slug}" data-mode="iframe" '
            f'data-target="#frame" async></script></body></html>')

    async def index(_request):
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def _runner_url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


async def test_embed_snippet_works_from_an_allowed_origin_only(live_portal, browser):
    embed_src = f"{live_portal.url}/static/embed.js"
    allowed = await _host_page(embed_src, live_portal.slug)
    other = await _host_page(embed_src, live_portal.slug)
    try:
        with live_portal.db() as db:
            business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
            business.embed_origins = [_runner_url(allowed)]
            db.commit()
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        await page.goto(_runner_url(allowed))
        login = page.get_by_role("link", name="Customer login")
        await expect(login).to_have_attribute("href", f"{live_portal.url}/{live_portal.slug}/signin")
        frame = page.frame_locator("iframe.customer-portal-frame")
        await expect(frame.get_by_label("Email or mobile number")).to_be_visible()
        await page.screenshot(path=screenshot_path("embed-allowed.png"))

        refused = await context.new_page()
        async with refused.expect_console_message(lambda m: "frame-ancestors" in m.text) as blocked:
            await refused.goto(_runner_url(other))
        message = (await blocked.value).text
        assert "blocked" in message and f"frame-ancestors {_runner_url(allowed)}" in message
        await expect(refused.frame_locator("iframe.customer-portal-frame")
                     .get_by_label("Email or mobile number")).to_have_count(0)
        # The button still works anywhere: it is a plain link to the portal.
        await expect(refused.get_by_role("link", name="Customer login")).to_be_visible()
        await context.close()
    finally:
        await allowed.cleanup()
        await other.cleanup()

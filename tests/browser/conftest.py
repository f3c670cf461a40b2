"""Browser fixtures: the real app on a real port, and headless Chromium through Playwright.

    async def test_something(live_portal, browser):
        page = await (await browser.new_context()).new_page()
        await page.goto(live_portal.url + "/pro-home-services/signin")
        ...
        await live_portal.run_queue()                  # the stub worker sends what was queued
        link = live_portal.last_link("jane.doe@example.com")   # from the outbox JSON files

``live_portal`` serves ``create_app`` on 127.0.0.1 (ephemeral port) in the test's
event loop, on committed data (the demo business, seeded with ``portal.demo.seed``;
deleted again afterwards), with the outbox email/SMS providers and Dramatiq's
StubBroker worked by ``stub_worker``. Debian's ``chromium`` is required; outside CI
its absence skips the test with that reason, in CI it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import delete, select

from messages.outbox_files import list_outbox
from portal import redis_client as portal_redis
from portal import tokens
from portal.db import make_session_factory, scope_to, system_session
from portal.demo import SLUG, seed
from portal.models import Business, Customer
from portal.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        if IN_CI:
            pytest.fail("CI=true but Debian's chromium is missing: apt-get install -y chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); browser tests need it")
    return path


@pytest.fixture
async def browser(chromium_path):
    """A headless Chromium (Playwright's async API: the sync one cannot run inside the test's loop)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS,
                                                    headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class LivePortal:
    url: str
    slug: str
    settings: Settings
    session_factory: object
    broker: object

    @contextmanager
    def db(self):
        """A system session on the live data (commit your changes)."""
        with system_session(self.session_factory) as session:
            yield session

    async def run_queue(self, queues: tuple[str, ...] = ("urgent", "messages"), timeout_ms: int = 30_000) -> None:
        """Wait until the stub worker has processed everything queued (sign-in requests and links
        on "urgent", other deliveries on "messages")."""
        for queue in queues:
            await asyncio.to_thread(self.broker.join, queue, timeout=timeout_ms)

    def signin_link(self, customer_external_id: str) -> str:
        """A fresh sign-in link for a demo customer (``cust-jane``), minted here: no outbox round trip."""
        with self.db() as db:
            business = db.scalar(select(Business).where(Business.slug == self.slug))
            scope_to(db, business.id)
            customer = db.scalar(select(Customer).where(Customer.external_id == customer_external_id))
            raw = tokens.mint(db, customer, "signin", 900)
            db.commit()
        return self.url + tokens.link_path(self.slug, raw)

    def outbox(self) -> list[dict]:
        return list_outbox(self.settings.outbox_dir)

    def last_link(self, recipient: str, contains: str = "/link/") -> str:
        for item in self.outbox():  # newest first
            if item["to"] == recipient:
                for link in item["links"]:
                    if contains in link:
                        return link
        raise AssertionError(f"no message with a {contains!r} link to {recipient} in the outbox")


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@pytest.fixture
async def live_portal(engine, database_url, redis_url, tmp_path, aredis, stub_broker, stub_worker):
    import workers.messaging as messaging
    import workers.signin as signin_worker
    from portal_web.app import create_app

    sock = _free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(database_url=database_url, redis_url=redis_url, secret_key="browser-secret-key-0123456789",
                        public_base_url=url, outbox_dir=tmp_path / "outbox", ops_token="browser-ops-token-0123456789",
                        dev_mode=True, db_threads=4)
    # Committed data on the real engine: the web app's threads and the worker's
    # threads each need their own connections, so no per-test transaction here.
    factory = make_session_factory(engine)
    with system_session(factory) as session:
        session.execute(delete(Business).where(Business.slug == SLUG))
        seed(session)
        session.commit()
    messaging.reset()
    messaging.configure(settings, session_factory=factory)
    signin_worker.configure(session_factory=factory)
    portal_redis.configure(redis_url)
    runner = web.AppRunner(create_app(settings, session_factory=factory, redis_client=aredis), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield LivePortal(url=url, slug=SLUG, settings=settings, session_factory=factory, broker=stub_broker)
    finally:
        await runner.cleanup()
        messaging.reset()
        signin_worker.reset()
        portal_redis.configure(None)
        with system_session(factory) as session:
            session.execute(delete(Business).where(Business.slug == SLUG))
            session.commit()
            assert session.scalar(select(Business.id).where(Business.slug == SLUG)) is None


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / name)

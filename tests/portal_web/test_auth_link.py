"""Using a magic link: GET shows, POST (with CSRF) uses it up, once, on its own business only."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import time_machine
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, select

from portal import tokens
from portal.db import make_session_factory, system_session, tenant_session
from portal.models import Business, MagicLinkToken, PortalSession
from portal_web.sessions import COOKIE, create_session
from tests.factories import make_business, make_customer
from tests.portal_web.signin_support import csrf_from, mint_link


def session_count(db, customer=None) -> int:
    db.expire_all()
    query = select(func.count(PortalSession.id))
    if customer is not None:
        query = query.where(PortalSession.customer_id == customer.id)
    return db.scalar(query)


def signins(outcome: str) -> float:
    return REGISTRY.get_sample_value("portal_signins_total", {"outcome": outcome}) or 0.0


async def continue_page(client, path):
    resp = await client.get(path)
    return resp, await resp.text()


async def test_get_three_times_and_head_then_post_signs_in(client, db, jane):
    path = mint_link(db, jane)
    for _ in range(3):
        resp, html = await continue_page(client, path)
        assert resp.status == 200
        assert "Continue as j•••@example.com to Pro Home Services" in html
        assert f'<form method="post" action="{path}"' in html
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in resp.headers
    head = await client.head(path)
    assert head.status == 200
    assert session_count(db) == 0
    before = signins("success")
    resp = await client.post(path, data={"csrf_token": csrf_from(html)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/pro-home/"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/pro-home"
    assert not cookie["secure"]  # http public URL in tests; see test_sessions for https
    assert session_count(db, jane) == 1
    assert signins("success") == before + 1
    home = await client.get("/pro-home/")
    assert home.status == 200 and "Hello, Jane Doe" in await home.text()


async def test_a_used_link_cannot_be_used_again_and_offers_a_fresh_one(client, db, jane):
    path = mint_link(db, jane)
    _, html = await continue_page(client, path)
    token = csrf_from(html)
    assert (await client.post(path, data={"csrf_token": token}, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    again = await client.post(path, data={"csrf_token": token}, allow_redirects=False)
    html = await again.text()
    assert again.status == 410 and "Set-Cookie" not in again.headers
    assert "This link can no longer be used" in html
    # The offer: a form posting to this business's sign-in request endpoint.
    assert 'action="/pro-home/signin"' in html and 'name="identifier"' in html
    assert again.headers["Referrer-Policy"] == "no-referrer"
    resp, html = await continue_page(client, path)
    assert resp.status == 410 and "Send me a new link" in html
    assert session_count(db, jane) == 1


async def test_an_expired_link_offers_a_fresh_one_but_an_invitation_lives_longer(client, db, settings, jane):
    signin_path = mint_link(db, jane, "signin", settings.signin_token_ttl_s)
    invite_path = mint_link(db, jane, "invitation", settings.invitation_token_ttl_s)
    _, signin_html = await continue_page(client, signin_path)
    _, invite_html = await continue_page(client, invite_path)
    assert "Welcome to Pro Home Services" in invite_html
    later = datetime.now(timezone.utc) + timedelta(seconds=settings.signin_token_ttl_s + 60)
    with time_machine.travel(later, tick=True):
        resp, html = await continue_page(client, signin_path)
        assert resp.status == 410 and "Send me a new link" in html
        post = await client.post(signin_path, data={"csrf_token": csrf_from(signin_html)}, allow_redirects=False)
        assert post.status == 410
        assert session_count(db) == 0
        resp, _ = await continue_page(client, invite_path)
        assert resp.status == 200
        post = await client.post(invite_path, data={"csrf_token": csrf_from(invite_html)}, allow_redirects=False)
        assert post.status == 303
    assert session_count(db, jane) == 1


async def test_a_link_is_bound_to_its_business(client, db, jane):
    make_business(db, slug="other-co", name="Other Co")
    path = mint_link(db, jane)
    foreign = path.replace("/pro-home/", "/other-co/")
    resp, html = await continue_page(client, foreign)
    assert resp.status == 410 and "jane" not in html.lower()
    post = await client.post(foreign, data={"csrf_token": csrf_from(html)}, allow_redirects=False)
    assert post.status in (403, 410) and session_count(db) == 0
    # Still good where it belongs.
    _, html = await continue_page(client, path)
    assert (await client.post(path, data={"csrf_token": csrf_from(html)}, allow_redirects=False)).status == 303


async def test_link_post_needs_its_own_csrf_token_and_a_same_site_origin(client, db, jane):
    path = mint_link(db, jane)
    other_path = mint_link(db, jane)
    _, html = await continue_page(client, path)
    _, other_html = await continue_page(client, other_path)
    good, foreign = csrf_from(html), csrf_from(other_html)
    assert (await client.post(path, data={}, allow_redirects=False)).status == 403
    assert (await client.post(path, data={"csrf_token": foreign}, allow_redirects=False)).status == 403
    evil = await client.post(path, data={"csrf_token": good}, headers={"Origin": "https://evil.example"},
                             allow_redirects=False)
    assert evil.status == 403
    cross = await client.post(path, data={"csrf_token": good}, allow_redirects=False,
                              headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403
    # None of those used the link up.
    assert session_count(db) == 0
    ok = await client.post(path, data={"csrf_token": good}, headers={"Origin": "http://portal.test"},
                           allow_redirects=False)
    assert ok.status == 303


async def test_two_simultaneous_posts_make_one_session(client, db, jane):
    import asyncio

    path = mint_link(db, jane)
    _, html = await continue_page(client, path)
    token = csrf_from(html)
    results = await asyncio.gather(*(client.post(path, data={"csrf_token": token}, allow_redirects=False)
                                     for _ in range(2)))
    assert sorted(r.status for r in results) == [303, 410]
    assert session_count(db, jane) == 1


def test_concurrent_consumers_on_separate_connections_make_one_session(engine, settings):
    """The guarded UPDATE under real concurrency (two connections, two threads)."""
    factory = make_session_factory(engine)
    with system_session(factory) as s:
        business = make_business(s, name="Race Co")
        customer = make_customer(s, business)
        raw = tokens.mint(s, customer, "signin", 900)
        s.commit()
        business_id, customer_id = business.id, customer.id
    barrier = threading.Barrier(2)

    def attempt() -> bool:
        with tenant_session(factory, business_id) as s:
            barrier.wait()
            token = tokens.consume(s, business_id, raw)
            if token is None:
                s.rollback()
                return False
            create_session(s, business_id, token.customer_id, settings)
            s.commit()
            return True

    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda _: attempt(), range(2)))
        assert sorted(outcomes) == [False, True]
        with system_session(factory) as s:
            assert s.scalar(select(func.count(PortalSession.id))
                            .where(PortalSession.customer_id == customer_id)) == 1
            assert s.scalar(select(MagicLinkToken.used_at).where(MagicLinkToken.customer_id == customer_id))
    finally:
        with system_session(factory) as s:
            s.execute(delete(Business).where(Business.id == business_id))
            s.commit()


async def test_an_unknown_token_shows_the_same_page_as_a_used_one(client, business):
    resp, html = await continue_page(client, "/pro-home/link/not-a-real-token")
    assert resp.status == 410 and "This link can no longer be used" in html


async def test_link_page_language_follows_lang_then_the_customer(client, db, business):
    marie = make_customer(db, business, name="Marie Tremblay", email="marie@example.com", locale="fr")
    path = mint_link(db, marie)
    _, html = await continue_page(client, path)
    assert '<html lang="fr">' in html and "Continuer en tant que m•••@example.com vers Pro Home Services" in html
    resp, html = await continue_page(client, path + "?lang=en")
    assert '<html lang="en">' in html and "Continue as" in html


async def test_chromium_posts_from_the_no_referrer_link_page_with_a_null_origin(client, db, jane):
    # Referrer-Policy: no-referrer makes Chromium send "Origin: null"; Sec-Fetch-Site vouches for it.
    path = mint_link(db, jane)
    _, html = await continue_page(client, path)
    resp = await client.post(path, data={"csrf_token": csrf_from(html)}, allow_redirects=False,
                             headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert resp.status == 303


async def test_a_used_link_answers_in_its_customers_language_not_the_browsers(client, db, business):
    marie = make_customer(db, business, name="Marie Tremblay", email="marie@example.com", locale="fr")
    path = mint_link(db, marie)
    _, html = await continue_page(client, path)
    token = csrf_from(html)
    assert (await client.post(path, data={"csrf_token": token}, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    english_browser = {"Accept-Language": "en-CA,en;q=0.9"}
    again = await client.post(path, data={"csrf_token": token}, headers=english_browser, allow_redirects=False)
    html = await again.text()
    assert again.status == 410 and '<html lang="fr">' in html and "Ce lien n’est plus valide" in html
    resp = await client.get(path, headers=english_browser)
    assert resp.status == 410 and '<html lang="fr">' in await resp.text()
    # An explicit choice still wins; and under another business the link is nobody's.
    resp = await client.get(path + "?lang=en", headers=english_browser)
    assert '<html lang="en">' in await resp.text()
    make_business(db, slug="other-co", name="Other Co")
    resp = await client.get(path.replace("/pro-home/", "/other-co/"), headers=english_browser)
    assert resp.status == 410 and '<html lang="en">' in await resp.text()

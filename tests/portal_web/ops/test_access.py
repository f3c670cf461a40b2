"""Who may open /ops: operators signed in with OPS_TOKEN, or scripts with it as a Bearer token."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import redis.asyncio as aioredis
from yarl import URL

from portal.db import make_engine, make_session_factory
from portal.models import PortalSession, utcnow
from portal.security import new_token
from portal_web.app import create_app
from portal_web.ops.auth import MAX_FAILURES
from tests.factories import make_business, make_customer
from tests.portal_web.ops.conftest import OPS_TOKEN, bearer, sign_in


def ops_keys(redis_client) -> list[bytes]:
    return list(redis_client.scan_iter("ops:session:*"))


async def test_without_a_session_pages_redirect_to_signin_and_json_gets_401(client):
    resp = await client.get("/ops/messages?business=acme", allow_redirects=False)
    assert resp.status == 302
    location = URL(resp.headers["Location"])
    assert location.path == "/ops/signin"
    assert location.query["next"] == "/ops/messages?business=acme"

    for path in ("/ops/api/overview", "/ops/api/throughput", "/ops/api/messages", "/ops/api/dead-letters"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert await resp.json() == {"error": "operator sign-in required"}

    form = await client.get("/ops/signin")
    assert form.status == 200
    assert 'name="token"' in await form.text()


async def test_wrong_token_is_refused_with_403_and_opens_no_session(client, redis_client):
    resp = await client.post("/ops/signin", data={"token": "not-the-token", "next": "/ops"}, allow_redirects=False)
    assert resp.status == 403
    assert "That token is not right" in await resp.text()
    assert "ops_session" not in resp.cookies
    assert ops_keys(redis_client) == []
    assert (await client.get("/ops", allow_redirects=False)).status == 302


async def test_right_token_opens_a_server_side_session_with_a_strict_cookie(client, redis_client, settings):
    resp = await client.post("/ops/signin", data={"token": OPS_TOKEN, "next": "/ops/dead-letters"},
                             allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ops/dead-letters"
    cookie = resp.cookies["ops_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/ops"
    assert not cookie["secure"]  # http public URL in tests; see the https test below
    # Only the hash of the cookie value is a Redis key, and it expires.
    key = f"ops:session:{hashlib.sha256(cookie.value.encode()).hexdigest()}"
    assert ops_keys(redis_client) == [key.encode()]
    assert 0 < redis_client.ttl(key) <= settings.session_idle_timeout_s

    page = await client.get("/ops")
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert 'src="/static/ops.js"' in await page.text()


async def test_cookie_is_secure_when_the_public_url_is_https(aiohttp_client, settings, session_factory, aredis):
    app = create_app(settings.replace(public_base_url="https://portal.example"), session_factory=session_factory,
                     redis_client=aredis)
    client = await aiohttp_client(app)
    resp = await client.post("/ops/signin", data={"token": OPS_TOKEN}, allow_redirects=False)
    assert resp.cookies["ops_session"]["secure"] is True


async def test_next_never_leaves_ops(client):
    for target in ("https://evil.example/", "//evil.example/ops", "/acme/signin", "/ops/../acme", "/ops/\r\nX: y"):
        resp = await client.post("/ops/signin", data={"token": OPS_TOKEN, "next": target}, allow_redirects=False)
        assert resp.headers["Location"] == "/ops", target


async def test_bearer_token_opens_the_json_endpoints(client):
    resp = await client.get("/ops/api/overview", headers=bearer())
    assert resp.status == 200
    body = await resp.json()
    assert {"queues", "workers", "outcomes"} <= set(body)

    wrong = await client.get("/ops/api/overview",
                             headers={"Authorization": "Bearer nope", "Accept": "application/json"})
    assert wrong.status == 401


async def test_a_business_api_key_does_not_open_ops(client, db):
    business = make_business(db)
    db.commit()
    for headers in ({"Authorization": f"Bearer {business.api_key}"}, {"X-Api-Key": business.api_key}):
        resp = await client.get("/ops/api/overview", headers=headers)
        assert resp.status == 401, headers
        page = await client.get("/ops", headers=headers, allow_redirects=False)
        assert page.status in (302, 401), headers
        assert page.status == 401 or page.headers["Location"].startswith("/ops/signin")


async def test_a_customer_session_does_not_open_ops(client, db, redis_client):
    business = make_business(db)
    customer = make_customer(db, business)
    raw = new_token(32)
    now = utcnow()
    db.add(PortalSession(business_id=business.id, customer_id=customer.id,
                         session_hash=hashlib.sha256(raw.encode()).hexdigest(), csrf_token=new_token(32),
                         created_at=now, last_seen_at=now, expires_at=now + timedelta(hours=1)))
    db.commit()
    # The customer's cookie, even copied under the operator cookie's name, opens nothing.
    cookie = f"portal_session={raw}; ops_session={raw}"
    resp = await client.get("/ops", headers={"Cookie": cookie}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].startswith("/ops/signin")
    api = await client.get("/ops/api/overview", headers={"Cookie": cookie})
    assert api.status == 401
    assert ops_keys(redis_client) == []


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(client, redis_client):
    csrf = await sign_in(client)
    refused = await client.post("/ops/signout", data={"csrf": "forged"}, allow_redirects=False)
    assert refused.status == 403
    assert (await client.get("/ops", allow_redirects=False)).status == 200

    resp = await client.post("/ops/signout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ops/signin"
    assert ops_keys(redis_client) == []
    assert (await client.get("/ops", allow_redirects=False)).status == 302


async def test_cross_origin_post_is_refused_even_with_the_token(client):
    csrf = await sign_in(client)
    resp = await client.post("/ops/signout", data={"csrf": csrf}, headers={"Origin": "https://evil.example"},
                             allow_redirects=False)
    assert resp.status == 403


async def test_session_past_its_absolute_lifetime_is_dropped(client, redis_client, settings):
    await sign_in(client)
    [key] = ops_keys(redis_client)
    info = json.loads(redis_client.get(key))
    info["created"] -= settings.session_absolute_timeout_s + 1
    redis_client.set(key, json.dumps(info), ex=60)
    assert (await client.get("/ops", allow_redirects=False)).status == 302
    assert ops_keys(redis_client) == []


async def test_repeated_wrong_tokens_are_throttled(client):
    for _ in range(MAX_FAILURES):
        assert (await client.post("/ops/signin", data={"token": "guess"})).status == 403
    resp = await client.post("/ops/signin", data={"token": OPS_TOKEN}, allow_redirects=False)
    assert resp.status == 429
    assert "ops_session" not in resp.cookies


async def test_behind_a_proxy_the_throttle_counts_each_client_not_the_proxy(aiohttp_client, settings,
                                                                            session_factory, aredis):
    app = create_app(settings.replace(trusted_proxy_hops=1), session_factory=session_factory, redis_client=aredis)
    client = await aiohttp_client(app)
    guesser, operator = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.2"}
    for _ in range(MAX_FAILURES):
        assert (await client.post("/ops/signin", data={"token": "guess"}, headers=guesser)).status == 403
    assert (await client.post("/ops/signin", data={"token": OPS_TOKEN}, headers=guesser)).status == 429
    resp = await client.post("/ops/signin", data={"token": OPS_TOKEN}, headers=operator, allow_redirects=False)
    assert resp.status == 302 and "ops_session" in resp.cookies


async def test_with_redis_unreachable_ops_says_so_with_a_503(aiohttp_client, settings, session_factory):
    dead_redis = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=2)  # nothing listens on port 1
    try:
        client = await aiohttp_client(create_app(settings, session_factory=session_factory, redis_client=dead_redis))
        resp = await client.post("/ops/signin", data={"token": OPS_TOKEN, "next": "/ops"}, allow_redirects=False)
        assert resp.status == 503 and "Redis is unreachable" in await resp.text()
        client.session.cookie_jar.update_cookies({"ops_session": "x"}, URL(str(client.make_url("/ops"))))
        resp = await client.get("/ops/dead-letters", allow_redirects=False)
        assert resp.status == 503 and "Redis is unreachable" in await resp.text()
        for path in ("/ops/api/dead-letters", "/ops/dead-letters/messages/abc/discard"):
            method = client.post if path.endswith("discard") else client.get
            resp = await method(path, headers=bearer())
            assert resp.status == 503, path
            assert (await resp.json())["error"].startswith("Redis is unreachable")
    finally:
        await dead_redis.aclose()


async def test_with_the_database_unreachable_ops_still_shows_the_queues(aiohttp_client, settings, aredis, tmp_path,
                                                                         caplog):
    engine = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'portal.db'}")
    try:
        client = await aiohttp_client(create_app(settings, session_factory=make_session_factory(engine),
                                                 redis_client=aredis))
        resp = await client.get("/ops/api/overview", headers=bearer())
        assert resp.status == 200
        body = await resp.json()
        assert "messages" in [q["queue"] for q in body["queues"]]
        assert body["outcomes"]["error"] == "Database unreachable."
        for path in ("/ops/api/throughput", "/ops/api/messages", "/ops/messages"):
            resp = await client.get(path, headers=bearer())
            assert resp.status == 503, path
            assert (await resp.json())["error"].startswith("The database is unreachable")
        caplog.clear()
        resp = await client.get("/metrics", headers=bearer())
        assert resp.status == 200 and "portal_queue_messages{" in await resp.text()
        assert "portal_messages_current{" not in await resp.text()
        assert [r.exc_info for r in caplog.records if r.name == "portal_web.ops.metrics_view"] == [None]
    finally:
        engine.dispose()


async def test_ops_with_a_trailing_slash_leads_to_the_dashboard(client):
    resp = await client.get("/ops/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ops"

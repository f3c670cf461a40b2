"""Asking for a sign-in link: pages, enumeration safety, rate limits, CSRF, 404s and headers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.models import Message
from tests.factories import make_business, make_customer
from tests.portal_web.signin_support import csrf_from, drain_signin_requests, queued_signin_requests


@pytest.fixture
def business(db):
    return make_business(db, slug="pro-home", name="Pro Home Services", primary_color="#0f766e",
                         logo_url="/static/demo/logo.svg", embed_origins=["https://www.prohome.example"])


@pytest.fixture
def jane(db, business):
    return make_customer(db, business, name="Jane Doe", email="Jane.Doe@Example.com", phone="+15145550100")


@pytest.fixture
def marie(db, business):
    return make_customer(db, business, name="Marie Tremblay", email="marie.tremblay@example.com",
                         phone="+15145550101", locale="fr")


async def form_token(client, path="/pro-home/signin") -> str:
    resp = await client.get(path)
    assert resp.status == 200
    return csrf_from(await resp.text())


async def ask(client, identifier, path="/pro-home/signin", token=None, headers=None):
    token = token if token is not None else await form_token(client, path)
    return await client.post(path, data={"identifier": identifier, "csrf_token": token}, headers=headers or {})


def signin_rows(db, customer):
    db.expire_all()
    return db.scalars(select(Message).where(Message.customer_id == customer.id,
                                            Message.kind == "signin_link")).all()


def comparable_headers(resp) -> dict:
    return {k: v for k, v in resp.headers.items() if k not in ("Date", "Content-Length")}


async def test_the_footer_phone_reads_as_a_number_and_dials_as_one(client, db, business):
    business.support_phone = "+15145550123"
    db.commit()
    html = await (await client.get("/pro-home/signin")).text()
    assert '<a href="tel:+15145550123">+1 514-555-0123</a>' in html


async def test_signin_pages_in_english_and_french(client, business):
    en = await client.get("/pro-home/signin")
    html = await en.text()
    assert en.status == 200 and '<html lang="en">' in html
    assert '<label for="identifier">Email or mobile number</label>' in html
    assert 'href="/pro-home/connexion"' in html and 'class="skip-link" href="#main"' in html
    assert "Pro Home Services" in html and 'src="/static/demo/logo.svg"' in html
    # Brand colour as CSS variables, with black or white text chosen for contrast.
    assert "--brand:#0f766e;--on-brand:#ffffff;" in html
    fr = await client.get("/pro-home/connexion")
    html = await fr.text()
    assert fr.status == 200 and '<html lang="fr">' in html
    assert "Courriel ou numéro de cellulaire" in html and "M’envoyer un lien de connexion" in html
    assert 'action="/pro-home/connexion"' in html and 'href="/pro-home/signin"' in html


async def test_a_known_email_gets_a_link_queued_in_the_page_language(client, db, stub_broker, session_factory,
                                                                     jane, marie):
    resp = await ask(client, "  jane.doe@EXAMPLE.com ")
    assert resp.status == 200 and "Check your messages" in await resp.text()
    resp = await ask(client, "514-555-0101", path="/pro-home/connexion")
    assert resp.status == 200 and "Consultez vos messages" in await resp.text()
    assert drain_signin_requests(stub_broker, session_factory) == 2
    [email] = signin_rows(db, jane)
    assert (email.channel, email.recipient, email.locale, email.category) == (
        "email", "Jane.Doe@Example.com", "en", "account")
    [sms] = signin_rows(db, marie)
    assert (sms.channel, sms.recipient, sms.locale) == ("sms", "+15145550101", "fr")


@pytest.mark.parametrize("known,unknown", [
    ("jane.doe@example.com", "nobody@example.com"),
    ("+1 514 555 0100", "+1 514 555 0199"),
])
async def test_same_bytes_and_same_work_whether_or_not_the_customer_exists(
        client, db, stub_broker, session_factory, jane, known, unknown):
    token = await form_token(client)
    a = await ask(client, known, token=token)
    b = await ask(client, unknown, token=token)
    assert a.status == b.status == 200
    assert await a.read() == await b.read()
    assert comparable_headers(a) == comparable_headers(b)
    assert "Set-Cookie" not in a.headers
    # The request itself did the same thing both times: one queued job, no lookup.
    assert queued_signin_requests(stub_broker) == 2
    assert drain_signin_requests(stub_broker, session_factory) == 2
    assert len(signin_rows(db, jane)) == 1
    db.expire_all()
    assert db.scalar(select(Message).where(Message.recipient.in_(("nobody@example.com", "+15145550199")))) is None


async def test_invalid_input_is_a_form_error_that_depends_only_on_the_input(client, stub_broker, jane):
    resp = await ask(client, "not an email")
    html = await resp.text()
    assert resp.status == 422 and 'aria-invalid="true"' in html and "Enter a valid phone number." in html
    resp = await ask(client, "jane@", path="/pro-home/connexion")
    assert resp.status == 422 and "Entrez une adresse courriel valide." in await resp.text()
    assert queued_signin_requests(stub_broker) == 0


async def test_per_identifier_limit_gives_the_same_response_and_sends_nothing(
        client, db, stub_broker, session_factory, settings, jane, redis_client, business):
    token = await form_token(client)
    bodies = set()
    for _ in range(settings.signin_rate_identifier + 2):
        resp = await ask(client, "jane.doe@example.com", token=token)
        assert resp.status == 200
        bodies.add(await resp.read())
    assert len(bodies) == 1
    assert queued_signin_requests(stub_broker) == settings.signin_rate_identifier
    drain_signin_requests(stub_broker, session_factory)
    assert len(signin_rows(db, jane)) == settings.signin_rate_identifier
    # Counters are per business and never hold the address itself.
    keys = {k.decode() for k in redis_client.keys("rl:*")}
    assert f"rl:{business.id}:ip:127.0.0.1" in keys
    assert all("jane" not in k for k in keys)
    # Another identifier from the same IP is still served.
    await ask(client, "+15145550100", token=token)
    assert queued_signin_requests(stub_broker) == 1


async def test_per_ip_limit_and_counters_are_per_business(client, db, stub_broker, settings, business):
    other = make_business(db, slug="other-co", name="Other Co")
    token = await form_token(client)
    for i in range(settings.signin_rate_ip + 3):
        resp = await ask(client, f"person{i}@example.com", token=token)
        assert resp.status == 200
    assert queued_signin_requests(stub_broker) == settings.signin_rate_ip
    resp = await ask(client, "someone@example.com", path="/other-co/signin")
    assert resp.status == 200
    assert queued_signin_requests(stub_broker) == settings.signin_rate_ip + 1
    assert other.id != business.id


async def test_signin_post_needs_this_business_csrf_token_and_origin(client, db, stub_broker, business, jane):
    make_business(db, slug="other-co", name="Other Co")
    assert (await ask(client, "jane.doe@example.com", token="")).status == 403
    foreign = await form_token(client, "/other-co/signin")
    assert (await ask(client, "jane.doe@example.com", token=foreign)).status == 403
    evil = await ask(client, "jane.doe@example.com", headers={"Origin": "https://evil.example"})
    assert evil.status == 403
    assert (await ask(client, "jane.doe@example.com", headers={"Origin": "null"})).status == 403
    referer = await ask(client, "jane.doe@example.com", headers={"Referer": "https://evil.example/x"})
    assert referer.status == 403
    assert queued_signin_requests(stub_broker) == 0
    ok = await ask(client, "jane.doe@example.com", headers={"Origin": "http://portal.test"})
    assert ok.status == 200
    assert queued_signin_requests(stub_broker) == 1


async def test_unknown_slug_and_disabled_portal_are_a_clear_404(client, db):
    make_business(db, slug="closed-co", name="Closed Co", portal_enabled=False)
    for path in ("/nope/signin", "/nope/connexion", "/closed-co/signin", "/closed-co/link/abc", "/closed-co/",
                 "/nope/"):
        resp = await client.get(path)
        html = await resp.text()
        assert resp.status == 404, path
        assert "Page not found" in html and "Page introuvable" in html
        assert "Closed Co" not in html
    assert (await client.post("/closed-co/signin", data={"identifier": "a@b.co"})).status == 404


async def test_headers_frame_ancestors_only_the_business_embed_origins(client, db, business):
    resp = await client.get("/pro-home/signin")
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors https://www.prohome.example;" in csp and "frame-ancestors 'none'" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    make_business(db, slug="plain-co", name="Plain Co",
                  embed_origins=["https://ok.example", "https://bad.example; script-src *", "javascript:x"])
    csp = (await client.get("/plain-co/signin")).headers["Content-Security-Policy"]
    assert "frame-ancestors https://ok.example;" in csp and "bad.example" not in csp
    make_business(db, slug="none-co", name="None Co")
    csp = (await client.get("/none-co/signin")).headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "frame-ancestors 'none'" in (await client.get("/static/embed.js")).headers["Content-Security-Policy"]


async def test_embed_script_is_served(client):
    resp = await client.get("/static/embed.js")
    assert resp.status == 200
    body = await resp.text()
    assert "data-business" in body and "Customer login" in body and "Espace client" in body


async def test_behind_a_trusted_proxy_the_forwarded_client_ip_is_limited(
        aiohttp_client, db, settings, session_factory, aredis, stub_broker, business):
    from portal_web.app import create_app

    app = create_app(settings.replace(trusted_proxy_hops=1, signin_rate_ip=2), session_factory=session_factory,
                     redis_client=aredis)
    client = await aiohttp_client(app)
    token = await form_token(client)
    for i in range(3):  # a spoofed left-most entry does not change the key
        await ask(client, f"p{i}@example.com", token=token, headers={"X-Forwarded-For": f"6.6.6.{i}, 203.0.113.7"})
    await ask(client, "other@example.com", token=token, headers={"X-Forwarded-For": "198.51.100.9"})
    assert queued_signin_requests(stub_broker) == 3
    assert await aredis.exists(f"rl:{business.id}:ip:203.0.113.7")

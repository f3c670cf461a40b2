"""A robustness sweep of every HTML, form and webhook route (not /api/v1: Schemathesis fuzzes that).

The routes come from ``app.router``, so a route added later is swept too; a route family the
sweep does not know must go into FAMILIES or SKIPPED (test_every_route_is_swept_or_skipped).
Each route gets malformed path parameters, wrong methods, bad query strings and headers and,
for unsafe methods, broken bodies, bad CSRF tokens and foreign origins: signed out, signed in
(customer or operator) and, for webhooks, genuinely signed. Every answer must be below 500
with no traceback; a 4xx from the app is a page (HTML), or JSON/plain text for webhooks and
/ops/api; a refused unsafe request leaves every table exactly as it was.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import select
from yarl import URL

from messages.links import unsubscribe_token
from messages.providers.base import MESSAGE_ID_ARG
from portal.models import Base, BookingAttachment, Message
from portal_web.app import create_app
from portal_web.live import TIMING
from tests.factories import make_booking, make_business, make_customer, make_invoice, make_quote
from tests.fakes import sign_sendgrid_events, sign_twilio
from tests.portal_web.conftest import TWILIO_TOKEN, with_webhook_secrets
from tests.portal_web.signin_support import CSRF_RE, mint_link, sign_in

GUARD_S = 10  # a hang guard per request, not a timing assertion
OPS_TOKEN = "test-ops-token-0123456789"  # tests/conftest.py settings.ops_token

# Route families, by the start of the route's pattern (first match wins).
FAMILIES = (("/webhooks/", "webhook"), ("/unsubscribe/", "unsubscribe"), ("/ops/", "ops"), ("/ops", "ops"),
            ("/_dev/", "dev"), ("/{slug}", "portal"))
# Routes this sweep leaves alone, and why.
SKIPPED = {
    "/api/v1/": "the JSON API: fuzzed with Schemathesis in tests/portal_web/api",
    "/static": "aiohttp's own static file handler: no code of ours",
    "/healthz": "liveness probe: reads no input",
    "/readyz": "readiness probe: reads no input",
    "/favicon.ico": "one static file: reads no input",
    "/metrics": "Prometheus text: its access rules are tests/portal_web/ops/test_metrics.py",
}

# Path segments, already percent-encoded as they go on the wire.
BAD_SEGMENTS = (
    "x" * 5000, "%00", "..", "../", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%E2%80%AE", "%C3%A9t%C3%A9", "%FF%FE", "%", "%zz",
    "-1", "0", "99999999999999999999999999", "1e99", "%0D%0ASet-Cookie:%20x=y", "%20", "%27%22%3E%3Cscript%3E",
)
BAD_QUERIES = (
    "lang=zz", "locale=zz", "lang=%FF", "lang=%00", "page=-1", "page=1e99", "page=99999999999999999999",
    "done=%00", "done=__class__", "notice=%FF", "next=%2F%2Fevil.example", "next=%2Fops%0D%0ALocation:%20x",
    "next=%FF", "window=zz", "window=%00", "queue=..%2Fx", "queue=%00", "queue=" + "q" * 3000, "part=html",
    "mid=-1", "mid=%C2%B2", "mid=99999999999999999999", "business=%25&customer=%5C%00&recipient=%27%20OR%201=1--",
    "business=%00", "customer=" + "%E2%80%AE" * 300, "a=1&a=2&lang=en&lang=fr", "%FF=%FF&=&&", "x=" + "y" * 6000,
)
BAD_HEADERS = (
    {"Cookie": "portal_session=" + "x" * 3000 + "; ops_session=" + "y" * 3000},
    {"Cookie": "portal_session=%00; portal_lang=%FF; ops_session=%00"},
    {"Accept-Language": "zz;q=abc, en;q=nan, fr;q=inf, " * 30},
    {"Accept": "application/json"},
    {"Accept": "text/event-stream"},
    {"X-Forwarded-For": "not-an-ip, , ::::"},
    {"Authorization": "Bearer " + "x" * 3000},
    {"Authorization": "Basic %%%"},
)
# Values put into every form field at once, and extra ones for the fields that parse.
BAD_VALUES = ("", " ", "\x00", "x" * 5000, "\u202e", "-1", "99999999999999999999", "1e99", "\u00b2", "\u0661\u0662",
              "NaN", "[]", "é" * 300)
FIELD_VALUES = {
    "slot": ("2025-02-30T10:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
             "2025-06-05T18:00:00+25:00", "2025-06-05T18:00:00", "2025-06-05T18:00:00 America/Nowhere",
             "2025-06-05", "T", "2030-01-01T10:00:00Z\x00"),
    "version": ("0", "2147483648", "999999999999", "+1", " 1 ", "\u00b2", "\u0661"),
    "locale": ("zz", "fr-CA", "en_US.UTF-8", "\x00", "x" * 300),
    "pref": ("reminders:fax", "zz:email", "reminders:email:x", ":", "account:email"),
    "decision": ("APPROVE", "decline ", "approve\x00"),
    "identifier": ("a@", "@b", "+1", "+" + "1" * 40, "a@b.c\x00", "\u202e@example.com", "x" * 300 + "@example.com"),
    "next": ("//evil.example", "/ops/\r\nX: y", "https://evil.example/ops", "/ops/../x", "\x00"),
    "token": ("", OPS_TOKEN + "\x00", "x" * 5000),
    "test_card": ("nope", "\x00", "x" * 5000),
    "setup_intent": ("seti_\x00", "seti_" + "x" * 5000, "pi_123"),
}
SLOT = "2030-01-01T10:00:00Z"
WRONG_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def family_of(pattern: str) -> str | None:
    if any(pattern.startswith(prefix) for prefix in SKIPPED):
        return None
    return next((name for prefix, name in FAMILIES if pattern.startswith(prefix)), "unknown")


def routes(app) -> dict[str, set[str]]:
    """Route pattern -> methods, from the router (GET and POST of one path are separate resources)."""
    found: dict[str, set[str]] = {}
    for resource in app.router.resources():
        found.setdefault(resource.canonical, set()).update(route.method for route in resource)
    return found


def params_of(pattern: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", pattern)


def fill(pattern: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], pattern)


def form(pairs) -> bytes:
    return urlencode(list(pairs.items()) if isinstance(pairs, dict) else pairs).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def settings(settings, sendgrid_key):
    return with_webhook_secrets(settings, sendgrid_key)


@pytest.fixture
async def sweep_client(aiohttp_client, settings, session_factory, aredis, stub_broker):
    app = create_app(settings, session_factory=session_factory, redis_client=aredis)
    app[TIMING] = {"heartbeat": 0.05, "max_stream": 0.1}  # a live stream that opens ends at once
    return await aiohttp_client(app)


@dataclass
class World:
    slug: str
    ids: dict
    link_token: str
    unsubscribe_token: str
    me: object
    email_message: Message
    sms_message: Message

    def value(self, pattern: str, name: str) -> str:
        """A valid value for a path parameter, so that only the parameter under test is bad."""
        if name == "slug":
            return self.slug
        if name == "public_id":
            section = pattern.split("/")[2]
            return self.ids.get({"bookings": "booking", "invoices": "invoice", "quotes": "quote"}.get(section), "x")
        if name == "attachment_id":
            return self.ids["attachment"]
        if name == "token":
            return self.unsubscribe_token if pattern.startswith("/unsubscribe/") else self.link_token
        return {"queue": "messages", "id": "1700000000000-0", "name": "nothing-here"}.get(name, "x")


@pytest.fixture
def world(db, settings):
    business = make_business(db, slug="sweep-co", webhook_url="https://sweep.example/hook")
    me = make_customer(db, business, name="Me")
    booking = make_booking(db, me, starts_at=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=5))
    attachment = BookingAttachment(business_id=business.id, booking_id=booking.id, filename="plan.pdf",
                                   content=b"%PDF-1.4", content_type="application/pdf")
    db.add(attachment)
    invoice, quote_ = make_invoice(db, me), make_quote(db, me)
    messages = []
    for i, (channel, provider) in enumerate((("email", "sendgrid"), ("sms", "twilio"))):
        message = Message(business_id=business.id, idempotency_key=f"sweep:{i}", kind="appointment_reminder",
                          category="reminders", channel=channel, customer_id=me.id, status="sent", provider=provider,
                          recipient=me.email if channel == "email" else me.phone, provider_id=f"SWEEP{i}")
        db.add(message)
        messages.append(message)
    db.flush()
    link = mint_link(db, make_customer(db, business, name="Linked")).rsplit("/", 1)[1]
    db.commit()
    return World(slug=business.slug, me=me, link_token=link,
                 ids={"booking": booking.public_id, "attachment": attachment.public_id, "invoice": invoice.public_id,
                      "quote": quote_.public_id},
                 unsubscribe_token=unsubscribe_token(settings.secret_key, business.id, me.id, "reminders", "email"),
                 email_message=messages[0], sms_message=messages[1])


# Columns that change on reads: the idle clock of a session (touched at most once a minute).
VOLATILE = {("portal_session", "last_seen_at")}


@dataclass
class Sweep:
    client: object
    anon: aiohttp.ClientSession
    connection: object
    db: object
    world: World
    aredis: object
    customer_csrf: str = ""
    ops_csrf: str = ""
    failures: list = field(default_factory=list)
    sent: int = 0
    state: dict | None = None
    last_location_is_signin: bool = False

    @property
    def root(self) -> str:
        return str(self.client.make_url("/")).rstrip("/")

    def snapshot(self) -> dict:
        rows = {}
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.c if (table.name, c.name) not in VOLATILE]
            rows[table.name] = sorted(map(repr, self.connection.execute(select(*columns)).all()))
        return rows

    async def sign_in_customer(self) -> None:
        self.customer_csrf = await sign_in(self.client, self.db, self.world.me)

    async def sign_in_operator(self) -> None:
        async for key in self.aredis.scan_iter("ops:signin-fail:*"):  # the sweep's own wrong tokens
            await self.aredis.delete(key)
        resp = await self.client.post("/ops/signin", data={"token": OPS_TOKEN, "next": "/ops"}, allow_redirects=False)
        assert resp.status == 302, await resp.text()
        page = await (await self.client.get("/ops")).text()
        self.ops_csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    async def send(self, family: str, persona: str, label: str, method: str, path: str, *, query: str = "",
                   body: bytes | None = None, headers: dict | None = None) -> int | None:
        """One request; records what is wrong with its answer. Returns the status (None: no answer)."""
        url = URL(self.root + path + (f"?{query}" if query else ""), encoded=True)
        session = self.anon if persona == "anon" else self.client.session
        unsafe = method not in ("GET", "HEAD", "OPTIONS")
        if unsafe and self.state is None:
            self.state = self.snapshot()
        where = f"[{family}/{persona}] {method} {path[:120]}{'?' + query[:80] if query else ''} ({label})"
        self.sent += 1
        if isinstance(body, bytes) and len(body) > 1_000_000:
            body = io.BytesIO(body)  # aiohttp warns about large raw bytes
        try:
            async with asyncio.timeout(GUARD_S):
                async with session.request(method, url, data=body, headers=headers or {},
                                           allow_redirects=False) as resp:
                    status, content, rheaders, cookies = resp.status, await resp.read(), resp.headers, resp.cookies
        except TimeoutError:
            self.failures.append(f"{where}: no answer within {GUARD_S}s")
            return None
        except aiohttp.ClientError as exc:
            self.failures.append(f"{where}: {type(exc).__name__}: {exc}")
            return None
        text = content.decode("utf-8", "replace")
        self.last_location_is_signin = 300 <= status < 400 and "signin" in rheaders.get("Location", "")
        if status >= 500:
            self.failures.append(f"{where}: {status} {text[:200]!r}")
        if "Traceback" in text:
            self.failures.append(f"{where}: a traceback in the body")
        if 400 <= status < 500 and "Content-Security-Policy" in rheaders and method != "HEAD":
            # Through the app (the HTTP parser's own 400s carry none of our headers): a message, in the right form.
            ctype = rheaders.get("Content-Type", "").split(";")[0]
            if family == "webhook" or path.startswith("/ops/api/"):
                expected = ("application/json", "text/plain", "text/xml")
            elif "application/json" in (headers or {}).get("Accept", "") or "Bearer" in (headers or {}).get(
                    "Authorization", ""):
                expected = ("application/json", "text/html")
            else:
                expected = ("text/html",)
            if ctype not in expected or not text.strip():
                self.failures.append(f"{where}: {status} as {ctype or 'no type'} {text[:80]!r}")
        # Signed out and sent to sign in is a refusal too (for the signed in, it is signing out).
        refused = status >= 400 or (persona == "anon" and self.last_location_is_signin)
        if unsafe and refused:
            after = self.snapshot()
            if after != self.state:
                changed = [name for name in after if after[name] != self.state[name]]
                self.failures.append(f"{where}: refused with {status} but changed {changed}")
                self.state = after
        elif unsafe:
            self.state = None  # accepted: whatever it wrote is the new baseline
        if persona == "customer" and "portal_session" in cookies:
            await self.sign_in_customer()  # signed out (or in again by a link): carry on signed in
            self.state = None
        if persona == "operator" and "ops_session" in cookies:
            await self.sign_in_operator()
        return status

    def report(self) -> None:
        unique = list(dict.fromkeys(self.failures))
        assert not unique, f"{len(unique)} problems in {self.sent} requests:\n" + "\n".join(unique[:150])


@pytest.fixture
async def sweep(sweep_client, connection, db, world, aredis):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as anon:
        yield Sweep(client=sweep_client, anon=anon, connection=connection, db=db, world=world, aredis=aredis)


# -- what is sent ---------------------------------------------------------------

def base_fields(token: str) -> dict:
    """Every field any form reads, plausible but refused by the domain where that is possible
    (a stale version), so that each malformed variant differs from it in one way."""
    return {"csrf_token": token, "csrf": token, "identifier": "someone@example.com", "slot": SLOT, "version": "999",
            "reason": "changed my mind", "decision": "approve", "comment": "ok", "pref": "reminders:email",
            "locale": "en", "test_card": "visa", "setup_intent": "seti_123", "token": "wrong-ops-token",
            "next": "/ops"}


def body_variants(token: str):
    """(label, body, headers) for an unsafe request carrying ``token`` as its CSRF token."""
    base = base_fields(token)
    yield "plausible form", form(base), FORM
    yield "only the token", form({"csrf_token": token, "csrf": token}), FORM
    yield "empty form", b"", FORM
    yield "repeated fields", form([*base.items(), *((k, "x") for k in base), ("pref", "billing:sms")]), FORM
    tokens = {"csrf_token": token, "csrf": token}
    for value in BAD_VALUES:
        yield f"every field {value[:10]!r}", form({**dict.fromkeys(base, value), **tokens}), FORM
    for name, values in FIELD_VALUES.items():
        for value in values:
            yield f"{name}={value[:24]!r}", form({**base, name: value}), FORM
    yield "huge fields", form({**dict.fromkeys(base, "x" * 100_000), **tokens}), FORM
    yield "body over the limit", form({**base, "comment": "x" * 2_200_000}), FORM
    raw = f"csrf_token={token}&csrf={token}&".encode()
    yield "invalid UTF-8", raw + b"reason=\xff\xfe&slot=\xc3\x28&identifier=\xff@x&locale=\xff", FORM
    yield "percent-encoded invalid UTF-8", raw + b"reason=%ff%fe&slot=%c3%28&identifier=%ff@x", FORM
    yield "unknown charset", raw + b"reason=x", {"Content-Type": "application/x-www-form-urlencoded; charset=nope"}
    yield "utf-16 charset", raw + b"reason=x", {"Content-Type": "application/x-www-form-urlencoded; charset=utf-16"}
    yield "multipart without boundary", raw, {"Content-Type": "multipart/form-data"}
    yield "multipart garbage", b"--zz\r\ngarbage\r\n\r\n", {"Content-Type": "multipart/form-data; boundary=zz"}
    yield "json body", json.dumps(base).encode(), {"Content-Type": "application/json"}
    yield "plain text body", raw, {"Content-Type": "text/plain"}
    yield "no content type", raw, {"Content-Type": ""}
    # The server drops a connection whose body it could not decode: do not let the client reuse it.
    yield "bad gzip", raw, {**FORM, "Content-Encoding": "gzip", "Connection": "close"}
    # The token in the header: the body is then not needed for the CSRF check, but still read by the handler.
    for label, body, ctype in (("invalid UTF-8", b"reason=\xff&slot=\xff", FORM["Content-Type"]),
                               ("unknown charset", b"reason=x", "application/x-www-form-urlencoded; charset=nope"),
                               ("multipart garbage", b"--zz\r\ngarbage\r\n\r\n", "multipart/form-data; boundary=zz")):
        yield f"header token, {label}", body, {"Content-Type": ctype, "X-CSRF-Token": token}


def multipart_file_body(token: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("csrf_token", token)
    for name in ("slot", "reason", "pref", "locale", "identifier", "decision"):
        data.add_field(name, b"\xff\xfe file", filename="x.bin", content_type="application/octet-stream")
    return data


def csrf_variants(token: str, root: str):
    """(label, body, headers): a valid form sent with a bad token or from somewhere else."""
    good = form(base_fields(token))
    yield "no token", form({k: v for k, v in base_fields(token).items() if k not in ("csrf_token", "csrf")}), FORM
    yield "wrong token", form(base_fields("0" * 43)), FORM
    yield "wrong token in the header", good, {**FORM, "X-CSRF-Token": "0" * 43}
    yield "foreign origin", good, {**FORM, "Origin": "https://evil.example"}
    yield "null origin", good, {**FORM, "Origin": "null"}
    yield "malformed origin", good, {**FORM, "Origin": "http://["}
    yield "malformed referer", good, {**FORM, "Referer": "http://[::1/x"}
    yield "foreign referer", good, {**FORM, "Referer": "https://evil.example/page"}
    yield "cross-site fetch", good, {**FORM, "Sec-Fetch-Site": "cross-site"}
    yield "origin lookalike", good, {**FORM, "Origin": root + ".evil.example"}


# -- the sweep ------------------------------------------------------------------

def unsafe_methods(methods: set[str]) -> list[str]:
    return sorted(m for m in methods if m not in ("GET", "HEAD"))


async def sweep_route(sweep: Sweep, family: str, pattern: str, methods: set[str], personas: list[str]) -> None:
    world = sweep.world
    valid = {name: world.value(pattern, name) for name in params_of(pattern)}
    path = fill(pattern, valid)
    for persona in personas:
        closed = set()  # methods that turn this persona away before reading anything
        for method in sorted(methods):
            status = await sweep.send(family, persona, "valid ids", method, path, body=b"" if method != "GET" else None,
                                      headers=FORM if method != "GET" else None)
            if persona == "anon" and (status == 401 or sweep.last_location_is_signin):
                closed.add(method)
            if method == "HEAD":
                continue
            # Each path parameter in turn made bad, the others valid.
            for name in valid:
                for bad in BAD_SEGMENTS:
                    await sweep.send(family, persona, f"{name}={bad[:16]}", method, fill(pattern, {**valid, name: bad}),
                                     body=b"" if method != "GET" else None, headers=FORM if method != "GET" else None)
        for method in WRONG_METHODS:
            if method not in methods and not (method == "GET" and "HEAD" in methods):
                await sweep.send(family, persona, "wrong method", method, path, body=b"x", headers=FORM)
        if "GET" in methods:
            for query in BAD_QUERIES[:3] if "GET" in closed else BAD_QUERIES:
                await sweep.send(family, persona, "query", "GET", path, query=query)
        for method in unsafe_methods(methods):
            if method in closed:
                # Turned away at the door: a few bodies to show that nothing is read or changed, not all of them.
                for label, body, headers in list(body_variants(""))[-12:]:
                    await sweep.send(family, persona, label, method, path, body=body, headers=headers)
                continue
            for query in ("lang=zz", "mid=%C2%B2", "next=%FF", "a=1&a=2"):
                await sweep.send(family, persona, "query", method, path, query=query, body=b"", headers=FORM)
            token = await csrf_token_for(sweep, persona, path)
            for label, body, headers in body_variants(token):
                await sweep.send(family, persona, label, method, path, body=body, headers=headers)
            data = multipart_file_body(token)
            await sweep.send(family, persona, "files for fields", method, path, body=data, headers=None)
            for label, body, headers in csrf_variants(token, sweep.root):
                await sweep.send(family, persona, label, method, path, body=body, headers=headers)
    # Headers that try the cookie, language and auth parsing, signed out.
    if "GET" in methods:
        for headers in BAD_HEADERS:
            await sweep.send(family, "anon", f"headers {list(headers)}", "GET", path, headers=headers)


async def csrf_token_for(sweep: Sweep, persona: str, path: str) -> str:
    """The token a real form for ``path`` carries: the page's own (sign-in and link pages sign
    theirs without a session), else the persona's session token."""
    async with sweep.anon.get(URL(sweep.root + path, encoded=True), allow_redirects=False) as resp:
        match = CSRF_RE.search(await resp.text()) if resp.status == 200 else None
    if match and match.group(1):
        return match.group(1)
    return sweep.ops_csrf if persona == "operator" else sweep.customer_csrf if persona == "customer" else ""


async def sweep_family(sweep: Sweep, family: str, personas: list[str]) -> int:
    swept = 0
    for pattern, methods in sorted(routes(sweep.client.app).items()):
        if family_of(pattern) == family:
            await sweep_route(sweep, family, pattern, methods, personas)
            swept += 1
    return swept


def test_every_route_is_swept_or_skipped(settings):
    app = create_app(settings)
    unknown = [pattern for pattern in routes(app) if family_of(pattern) == "unknown"]
    assert not unknown, f"add these routes to FAMILIES (or, with a reason, SKIPPED): {unknown}"


async def test_portal_routes(sweep):
    await sweep.sign_in_customer()
    assert await sweep_family(sweep, "portal", ["anon", "customer"]) >= 20
    sweep.report()


async def test_ops_routes(sweep):
    await sweep.sign_in_operator()
    assert await sweep_family(sweep, "ops", ["anon", "operator"]) >= 10
    # Scripts use the bearer token instead of a session: a wrong one, and the right one with bad ids.
    for token in ("wrong", OPS_TOKEN):
        for action in ("retry", "discard"):
            for queue, rid in (("messages", "nope"), ("%00", "x" * 5000), ("..", "%FF"), ("messages", "-1")):
                await sweep.send("ops", "anon", f"bearer {token[:5]}", "POST",
                                 f"/ops/dead-letters/{queue}/{rid}/{action}", body=b"",
                                 headers={**FORM, "Authorization": f"Bearer {token}"})
    sweep.report()


async def test_dev_and_unsubscribe_routes(sweep):
    assert await sweep_family(sweep, "dev", ["anon"]) >= 1  # the test app runs in dev mode
    assert await sweep_family(sweep, "unsubscribe", ["anon"]) >= 1
    sweep.report()


def twilio_variants(world: World):
    """(label, query, params) for signed Twilio callbacks with malformed content."""
    sid = world.sms_message.provider_id
    status = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    yield "status", "no sid", f"mid={world.sms_message.id}", {"MessageStatus": "delivered"}
    yield "status", "no status", "", {"MessageSid": sid}
    for mid in ("-1", "%C2%B2", "%D9%A1", "99999999999999999999", "9" * 18, "%00", "x" * 3000):
        yield "status", f"mid={mid[:12]}", f"mid={mid}", status
    for name in ("MessageSid", "MessageStatus", "ErrorCode"):
        for value in ("\x00", "x" * 5000, "\u202e", "", "\u00b2"):
            yield "status", f"{name}={value[:8]!r}", "", {**status, "MessageStatus": "failed", name: value}
    inbound = {"From": world.me.phone, "To": "+15005550006", "Body": "STOP", "MessageSid": "SMsweep"}
    yield "inbound", "no From", "", {"Body": "STOP"}
    for name in ("From", "Body", "MessageSid"):
        for value in ("\x00", "x" * 5000, "\u202e", "", "HELP", "\u00b2", "STOP\x00"):
            yield "inbound", f"{name}={value[:8]!r}", "", {**inbound, name: value}


def sendgrid_variants(world: World):
    """(label, payload) for signed SendGrid batches with malformed content."""
    message = world.email_message
    good = {"event": "delivered", "sg_event_id": "ev-1", "email": world.me.email, MESSAGE_ID_ARG: str(message.id),
            "sg_message_id": f"{message.provider_id}.filter"}
    for raw in ("", "null", "{}", "[]", "[1]", "[[]]", "not json", '"x"', "[{}]", "1e999", "[" * 5000 + "]" * 5000):
        yield f"payload {raw[:10]!r}", raw
    for name in ("event", "sg_event_id", "email", MESSAGE_ID_ARG, "sg_message_id", "reason", "type"):
        for value in ("\x00", "x" * 5000, "\u202e", "-1", "\u00b2", "99999999999999999", [], {}, None, 1e308, True):
            for kind in ("delivered", "bounce", "group_unsubscribe"):
                event = {**good, "event": kind, "sg_event_id": f"ev-{name}-{kind}-{str(value)[:5]}", name: value}
                yield f"{kind} {name}={str(value)[:8]!r}", json.dumps([event])


async def test_webhook_routes(sweep, sendgrid_key, settings):
    assert await sweep_family(sweep, "webhook", ["anon"]) >= 3
    world = sweep.world
    # Signed the way the providers sign: past verification, so the content itself is what is bad.
    for path_name, label, query, params in twilio_variants(world):
        path = f"/webhooks/twilio/{path_name}"
        signed = sign_twilio(TWILIO_TOKEN, settings.public_base_url + path + (f"?{query}" if query else ""), params)
        await sweep.send("webhook", "anon", f"signed {label}", "POST", path, query=query, body=signed.body,
                         headers=signed.headers)
    events_url = f"{settings.public_base_url}/webhooks/sendgrid/events"
    for label, payload in sendgrid_variants(world):
        signed = sign_sendgrid_events(sendgrid_key[0], payload, url=events_url)
        await sweep.send("webhook", "anon", f"signed {label}", "POST", "/webhooks/sendgrid/events", body=signed.body,
                         headers=signed.headers)
    # Timestamps and signatures that are not what they claim to be.
    good = sign_sendgrid_events(sendgrid_key[0], "[]", url="x")
    for stamp, signature in (("\u00b2", good.headers["X-Twilio-Email-Event-Webhook-Signature"]),
                             ("9" * 400, "x"), ("-1", "x"), ("", ""), ("1700000000", "!!!"),
                             (good.headers["X-Twilio-Email-Event-Webhook-Timestamp"], "AAAA"),
                             (good.headers["X-Twilio-Email-Event-Webhook-Timestamp"], "x" * 5000)):
        await sweep.send("webhook", "anon", f"stamp {stamp[:8]!r}", "POST", "/webhooks/sendgrid/events", body=b"[]",
                         headers={"Content-Type": "application/json",
                                  "X-Twilio-Email-Event-Webhook-Signature": signature,
                                  "X-Twilio-Email-Event-Webhook-Timestamp": stamp})
    for header in ("\u00b2", "x" * 5000, "=="):
        await sweep.send("webhook", "anon", "twilio signature", "POST", "/webhooks/twilio/inbound",
                         body=form({"From": "+15145550000", "Body": "STOP"}),
                         headers={**FORM, "X-Twilio-Signature": header, "X-Twilio-Signature-Settings": header})
    sweep.report()

"""Every kind of bad input is a 422 with field errors, and nothing is written."""

import pytest
from sqlalchemy import func, select

from portal.models import Booking, Customer, Invoice, Message, Quote, ServiceProvider
from tests.factories import make_customer
from tests.fakes.dns import resolve_as
from tests.portal_web.api.conftest import Api

BOOKING = {"customer": "c1", "starts_at": "2030-05-01T14:00:00-04:00", "ends_at": "2030-05-01T16:00:00-04:00"}


def counts(db):
    db.expire_all()
    return {m.__name__: db.scalar(select(func.count()).select_from(m))
            for m in (Customer, Booking, Invoice, Quote, Message, ServiceProvider)}


@pytest.fixture
def customer(db, biz):
    c = make_customer(db, biz, external_id="c1")
    db.commit()
    return c


async def test_malformed_json(api, db, biz):
    before = counts(db)
    status, body = await api.put("/customers/c2", data=b'{"name": "x",', headers={"Content-Type": "application/json"})
    assert status == 422 and body["error"] == "malformed JSON" and "body" in body["fields"]
    status, body = await api.put("/customers/c2", data=b'[1, 2]', headers={"Content-Type": "application/json"})
    assert status == 422 and body["fields"] == {"body": "expected an object"}
    status, body = await api.put("/customers/c2", data=b'{"name": NaN}', headers={"Content-Type": "application/json"})
    assert status == 422
    assert counts(db) == before


@pytest.mark.parametrize("path,payload,field,message", [
    ("/customers/c2", {"name": "X", "nickname": "x"}, "nickname", "unknown field"),
    ("/customers/c2", {"name": "X", "email": "not-an-email"}, "email", "not a valid email address"),
    ("/customers/c2", {"name": "X", "email": "a@b@c.com"}, "email", "not a valid email address"),
    ("/customers/c2", {"name": "X", "phone": "+1555123"}, "phone", "not a valid phone number"),
    ("/customers/c2", {"name": "X", "phone": "call me"}, "phone", "not a phone number"),
    ("/customers/c2", {"name": ""}, "name", "at least 1 character"),
    ("/customers/c2", {"name": " \t "}, "name", "must not be blank"),
    # The document's maxLength holds for the name as sent, spaces included (found by the fuzzer).
    ("/customers/c2", {"name": " " + "x" * 200}, "name", "at most 200 characters"),
    ("/customers/c2", {"email": "a@example.com"}, "name", "required"),
    ("/customers/c2", {"name": "X", "locale": "de"}, "locale", "'en' or 'fr'"),
    ("/customers/c2", {"name": "X", "timezone": "Mars/Base"}, "timezone", "unknown timezone"),
    ("/customers/c2", {"name": "X", "communication_preferences": {"account": {"email": False}}},
     "communication_preferences.account.[key]", "Input should be"),
    ("/customers/c2", {"name": "X", "sms_consent": {"granted": True, "by": "x"}}, "sms_consent.by", "unknown field"),
    ("/bookings/b1", {**BOOKING, "starts_at": "2030-05-01T14:00:00"}, "starts_at", "must include a timezone"),
    ("/bookings/b1", {**BOOKING, "ends_at": "2030-05-01T13:00:00-04:00"}, "ends_at", "must be after starts_at"),
    ("/bookings/b1", {**BOOKING, "ends_at": BOOKING["starts_at"]}, "ends_at", "must be after starts_at"),
    # At the ends of the calendar the UTC time or the reminders' times do not exist: both were a 500.
    ("/bookings/b1", {**BOOKING, "starts_at": "9999-12-31T23:00:00-05:00", "ends_at": "9999-12-31T23:30:00-05:00"},
     "starts_at", "between 1900 and 9000"),
    ("/bookings/b1", {**BOOKING, "starts_at": "0001-01-01T10:00:00Z", "ends_at": "0001-01-01T11:00:00Z"},
     "starts_at", "between 1900 and 9000"),
    ("/bookings/b1", {**BOOKING, "ends_at": "9999-12-31T23:30:00-05:00"}, "ends_at", "between 1900 and 9000"),
    ("/bookings/b1", {**BOOKING, "customer": "nobody"}, "customer", "unknown customer 'nobody'"),
    ("/bookings/b1", {**BOOKING, "provider": "p-none"}, "provider", "unknown provider 'p-none'"),
    ("/bookings/b1", {**BOOKING, "service": "s-none"}, "service", "unknown service 's-none'"),
    ("/bookings/b1", {**BOOKING, "attachments": [{"filename": "a.pdf", "url": "ftp://x"}]},
     "attachments.0.url", "http(s) URL"),
    ("/invoices/i1", {"customer": "c1", "number": "1", "amount_cents": -5, "issued_on": "2030-01-01",
                      "due_on": "2030-01-10"}, "amount_cents", "greater than or equal to 0"),
    ("/invoices/i1", {"customer": "c1", "number": "1", "amount_cents": 5, "issued_on": "2030-01-10",
                      "due_on": "2030-01-01"}, "due_on", "must not be before issued_on"),
    ("/invoices/i1", {"customer": "c1", "number": "1", "amount_cents": 5, "issued_on": "2030-01-01",
                      "due_on": "2030-01-10", "booking": "nope"}, "booking", "unknown booking 'nope'"),
    ("/quotes/q1", {"customer": "c1", "number": "Q", "total_cents": 5, "currency": "cad"}, "currency", "pattern"),
    # Amounts live in 32-bit integer columns: a larger one was a 500 on PostgreSQL (found by the fuzzer).
    ("/quotes/q1", {"customer": "c1", "number": "Q", "total_cents": 2**31}, "total_cents", "less than or equal"),
    ("/invoices/i1", {"customer": "c1", "number": "1", "amount_cents": 5, "amount_paid_cents": 99999999999,
                      "issued_on": "2030-01-01", "due_on": "2030-01-10"}, "amount_paid_cents", "less than or equal"),
    ("/service-providers/p1", {"name": "A", "working_hours": {"mon": [["17:00", "09:00"]]}},
     "working_hours.mon.0", "end must be after start"),
    ("/service-providers/p1", {"name": "A", "working_hours": {"someday": []}}, "working_hours.someday.[key]",
     "Input should be"),
    ("/services/s1", {"name": "A", "duration_minutes": 0}, "duration_minutes", "greater than or equal to 1"),
    ("/settings", {"webhook_url": "not a url"}, "webhook_url", "http(s) URL"),
    ("/settings", {"embed_origins": ["https://x.example/path"]}, "embed_origins.0", "origin"),
    ("/settings", {"branding": {"primary_color": "blue"}}, "branding.primary_color", "pattern"),
    ("/settings", {"quiet_hours": {"start": "25:00"}}, "quiet_hours.start", "pattern"),
    ("/settings", {"quiet_hours": {"start": "22:00"}}, "quiet_hours.start", "never shrink"),
    ("/settings", {"quiet_hours": {"end": "07:00"}}, "quiet_hours.end", "never shrink"),
    ("/settings", {"portal_enabled": None}, "portal_enabled", "must not be null"),
    ("/settings", {"reminder_offsets": [0]}, "reminder_offsets.0", "greater than or equal to 1"),
    # JSON types are taken as documented, not coerced (found by the fuzzer).
    ("/bookings/b1", {**BOOKING, "invite": 0}, "invite", "valid boolean"),
    ("/bookings/b1", {**BOOKING, "starts_at": 1904004000}, "starts_at", "valid datetime"),
    ("/customers/c2", {"name": "X", "communication_preferences": {"reminders": {"email": "no"}}},
     "communication_preferences.reminders.email", "valid boolean"),
    ("/invoices/i1", {"customer": "c1", "number": "1", "amount_cents": "5", "issued_on": "2030-01-01",
                      "due_on": "2030-01-10"}, "amount_cents", "valid integer"),
    ("/settings", {"max_reschedules": 1.5}, "max_reschedules", "valid integer"),
])
async def test_field_errors_write_nothing(api, db, customer, path, payload, field, message):
    before = counts(db)
    status, body = await api.put(path, payload)
    assert status == 422, body
    assert field in body["fields"], body
    assert message in body["fields"][field], body
    assert counts(db) == before


async def test_the_largest_amount_is_stored(api, customer):
    status, body = await api.put("/quotes/q1", {"customer": "c1", "number": "Q", "total_cents": 2**31 - 1})
    assert status == 201 and body["total_cents"] == 2**31 - 1


@pytest.mark.parametrize("depth", [33, 990, 100_000])
async def test_deeply_nested_json_is_refused(api, db, depth):
    # Nesting near or past the interpreter's recursion limit was a 500.
    before = counts(db)
    body = b'{"name": "x", "a": ' + b"[" * depth + b"]" * depth + b"}"
    status, resp = await api.put("/customers/c2", data=body, headers={"Content-Type": "application/json"})
    assert status == 422 and resp["error"] == "request body nested too deeply", resp
    status, resp = await api.post("/invitations", data=body, headers={"Content-Type": "application/json"})
    assert status == 422 and resp["error"] == "request body nested too deeply", resp
    assert counts(db) == before


async def test_put_without_a_body_is_refused(api, db, biz):
    # Found by the fuzzer: the document requires a PUT's body, and an empty one used to pass as {}.
    for path in ("/settings", "/customers/c2"):
        status, body = await api.put(path)
        assert status == 422 and body["fields"] == {"body": "required"}, (path, body)
    assert (await api.put("/settings", {}))[0] == 200


@pytest.mark.parametrize("path,payload,field", [
    ("/customers/c2", {"name": "Jane\x00"}, "name"),
    ("/bookings/b1", {**BOOKING, "notes": "gate code\x00"}, "notes"),
    ("/invoices/i1", {"customer": "c1\x00", "number": "1", "amount_cents": 5, "issued_on": "2030-01-01",
                      "due_on": "2030-01-10", "lines": [{"description": "x\x00", "unit_cents": 5}]}, "customer"),
    ("/quotes/q1", {"customer": "c1", "number": "Q", "total_cents": 5,
                    "lines": [{"description": "x\x00", "unit_cents": 5}]}, "lines.0.description"),
    ("/settings", {"branding": {"help_reply": "\x00"}}, "branding.help_reply"),
])
async def test_nul_characters_are_refused(api, db, customer, path, payload, field):
    # Found by the fuzzer: PostgreSQL cannot store NUL in text, so these were 500s there.
    before = counts(db)
    status, body = await api.put(path, payload)
    assert status == 422 and body["fields"] == {field: "must not contain NUL characters"}, body
    assert counts(db) == before


async def test_nul_in_an_id_is_refused(api, customer):
    for method, path in (("GET", "/customers/c%00"), ("GET", "/bookings/%00"), ("POST", "/bookings/b%00/cancel"),
                         ("GET", "/messages?customer=c1%00")):
        status, body = await api.call(method, path)
        assert status == 422, (path, status, body)


async def test_names_are_stored_without_surrounding_spaces(api):
    status, body = await api.put("/customers/c2", {"name": "  Jane Doe "})
    assert status == 201 and body["name"] == "Jane Doe"


async def test_several_errors_are_reported_together(api, customer):
    status, body = await api.put("/customers/c3", {"name": "", "email": "x", "phone": "1", "extra": 1})
    assert status == 422
    assert set(body["fields"]) == {"name", "email", "phone", "extra"}


async def test_invalid_settings_change_nothing(api, db, biz):
    status, _ = await api.put("/settings", {"auto_invite": True, "webhook_url": "nope"})
    assert status == 422
    assert (await api.get("/settings"))[1]["auto_invite"] is False


async def test_failed_booking_update_leaves_the_booking_as_it_was(api, customer, db):
    assert (await api.put("/bookings/b1", BOOKING))[0] == 201
    status, _ = await api.put("/bookings/b1", {**BOOKING, "starts_at": "2030-06-01T10:00:00Z", "provider": "zzz"})
    assert status == 422
    body = (await api.get("/bookings/b1"))[1]
    assert body["version"] == 1 and body["starts_at"] == "2030-05-01T18:00:00Z"


async def test_bad_path_id_and_unknown_route(api):
    status, body = await api.put("/customers/" + "x" * 101, {"name": "X"})
    assert status == 422 and "external_id" in body["fields"]
    status, body = await api.get("/nothing-here")
    assert status == 404 and "error" in body
    status, body = await api.call("DELETE", "/customers/c1")
    assert status == 405


async def test_national_phone_numbers_are_read_in_the_business_country(api):
    status, body = await api.put("/customers/c5", {"name": "X", "phone": "(514) 555-0123", "email": "A@Example.COM"})
    assert status == 201
    assert body["phone"] == "+15145550123" and body["email"] == "A@example.com"


@pytest.mark.parametrize("url,message", [
    ("http://127.0.0.1:8080/hooks", "resolves to a private or internal network address (127.0.0.1)"),
    ("http://169.254.169.254/latest/meta-data/", "private or internal network address (169.254.169.254)"),
    ("https://[::ffff:10.0.0.1]/hooks", "private or internal network address (::ffff:10.0.0.1)"),
    ("https://intranet.example.com/hooks", "private or internal network address (10.1.2.3)"),
    ("https://nowhere.example/hooks", "the host 'nowhere.example' does not resolve"),
])
async def test_webhook_url_must_be_public(api, db, biz, monkeypatch, url, message):
    resolve_as(monkeypatch, {"intranet.example.com": ["10.1.2.3"]})
    status, body = await api.put("/settings", {"auto_invite": True, "webhook_url": url})
    assert status == 422, body
    assert message in body["fields"]["webhook_url"], body
    out = (await api.get("/settings"))[1]
    assert out["webhook_url"] is None and out["auto_invite"] is False


async def test_private_webhook_url_allowed_when_the_setting_says_so(aiohttp_client, settings, session_factory, aredis,
                                                                      stub_broker, biz):
    from portal_web.app import create_app

    app = create_app(settings.replace(webhook_allow_private=True), session_factory=session_factory, redis_client=aredis)
    api = Api(await aiohttp_client(app), biz.api_key)
    status, body = await api.put("/settings", {"webhook_url": "http://127.0.0.1:8080/hooks"})
    assert status == 200 and body["webhook_url"] == "http://127.0.0.1:8080/hooks"

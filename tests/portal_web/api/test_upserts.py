"""PUT upserts keyed by the booking system's ids: created once, updated in place,
notices queued once per real change."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from portal.models import (
    Booking,
    BookingAttachment,
    CommunicationPreference,
    Consent,
    Customer,
    Invoice,
    Message,
    Quote,
    Reminder,
    Service,
    ServiceProvider,
)
from tests.fakes.dns import PUBLIC, resolve_as

START = (datetime.now(timezone.utc) + timedelta(days=10)).replace(microsecond=0)


def iso(dt):
    return dt.isoformat()


def booking_body(**over):
    body = {"customer": "c1", "provider": "p1", "service": "s1", "starts_at": iso(START),
            "ends_at": iso(START + timedelta(hours=2)), "address": "1 Main St"}
    body.update(over)
    return body


def count(db, model, **where):
    db.expire_all()
    q = select(func.count()).select_from(model)
    for name, value in where.items():
        q = q.where(getattr(model, name) == value)
    return db.scalar(q)


def kinds(db):
    db.expire_all()
    return sorted(db.scalars(select(Message.kind)).all())


@pytest.fixture
def live(monkeypatch):
    """Live events published after commit (portal.events.publish)."""
    seen = []
    monkeypatch.setattr("portal.events.publish", lambda bid, cid, type_, data=None: seen.append((type_, data)))
    return seen


@pytest.fixture
async def catalogue(api):
    assert (await api.put("/customers/c1", {"name": "Jane", "email": "jane@example.com", "phone": "+15145550123"}))[0] == 201
    assert (await api.put("/service-providers/p1", {"name": "Alex"}))[0] == 201
    assert (await api.put("/services/s1", {"name": "Clean", "duration_minutes": 120}))[0] == 201


async def test_customer_put_twice_is_one_row(api, db):
    body = {"name": "Jane", "email": "jane@example.com", "locale": "fr"}
    status, first = await api.put("/customers/c1", body)
    assert status == 201 and first["locale"] == "fr"
    status, second = await api.put("/customers/c1", body)
    assert status == 200 and second["updated_at"] == first["updated_at"]
    assert count(db, Customer, external_id="c1") == 1
    status, third = await api.put("/customers/c1", {"name": "Jane Smith"})
    assert status == 200 and third["name"] == "Jane Smith" and third["email"] == "jane@example.com"
    assert (await api.get("/customers/c1"))[1] == third


async def test_customer_consent_and_preferences(api, db):
    body = {"name": "Jane", "phone": "+15145550123",
            "sms_consent": {"granted": True, "wording": "Texts about my bookings", "source": "booking_system"},
            "communication_preferences": {"reminders": {"sms": False, "email": True}, "billing": {"email": False}}}
    status, out = await api.put("/customers/c1", body)
    assert status == 201 and out["sms_consent"] is True
    assert out["communication_preferences"] == {"reminders": {"sms": False, "email": True}, "billing": {"email": False}}
    await api.put("/customers/c1", body)  # a repeat adds no second consent record
    assert count(db, Consent) == 1 and count(db, CommunicationPreference) == 3
    consent = db.scalar(select(Consent))
    assert (consent.channel, consent.granted, consent.wording) == ("sms", True, "Texts about my bookings")
    out = (await api.put("/customers/c1", {**body, "sms_consent": {"granted": False}}))[1]
    assert out["sms_consent"] is False and count(db, Consent) == 2


async def test_new_address_resets_its_bounce_status(api, db, biz):
    await api.put("/customers/c1", {"name": "Jane", "email": "old@example.com"})
    db.scalar(select(Customer).where(Customer.external_id == "c1")).email_status = "bounced"
    db.commit()
    assert (await api.put("/customers/c1", {"name": "Jane", "email": "old@example.com"}))[1]["email_status"] == "bounced"
    assert (await api.put("/customers/c1", {"name": "Jane", "email": "new@example.com"}))[1]["email_status"] == "ok"


async def test_provider_and_service(api, db):
    body = {"name": "Alex", "photo_url": "https://cdn.example.com/alex.jpg",
            "working_hours": {"mon": [["08:00", "12:00"], ["13:00", "17:00"]]}}
    status, out = await api.put("/service-providers/p1", body)
    assert status == 201 and out["working_hours"] == body["working_hours"]
    assert (await api.put("/service-providers/p1", body))[0] == 200
    assert (await api.put("/services/s1", {"name": "Clean", "duration_minutes": 90}))[1]["duration_minutes"] == 90
    assert count(db, ServiceProvider) == 1 and count(db, Service) == 1
    assert (await api.get("/service-providers/p1"))[1]["photo_url"] == body["photo_url"]
    assert (await api.get("/services/nope"))[0] == 404


async def test_booking_create_confirms_once_and_plans_reminders(api, db, catalogue, live):
    status, out = await api.put("/bookings/b1", booking_body())
    assert status == 201 and out["version"] == 1 and out["customer"] == "c1" and out["provider"] == "p1"
    assert out["starts_at"] == START.isoformat().replace("+00:00", "Z")
    status, again = await api.put("/bookings/b1", booking_body())
    assert status == 200 and again["version"] == 1
    assert count(db, Booking) == 1
    assert kinds(db) == ["booking_confirmation"]
    message = db.scalar(select(Message))
    assert message.idempotency_key.endswith(f"booking:{message.booking_id}:v1:email")
    assert count(db, Reminder, status="planned") == 2
    assert [t for t, _ in live] == ["booking_updated"]  # the no-op PUT emitted nothing


async def test_booking_time_change_bumps_version_and_reconfirms(api, db, catalogue, live):
    await api.put("/bookings/b1", booking_body())
    later = START + timedelta(days=1)
    status, out = await api.put("/bookings/b1", booking_body(starts_at=iso(later),
                                                             ends_at=iso(later + timedelta(hours=2))))
    assert status == 200 and out["version"] == 2
    assert kinds(db) == ["booking_confirmation", "reschedule_confirmation"]
    reminders = db.scalars(select(Reminder)).all()
    assert sorted((r.booking_version, r.status) for r in reminders) == [
        (1, "cancelled"), (1, "cancelled"), (2, "planned"), (2, "planned")]
    # Same time again: nothing new.
    await api.put("/bookings/b1", booking_body(starts_at=iso(later), ends_at=iso(later + timedelta(hours=2))))
    assert len(kinds(db)) == 2
    # A change that is not a move (the address) updates without a notice or a new version.
    out = (await api.put("/bookings/b1", booking_body(starts_at=iso(later), ends_at=iso(later + timedelta(hours=2)),
                                                      address="2 Side St")))[1]
    assert out["version"] == 2 and out["address"] == "2 Side St" and len(kinds(db)) == 2
    assert [data["version"] for t, data in live if t == "booking_updated"] == [1, 2, 2]


async def test_notify_false_and_past_bookings_send_nothing(api, db, catalogue):
    assert (await api.put("/bookings/b1", booking_body(notify=False)))[0] == 201
    past = datetime.now(timezone.utc) - timedelta(days=3)
    await api.put("/bookings/b2", booking_body(starts_at=iso(past), ends_at=iso(past + timedelta(hours=1)),
                                               status="completed"))
    assert kinds(db) == []
    assert count(db, Reminder, status="planned") == 2  # reminders still planned for b1


async def test_booking_marked_completed_by_mistake_and_reopened_gets_its_reminders_back(api, db, catalogue, live):
    await api.put("/bookings/b1", booking_body())
    await api.put("/bookings/b1", booking_body(status="completed"))
    assert count(db, Reminder, status="planned") == 0
    status, out = await api.put("/bookings/b1", booking_body(status="scheduled"))
    assert status == 200 and out["status"] == "scheduled"
    assert count(db, Reminder, status="planned") == 2


async def test_cancel_is_idempotent(api, db, catalogue, live):
    await api.put("/bookings/b1", booking_body())
    status, out = await api.post("/bookings/b1/cancel", {"reason": "Customer called"})
    assert status == 200 and out["status"] == "cancelled" and out["version"] == 2
    assert out["cancel_reason"] == "Customer called"
    status, again = await api.post("/bookings/b1/cancel", {"reason": "Customer called"})
    assert status == 200 and again["version"] == 2
    assert kinds(db) == ["booking_confirmation", "cancellation_confirmation"]
    assert count(db, Reminder, status="planned") == 0
    assert (await api.post("/bookings/nope/cancel"))[0] == 404
    # A later PUT without a status keeps it cancelled; an explicit status reinstates it.
    assert (await api.put("/bookings/b1", booking_body()))[1]["status"] == "cancelled"
    out = (await api.put("/bookings/b1", booking_body(status="scheduled")))[1]
    assert out["status"] == "scheduled" and out["version"] == 3
    assert kinds(db) == ["booking_confirmation", "booking_confirmation", "cancellation_confirmation"]


async def test_double_booking_a_provider_is_a_conflict(api, db, catalogue):
    await api.put("/bookings/b1", booking_body())
    status, body = await api.put("/bookings/b2", booking_body())
    assert status == 409 and "b1" in body["error"]
    assert count(db, Booking) == 1


async def test_booking_attachments_are_replaced(api, db, catalogue):
    files = [{"filename": "checklist.pdf", "url": "https://files.example.com/c.pdf", "content_type": "application/pdf"}]
    out = (await api.put("/bookings/b1", booking_body(attachments=files)))[1]
    assert out["attachments"] == files
    await api.put("/bookings/b1", booking_body(attachments=files))
    assert count(db, BookingAttachment) == 1
    assert (await api.put("/bookings/b1", booking_body(attachments=[])))[1]["attachments"] == []
    assert count(db, BookingAttachment) == 0


async def test_invoice_issued_and_receipt(api, db, catalogue):
    body = {"customer": "c1", "number": "INV-1", "amount_cents": 18000, "issued_on": "2030-05-01",
            "due_on": "2030-05-15", "lines": [{"description": "Clean", "quantity": 1, "unit_cents": 18000}]}
    assert (await api.put("/invoices/i1", body))[0] == 201
    assert kinds(db) == []  # notify defaults to false for invoices
    assert (await api.put("/invoices/i2", {**body, "number": "INV-2", "notify": True}))[0] == 201
    assert (await api.put("/invoices/i2", {**body, "number": "INV-2", "notify": True}))[0] == 200
    assert kinds(db) == ["invoice_issued"]
    out = (await api.put("/invoices/i2", {**body, "number": "INV-2", "payment_status": "paid",
                                          "amount_paid_cents": 18000}))[1]
    assert out["payment_status"] == "paid" and out["status"] == "paid"
    await api.put("/invoices/i2", {**body, "number": "INV-2", "payment_status": "paid", "amount_paid_cents": 18000})
    assert kinds(db) == ["invoice_issued", "payment_receipt"]
    assert count(db, Invoice) == 2
    assert out["lines"] == body["lines"]


async def test_quote_ready_once(api, db, catalogue):
    body = {"customer": "c1", "number": "Q-1", "total_cents": 45000, "valid_until": "2030-06-01"}
    assert (await api.put("/quotes/q1", body))[0] == 201
    assert (await api.put("/quotes/q1", body))[0] == 200
    assert kinds(db) == ["quote_ready"] and count(db, Quote) == 1
    out = (await api.put("/quotes/q1", {**body, "status": "approved"}))[1]
    assert out["status"] == "approved" and out["decided_at"] is not None



async def test_open_pages_hear_nothing_of_a_section_the_business_hides(api, db, catalogue, live):
    """Booking pages show "A quote was updated" on a quote event: not for a section the customer cannot open."""
    assert (await api.put("/settings", {"show_invoices": False, "show_quotes": False}))[0] == 200
    invoice = {"customer": "c1", "number": "INV-1", "amount_cents": 100, "issued_on": "2030-05-01", "due_on": "2030-05-15"}
    assert (await api.put("/invoices/i1", invoice))[0] == 201
    assert (await api.put("/quotes/q1", {"customer": "c1", "number": "Q-1", "total_cents": 100}))[0] == 201
    assert live == []
    assert (await api.put("/settings", {"show_invoices": True, "show_quotes": True}))[0] == 200
    assert (await api.put("/invoices/i1", {**invoice, "amount_cents": 200}))[0] == 200
    assert (await api.put("/quotes/q1", {"customer": "c1", "number": "Q-1", "total_cents": 200}))[0] == 200
    assert [t for t, _ in live] == ["invoice_updated", "quote_updated"]

async def test_settings(api, biz, monkeypatch):
    resolve_as(monkeypatch, {"booking.example.com": [PUBLIC]})
    body = {"portal_enabled": False, "show_invoices": False, "allow_cancel": False, "cancel_min_notice_minutes": 120,
            "reminder_offsets": [60, 1440, 60], "quiet_hours": {"start": "20:00", "end": "09:30"},
            "auto_invite": True, "embed_origins": ["https://WWW.Example.com"],
            "webhook_url": "https://booking.example.com/hooks",
            "branding": {"name": "Renamed", "primary_color": "#112233", "support_email": "help@example.com"}}
    status, out = await api.put("/settings", body)
    assert status == 200
    assert out["portal_enabled"] is False and out["show_invoices"] is False and out["allow_cancel"] is False
    assert out["reminder_offsets"] == [1440, 60]
    assert out["quiet_hours"] == {"start": "20:00", "end": "09:30"}
    assert out["embed_origins"] == ["https://www.example.com"]
    assert out["branding"]["name"] == "Renamed" and out["branding"]["primary_color"] == "#112233"
    assert out["webhook_secret"]  # to verify our webhooks
    assert (await api.get("/settings"))[1] == out
    # Partial update; explicit null clears the webhook URL.
    out = (await api.put("/settings", {"webhook_url": None}))[1]
    assert out["webhook_url"] is None and out["auto_invite"] is True


async def test_new_reminder_offsets_apply_to_upcoming_bookings(api, db, catalogue):
    await api.put("/bookings/b1", booking_body())
    assert (await api.put("/settings", {"reminder_offsets": [2880, 1440]}))[0] == 200
    db.expire_all()
    planned = db.scalars(select(Reminder.offset_minutes).where(Reminder.status == "planned")).all()
    assert sorted(planned) == [1440, 2880]


async def test_quiet_hours_change_only_the_end_sent(api):
    assert (await api.put("/settings", {"quiet_hours": {"start": "20:00", "end": "09:30"}}))[0] == 200
    out = (await api.put("/settings", {"quiet_hours": {"start": "20:30"}}))[1]
    assert out["quiet_hours"] == {"start": "20:30", "end": "09:30"}
    out = (await api.put("/settings", {"quiet_hours": {"end": "10:00"}}))[1]
    assert out["quiet_hours"] == {"start": "20:30", "end": "10:00"}
    assert (await api.put("/settings", {"quiet_hours": {}}))[1]["quiet_hours"] == {"start": "20:30", "end": "10:00"}
    status, out = await api.put("/settings", {"quiet_hours": None})
    assert status == 422 and out["fields"] == {"quiet_hours": "must not be null"}


async def test_quiet_hours_that_would_cover_the_whole_day_are_refused(api):
    status, out = await api.put("/settings", {"quiet_hours": {"start": "12:00", "end": "12:00"}})
    assert status == 422 and "quiet_hours" in out["fields"]
    assert (await api.put("/settings", {"quiet_hours": {"end": "12:00"}}))[0] == 200  # 21:00-12:00 is fine
    status, out = await api.put("/settings", {"quiet_hours": {"start": "12:00"}})  # meets the stored end
    assert status == 422 and "quiet_hours" in out["fields"]
    assert (await api.get("/settings"))[1]["quiet_hours"] == {"start": "21:00", "end": "12:00"}

"""Invitations three ways: POST /invitations, invite: true, and auto-invite."""

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import select

from portal.models import Customer, Message

START = (datetime.now(timezone.utc) + timedelta(days=10)).replace(microsecond=0)
BOOKING = {"customer": "c1", "starts_at": START.isoformat(), "ends_at": (START + timedelta(hours=1)).isoformat()}


def invitations(db):
    db.expire_all()
    return db.scalars(select(Message).where(Message.kind == "invitation").order_by(Message.id)).all()


@pytest.fixture
async def customer(api):
    assert (await api.put("/customers/c1", {"name": "Jane", "email": "jane@example.com"}))[0] == 201


async def test_post_invitation_then_cooldown_then_force(api, db, customer):
    status, body = await api.post("/invitations", {"customer": "c1"})
    assert status == 202 and body["status"] == "queued" and len(body["messages"]) == 1
    assert body["last_invited_at"] is not None
    status, body = await api.post("/invitations", {"customer": "c1"})
    assert status == 200 and body == {**body, "status": "skipped", "reason": "invited_recently", "messages": []}
    assert len(invitations(db)) == 1
    status, body = await api.post("/invitations", {"customer": "c1", "force": True})
    assert status == 202 and body["status"] == "queued"
    rows = invitations(db)
    assert len(rows) == 2 and rows[0].idempotency_key != rows[1].idempotency_key
    assert rows[1].params == {"source": "api"}


async def test_cooldown_ends(api, db, customer, settings):
    assert (await api.post("/invitations", {"customer": "c1"}))[0] == 202
    later = datetime.now(timezone.utc) + timedelta(seconds=settings.invite_cooldown_s + 60)
    with time_machine.travel(later, tick=True):
        assert (await api.post("/invitations", {"customer": "c1"}))[0] == 202
    assert len(invitations(db)) == 2


async def test_invite_flag_on_booking_quote_and_invoice(api, db, customer):
    status, body = await api.put("/bookings/b1", {**BOOKING, "invite": True})
    assert status == 201 and body["invitation"]["status"] == "queued"
    # The quote and the invoice ask again within the cooldown: skipped, not sent twice.
    status, body = await api.put("/quotes/q1", {"customer": "c1", "number": "Q1", "total_cents": 1, "invite": True})
    assert body["invitation"] == {**body["invitation"], "status": "skipped", "reason": "invited_recently"}
    status, body = await api.put("/invoices/i1", {"customer": "c1", "number": "I1", "amount_cents": 1,
                                                  "issued_on": "2030-01-01", "due_on": "2030-01-02", "invite": True})
    assert body["invitation"]["status"] == "skipped"
    assert len(invitations(db)) == 1
    assert invitations(db)[0].params == {"source": "booking"}


async def test_invite_flag_on_quote_and_invoice_when_not_invited_yet(api, db, customer):
    body = (await api.put("/quotes/q1", {"customer": "c1", "number": "Q1", "total_cents": 1, "invite": True}))[1]
    assert body["invitation"]["status"] == "queued"
    await api.put("/customers/c2", {"name": "Omar", "phone": "+15145550188",
                                    "sms_consent": {"granted": True, "wording": "Texts from us"}})
    body = (await api.put("/invoices/i1", {"customer": "c2", "number": "I1", "amount_cents": 1,
                                           "issued_on": "2030-01-01", "due_on": "2030-01-02", "invite": True}))[1]
    assert body["invitation"]["status"] == "queued"
    assert [m.params["source"] for m in invitations(db)] == ["quote", "invoice"]


async def test_auto_invite_on_new_booking_only(api, db, customer):
    await api.put("/bookings/b0", BOOKING)
    assert invitations(db) == []  # auto-invite is off by default
    await api.put("/settings", {"auto_invite": True})
    later = {**BOOKING, "starts_at": (START + timedelta(days=1)).isoformat(),
             "ends_at": (START + timedelta(days=1, hours=1)).isoformat()}
    status, body = await api.put("/bookings/b1", later)
    assert status == 201 and body["invitation"]["status"] == "queued"
    assert [m.params["source"] for m in invitations(db)] == ["auto_invite"]
    # Updating the booking is not a new booking; another new one is within the cooldown.
    await api.put("/bookings/b1", {**later, "address": "elsewhere"})
    other = {**BOOKING, "starts_at": (START + timedelta(days=2)).isoformat(),
             "ends_at": (START + timedelta(days=2, hours=1)).isoformat()}
    assert (await api.put("/bookings/b2", other))[1]["invitation"]["reason"] == "invited_recently"
    assert len(invitations(db)) == 1


async def test_no_auto_invite_for_an_imported_past_booking(api, db, customer):
    await api.put("/settings", {"auto_invite": True})
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=30)
    history = {**BOOKING, "starts_at": past.isoformat(), "ends_at": (past + timedelta(hours=1)).isoformat()}
    status, body = await api.put("/bookings/b-old", history)
    assert status == 201 and body.get("invitation") is None
    assert invitations(db) == []
    # Asked for explicitly, it is still sent.
    status, body = await api.put("/bookings/b-old2", {**history, "invite": True})
    assert body["invitation"]["status"] == "queued"


async def test_skips_when_no_channel_or_portal_off(api, db):
    await api.put("/customers/c9", {"name": "No Contact"})
    status, body = await api.post("/invitations", {"customer": "c9"})
    assert status == 200 and body["reason"] == "no_channel"
    db.expire_all()
    assert db.scalar(select(Customer).where(Customer.external_id == "c9")).last_invited_at is None
    # The message log says why nothing went out.
    [entry] = (await api.get("/messages?customer=c9"))[1]["messages"]
    assert entry["status"] == "skipped" and "no email address" in entry["status_reason"]
    assert entry["history"][0]["status"] == "skipped" and body["messages"] == [entry["id"]]
    await api.put("/customers/c1", {"name": "Jane", "email": "jane@example.com"})
    await api.put("/settings", {"portal_enabled": False})
    status, body = await api.post("/invitations", {"customer": "c1", "force": True})
    assert status == 200 and body["reason"] == "portal_disabled"
    assert len(invitations(db)) == 1


async def test_unknown_customer(api):
    status, body = await api.post("/invitations", {"customer": "ghost"})
    assert status == 422 and body["fields"] == {"customer": "unknown customer 'ghost'"}
    status, body = await api.post("/invitations", {})
    assert status == 422 and body["fields"] == {"customer": "required"}

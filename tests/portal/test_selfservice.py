"""Invoices, quotes and attachments: scoping, visibility toggles, statuses, decisions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal import selfservice as ss
from portal.db import tenant_session
from portal.errors import Conflict, NotFound, ValidationError
from portal.models import Business, BookingAttachment, Quote, WebhookDelivery
from tests.factories import make_booking, make_business, make_customer, make_invoice, make_quote

TODAY = date(2025, 6, 2)


@pytest.fixture
def shop(db):
    business = make_business(db, webhook_url="https://booking.example/hooks")
    customer = make_customer(db, business)
    other = make_customer(db, business)
    db.commit()
    return business, customer, other


@pytest.mark.parametrize("status, paid, due, expected", [
    ("paid", 10000, TODAY - timedelta(days=5), "paid"),
    ("unpaid", 0, TODAY, "unpaid"),                            # due today is not overdue yet
    ("unpaid", 0, TODAY - timedelta(days=1), "overdue"),
    ("partially_paid", 4000, TODAY + timedelta(days=3), "partially_paid"),
    ("partially_paid", 4000, TODAY - timedelta(days=3), "overdue"),
])
def test_invoice_statuses(db, shop, status, paid, due, expected):
    business, customer, _ = shop
    invoice = make_invoice(db, customer, payment_status=status, amount_paid_cents=paid, due_on=due)
    assert ss.invoice_status(invoice, TODAY) == expected
    assert ss.invoice_balance(invoice) == 10000 - paid


def test_invoices_are_scoped_and_hidden_when_turned_off(db, session_factory, shop):
    business, customer, other = shop
    mine = make_invoice(db, customer)
    make_invoice(db, customer, payment_status="void")
    theirs = make_invoice(db, other)
    db.commit()
    with tenant_session(session_factory, business.id) as s:
        b = s.get(Business, business.id)
        assert [i.id for i in ss.list_invoices(s, b, customer.id).items] == [mine.id]
        assert ss.get_invoice(s, b, customer.id, mine.public_id).id == mine.id
        with pytest.raises(NotFound):
            ss.get_invoice(s, b, customer.id, theirs.public_id)
        b.show_invoices = False
        with pytest.raises(NotFound):
            ss.list_invoices(s, b, customer.id)
        with pytest.raises(NotFound):
            ss.get_invoice(s, b, customer.id, mine.public_id)


def test_quote_approve_notifies_the_business(db, session_factory, shop):
    business, customer, _ = shop
    quote = make_quote(db, customer)
    db.commit()
    with tenant_session(session_factory, business.id) as s:
        ss.decide_quote(s, s.get(Business, business.id), customer.id, quote.public_id, "approve", " Go ahead ")
        s.commit()
    db.expire_all()
    row = db.get(Quote, quote.id)
    assert (row.status, row.decision_comment) == ("approved", "Go ahead") and row.decided_at is not None
    hook = db.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id))
    assert hook.event_type == "quote.approved" and hook.payload["comment"] == "Go ahead"
    assert hook.payload["quote"] == quote.external_id
    with tenant_session(session_factory, business.id) as s:  # only pending quotes can be decided
        with pytest.raises(Conflict, match="already been decided"):
            ss.decide_quote(s, s.get(Business, business.id), customer.id, quote.public_id, "decline")


def test_quote_decline_expired_foreign_and_invalid(db, session_factory, shop):
    business, customer, other = shop
    quote = make_quote(db, customer)
    expired = make_quote(db, customer, valid_until=TODAY - timedelta(days=1))
    theirs = make_quote(db, other)
    db.commit()
    with tenant_session(session_factory, business.id) as s:
        b = s.get(Business, business.id)
        with pytest.raises(ValidationError):
            ss.decide_quote(s, b, customer.id, quote.public_id, "maybe")
        with pytest.raises(NotFound):
            ss.decide_quote(s, b, customer.id, theirs.public_id, "approve")
        with pytest.raises(Conflict, match="expired"):
            ss.decide_quote(s, b, customer.id, expired.public_id, "approve", today=TODAY)
        ss.decide_quote(s, b, customer.id, quote.public_id, "decline")
        s.commit()
    db.expire_all()
    assert db.get(Quote, quote.id).status == "declined"
    assert db.get(Quote, theirs.id).status == "pending"
    events = [h.event_type for h in db.scalars(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id))]
    assert events == ["quote.declined"]
    db.get(Business, business.id).show_quotes = False
    db.commit()
    bid, cid = business.id, customer.id  # read before opening another session on the same connection
    with tenant_session(session_factory, bid) as s:
        with pytest.raises(NotFound):
            ss.list_quotes(s, s.get(Business, bid), cid)


def test_attachments_only_for_their_owner(db, session_factory, shop):
    business, customer, other = shop
    booking = make_booking(db, customer)
    their_booking = make_booking(db, other)
    att = BookingAttachment(business_id=business.id, booking_id=booking.id, filename="plan.pdf",
                            content_type="application/pdf", content=b"%PDF-1.4")
    db.add(att)
    db.commit()
    with tenant_session(session_factory, business.id) as s:
        b = s.get(Business, business.id)
        assert ss.get_attachment(s, b, customer.id, booking.public_id, att.public_id).filename == "plan.pdf"
        with pytest.raises(NotFound):  # the owner's ids, another customer's session
            ss.get_attachment(s, b, other.id, booking.public_id, att.public_id)
        with pytest.raises(NotFound):  # right attachment, wrong booking in the URL
            ss.get_attachment(s, b, other.id, their_booking.public_id, att.public_id)
        b.show_attachments = False
        with pytest.raises(NotFound):
            ss.get_attachment(s, b, customer.id, booking.public_id, att.public_id)

"""Demo data for ``portal demo`` / ``portal dev``: idempotent, keyed by external ids."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.businesses import create_business
from portal.db import scope_to
from portal.models import (
    Booking,
    BookingAttachment,
    Business,
    Customer,
    Invoice,
    PaymentMethod,
    Quote,
    Service,
    ServiceProvider,
    utcnow,
)

SLUG = "pro-home-services"
WEEKDAYS = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}

CUSTOMERS = [
    ("cust-jane", "Jane Doe", "jane.doe@example.com", "+15145550100", "en"),
    ("cust-marie", "Marie Tremblay", "marie.tremblay@example.com", "+15145550101", "fr"),
    ("cust-omar", "Omar Haddad", "omar.haddad@example.com", "+15145550102", "en"),
]
PROVIDERS = [
    ("prov-alex", "Alex Martin", "/static/demo/alex.svg"),
    ("prov-sam", "Samira Roy", "/static/demo/samira.svg"),
]
SERVICES = [
    ("svc-clean", "Deep cleaning", 120),
    ("svc-windows", "Window washing", 60),
    ("svc-gutter", "Gutter cleaning", 90),
]


def _upsert(session: Session, model, external_id: str, **fields):
    row = session.scalar(select(model).where(model.external_id == external_id))
    if row is None:
        row = model(external_id=external_id, **fields)
        session.add(row)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    session.flush()
    return row


def _at(tz: ZoneInfo, day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tz).astimezone(ZoneInfo("UTC"))


def seed(session: Session, today: date | None = None) -> tuple[Business, str | None]:
    """Create or refresh the demo business. Returns it and a new API key (None if it existed)."""
    business = session.scalar(select(Business).where(Business.slug == SLUG))
    api_key = None
    if business is None:
        business, api_key = create_business(
            session, SLUG, "Pro Home Services",
            logo_url="/static/demo/logo.svg", primary_color="#0f766e", accent_color="#f59e0b",
            timezone="America/Toronto", support_email="office@prohome.example",
            support_phone="+15145550199",
            help_reply="Pro Home Services: call us at +1 514-555-0199. Reply STOP to opt out.",
        )
    scope_to(session, business.id)
    tz = ZoneInfo(business.timezone)
    today = today or datetime.now(tz).date()

    customers = {
        ext: _upsert(session, Customer, ext, name=name, email=email, phone=phone, locale=locale,
                     timezone=business.timezone)
        for ext, name, email, phone, locale in CUSTOMERS
    }
    providers = {
        ext: _upsert(session, ServiceProvider, ext, name=name, photo_url=photo, working_hours=WEEKDAYS)
        for ext, name, photo in PROVIDERS
    }
    services = {ext: _upsert(session, Service, ext, name=name, duration_minutes=minutes)
                for ext, name, minutes in SERVICES}

    def next_weekday(days: int) -> date:
        day = today + timedelta(days=days)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    plan = [
        # external id, customer, provider, service, day offset, hour
        ("bk-jane-1", "cust-jane", "prov-alex", "svc-clean", 3, 9),
        ("bk-jane-2", "cust-jane", "prov-sam", "svc-windows", 10, 13),
        ("bk-jane-past", "cust-jane", "prov-alex", "svc-gutter", -14, 10),
        ("bk-marie-1", "cust-marie", "prov-sam", "svc-clean", 4, 10),
        ("bk-marie-past", "cust-marie", "prov-alex", "svc-windows", -21, 14),
        ("bk-omar-1", "cust-omar", "prov-alex", "svc-windows", 5, 15),
    ]
    bookings = {}
    for ext, cust, prov, svc, offset, hour in plan:
        existing = session.scalar(select(Booking).where(Booking.external_id == ext))
        if existing is not None:
            bookings[ext] = existing
            continue
        day = next_weekday(offset) if offset > 0 else today + timedelta(days=offset)
        start = _at(tz, day, hour)
        booking = Booking(
            external_id=ext, customer_id=customers[cust].id, provider_id=providers[prov].id,
            service_id=services[svc].id, starts_at=start,
            ends_at=start + timedelta(minutes=services[svc].duration_minutes),
            address="1200 Rue Sainte-Catherine O, Montréal, QC",
            status="completed" if offset < 0 else "scheduled",
        )
        session.add(booking)
        session.flush()
        bookings[ext] = booking
    # Upcoming bookings get their reminders planned; the scheduler sends them when due.
    from scheduler.planning import plan_reminders

    for booking in bookings.values():
        if booking.status == "scheduled":
            plan_reminders(session, booking, business)
    if not session.scalar(select(BookingAttachment.id).where(BookingAttachment.booking_id == bookings["bk-jane-1"].id)):
        session.add(BookingAttachment(
            booking_id=bookings["bk-jane-1"].id, filename="checklist.txt", content_type="text/plain",
            content=b"Deep cleaning checklist\n- Kitchen\n- Bathrooms\n- Floors\n",
        ))

    invoices = [
        ("inv-1001", "cust-jane", "INV-1001", 18000, 18000, -30, -16, "paid"),
        ("inv-1002", "cust-jane", "INV-1002", 9500, 0, -2, 12, "unpaid"),
        ("inv-1003", "cust-jane", "INV-1003", 22000, 5000, -45, -15, "partially_paid"),
        ("inv-2001", "cust-marie", "INV-2001", 12000, 0, -40, -10, "unpaid"),
        ("inv-2002", "cust-marie", "INV-2002", 8000, 8000, -25, -11, "paid"),
    ]
    for ext, cust, number, amount, paid, issued, due, status in invoices:
        _upsert(session, Invoice, ext, customer_id=customers[cust].id, number=number,
                amount_cents=amount, amount_paid_cents=paid, issued_on=today + timedelta(days=issued),
                due_on=today + timedelta(days=due), payment_status=status,
                lines=[{"description": "Service", "quantity": 1, "unit_cents": amount}])

    quotes = [
        ("q-501", "cust-jane", "Q-501", [("Carpet shampoo, 3 rooms", 1, 24000), ("Stain treatment", 2, 2500)]),
        ("q-601", "cust-marie", "Q-601", [("Lavage de vitres, 2 étages", 1, 15000)]),
    ]
    for ext, cust, number, lines in quotes:
        if session.scalar(select(Quote.id).where(Quote.external_id == ext)):
            continue
        session.add(Quote(
            external_id=ext, customer_id=customers[cust].id, number=number,
            lines=[{"description": d, "quantity": q, "unit_cents": u} for d, q, u in lines],
            total_cents=sum(q * u for _, q, u in lines), valid_until=today + timedelta(days=30),
        ))

    jane = customers["cust-jane"]
    if not session.scalar(select(PaymentMethod.id).where(PaymentMethod.customer_id == jane.id)):
        session.add(PaymentMethod(customer_id=jane.id, gateway="test", gateway_token="pm_test_visa",
                                  brand="visa", last4="4242", exp_month=12, exp_year=today.year + 2))
    session.flush()
    business.updated_at = utcnow()
    return business, api_key

"""Factories: small functions that build valid rows with overridable fields."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone

from sqlalchemy.orm import Session

from portal.businesses import create_business
from portal.models import Booking, Business, Customer, Invoice, Quote, Service, ServiceProvider

_seq = itertools.count(1)
WEEKDAYS = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def n() -> int:
    return next(_seq)


def make_business(session: Session, **fields) -> Business:
    """A business; its API key is kept on ``business.api_key`` for tests."""
    i = n()
    slug = fields.pop("slug", f"biz-{i}")
    name = fields.pop("name", f"Business {i}")
    business, key = create_business(session, slug, name, **fields)
    business.api_key = key  # not a column: only tests see the clear key
    return business


def make_customer(session: Session, business: Business, **fields) -> Customer:
    i = n()
    values = dict(external_id=f"cust-{i}", name=f"Customer {i}", email=f"customer{i}@example.com",
                  phone=f"+1514555{i % 10000:04d}", locale="en", timezone=business.timezone)
    values.update(fields)
    customer = Customer(business_id=business.id, **values)
    session.add(customer)
    session.flush()
    return customer


def make_provider(session: Session, business: Business, **fields) -> ServiceProvider:
    i = n()
    values = dict(external_id=f"prov-{i}", name=f"Provider {i}", photo_url="/static/demo/alex.svg",
                  working_hours=WEEKDAYS)
    values.update(fields)
    provider = ServiceProvider(business_id=business.id, **values)
    session.add(provider)
    session.flush()
    return provider


def make_service(session: Session, business: Business, **fields) -> Service:
    i = n()
    values = dict(external_id=f"svc-{i}", name=f"Service {i}", duration_minutes=60)
    values.update(fields)
    service = Service(business_id=business.id, **values)
    session.add(service)
    session.flush()
    return service


def make_booking(session: Session, customer: Customer, *, starts_at: datetime | None = None, **fields) -> Booking:
    i = n()
    if "provider_id" not in fields:
        fields["provider_id"] = make_provider(session, customer.business).id
    if "service_id" not in fields:
        fields["service_id"] = make_service(session, customer.business).id
    starts_at = starts_at or datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3)
    values = dict(external_id=f"bk-{i}", starts_at=starts_at, ends_at=starts_at + timedelta(hours=1),
                  address="1 Main St", status="scheduled")
    values.update(fields)
    booking = Booking(business_id=customer.business_id, customer_id=customer.id, **values)
    session.add(booking)
    session.flush()
    return booking


def make_invoice(session: Session, customer: Customer, **fields) -> Invoice:
    i = n()
    today = date.today()
    values = dict(external_id=f"inv-{i}", number=f"INV-{i}", amount_cents=10000, issued_on=today,
                  due_on=today + timedelta(days=14), payment_status="unpaid")
    values.update(fields)
    invoice = Invoice(business_id=customer.business_id, customer_id=customer.id, **values)
    session.add(invoice)
    session.flush()
    return invoice


def make_quote(session: Session, customer: Customer, **fields) -> Quote:
    i = n()
    values = dict(external_id=f"q-{i}", number=f"Q-{i}", total_cents=25000,
                  lines=[{"description": "Work", "quantity": 1, "unit_cents": 25000}])
    values.update(fields)
    quote = Quote(business_id=customer.business_id, customer_id=customer.id, **values)
    session.add(quote)
    session.flush()
    return quote

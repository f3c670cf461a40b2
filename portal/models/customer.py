from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, TenantScoped, Timestamps, utcnow


class Customer(TenantScoped, Timestamps, Base):
    __tablename__ = "customer"
    __table_args__ = (UniqueConstraint("business_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    locale: Mapped[str] = mapped_column(String(5), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))
    # "ok", "bounced", "spam", "invalid": set by provider feedback.
    email_status: Mapped[str] = mapped_column(String(20), default="ok")
    # "ok", "opted_out", "invalid", "not_mobile".
    phone_status: Mapped[str] = mapped_column(String(20), default="ok")
    last_invited_at: Mapped[datetime | None] = mapped_column()
    # The payment gateway's own customer record (Stripe ``cus_...``), made on first card setup.
    payment_customer_ref: Mapped[str | None] = mapped_column(String(100))

    business = relationship("Business", lazy="joined")

    def __repr__(self) -> str:
        return f"<Customer {self.external_id} {self.name}>"


class PaymentMethod(TenantScoped, Timestamps, Base):
    """A gateway token and display details; never a card number or CVC."""

    __tablename__ = "payment_method"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), unique=True)
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_token: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)


class CommunicationPreference(TenantScoped, Base):
    """One row per customer x message category x channel; absent means default on."""

    __tablename__ = "communication_preference"
    __table_args__ = (UniqueConstraint("customer_id", "category", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str] = mapped_column(String(10))  # "email" | "sms"
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Consent(TenantScoped, Base):
    """An append-only record of what the customer agreed to, where and when."""

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    category: Mapped[str | None] = mapped_column(String(30))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(40))  # "booking_system", "portal", "sms_keyword", ...
    wording: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(TenantScoped, Base):
    """An address we must not write to (STOP reply, hard bounce, spam report)."""

    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("business_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    address: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

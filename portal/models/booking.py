from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, TenantScoped, Timestamps, public_id, utcnow


class ServiceProvider(TenantScoped, Timestamps, Base):
    __tablename__ = "service_provider"
    __table_args__ = (UniqueConstraint("business_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    photo_url: Mapped[str | None] = mapped_column(String(500))
    # {"mon": [["09:00", "17:00"]], ...} in the business's timezone.
    working_hours: Mapped[dict] = mapped_column(default=dict)


class Service(TenantScoped, Timestamps, Base):
    __tablename__ = "service"
    __table_args__ = (UniqueConstraint("business_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)


class Booking(TenantScoped, Timestamps, Base):
    __tablename__ = "booking"
    __table_args__ = (
        UniqueConstraint("business_id", "external_id"),
        # Two live bookings can never start at the same time with the same
        # provider: the last line of defence against double booking.
        Index(
            "uq_booking_provider_slot",
            "provider_id",
            "starts_at",
            unique=True,
            sqlite_where=text("status = 'scheduled'"),
            postgresql_where=text("status = 'scheduled'"),
        ),
        Index("ix_booking_customer_starts", "customer_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=public_id)
    external_id: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("service_provider.id", ondelete="SET NULL"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("service.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="scheduled")  # scheduled|cancelled|completed
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    address: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    reschedule_count: Mapped[int] = mapped_column(Integer, default=0)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column()

    customer = relationship("Customer")
    provider = relationship("ServiceProvider")
    service = relationship("Service")
    attachments = relationship("BookingAttachment", back_populates="booking", order_by="BookingAttachment.id")


class BookingAttachment(TenantScoped, Base):
    __tablename__ = "booking_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=public_id)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    url: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    booking = relationship("Booking", back_populates="attachments")


class Reminder(TenantScoped, Base):
    """A reminder planned in the database; the scheduler enqueues it when due."""

    __tablename__ = "reminder"
    __table_args__ = (
        UniqueConstraint("booking_id", "booking_version", "offset_minutes"),
        # The due-scan only touches planned rows: cost grows with what is due.
        Index(
            "ix_reminder_due",
            "due_at",
            sqlite_where=text("status = 'planned'"),
            postgresql_where=text("status = 'planned'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id", ondelete="CASCADE"), index=True)
    booking_version: Mapped[int] = mapped_column(Integer)
    offset_minutes: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="planned")  # planned|enqueued|cancelled|skipped
    status_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

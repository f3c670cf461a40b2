from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, TenantScoped, Timestamps, public_id


class Invoice(TenantScoped, Timestamps, Base):
    __tablename__ = "invoice"
    __table_args__ = (UniqueConstraint("business_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=public_id)
    external_id: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(50))
    currency: Mapped[str] = mapped_column(String(3), default="CAD")
    amount_cents: Mapped[int] = mapped_column(Integer)
    amount_paid_cents: Mapped[int] = mapped_column(Integer, default=0)
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    # As reported by the booking system: paid | unpaid | partially_paid | void.
    # "overdue" is derived from due_on (see status_on).
    payment_status: Mapped[str] = mapped_column(String(20), default="unpaid")
    lines: Mapped[list] = mapped_column(default=list)  # [{"description", "quantity", "unit_cents"}]

    customer = relationship("Customer")

    def status_on(self, today: date) -> str:
        if self.payment_status in ("unpaid", "partially_paid") and self.due_on < today:
            return "overdue"
        return self.payment_status


class Quote(TenantScoped, Timestamps, Base):
    __tablename__ = "quote"
    __table_args__ = (UniqueConstraint("business_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=public_id)
    external_id: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(50))
    currency: Mapped[str] = mapped_column(String(3), default="CAD")
    lines: Mapped[list] = mapped_column(default=list)
    total_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|approved|declined|expired
    valid_until: Mapped[date | None] = mapped_column(Date)
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_comment: Mapped[str | None] = mapped_column(Text)

    customer = relationship("Customer")

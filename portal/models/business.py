from __future__ import annotations

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, Timestamps

DEFAULT_REMINDER_OFFSETS = [24 * 60, 2 * 60]  # minutes before the appointment


class Business(Timestamps, Base):
    __tablename__ = "business"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    logo_url: Mapped[str | None] = mapped_column(String(500))
    primary_color: Mapped[str] = mapped_column(String(7), default="#1d4ed8")
    accent_color: Mapped[str] = mapped_column(String(7), default="#f59e0b")
    default_locale: Mapped[str] = mapped_column(String(5), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="America/Toronto")
    support_email: Mapped[str | None] = mapped_column(String(254))
    support_phone: Mapped[str | None] = mapped_column(String(20))
    help_reply: Mapped[str | None] = mapped_column(Text)

    portal_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    show_attachments: Mapped[bool] = mapped_column(Boolean, default=True)
    show_invoices: Mapped[bool] = mapped_column(Boolean, default=True)
    show_provider_photos: Mapped[bool] = mapped_column(Boolean, default=True)
    show_quotes: Mapped[bool] = mapped_column(Boolean, default=True)

    allow_reschedule: Mapped[bool] = mapped_column(Boolean, default=True)
    reschedule_min_notice_minutes: Mapped[int] = mapped_column(Integer, default=24 * 60)
    max_reschedules: Mapped[int] = mapped_column(Integer, default=2)
    allow_cancel: Mapped[bool] = mapped_column(Boolean, default=True)
    cancel_min_notice_minutes: Mapped[int] = mapped_column(Integer, default=24 * 60)
    booking_horizon_days: Mapped[int] = mapped_column(Integer, default=60)

    auto_invite: Mapped[bool] = mapped_column(Boolean, default=False)
    reminder_offsets: Mapped[list] = mapped_column(default=lambda: list(DEFAULT_REMINDER_OFFSETS))
    # Quiet hours for non-urgent SMS, minutes after local midnight. The
    # business may only narrow the 21:00-08:00 window (see messages.quiet_hours).
    quiet_start_minute: Mapped[int] = mapped_column(Integer, default=21 * 60)
    quiet_end_minute: Mapped[int] = mapped_column(Integer, default=8 * 60)

    api_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str | None] = mapped_column(String(16))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    embed_origins: Mapped[list] = mapped_column(default=list)

    def __repr__(self) -> str:
        return f"<Business {self.slug}>"

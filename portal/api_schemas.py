"""Request and response shapes of the booking-system API.

The same pydantic models validate every request and generate the OpenAPI
document (``portal_web.api.openapi``), so the two cannot drift apart.
Requests reject unknown fields; errors come back as ``{"error", "fields": {path: message}}``.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from messages.registry import CHANNELS, OPTIONAL_CATEGORIES
from portal.errors import ValidationError

# --- field types ---------------------------------------------------------------

EXTERNAL_ID_PATTERN = r"^[^/\s\x00]+$"
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=EXTERNAL_ID_PATTERN),
                       Field(description="The booking system's own id", examples=["cust-1001"])]
ShortText = Annotated[str, StringConstraints(max_length=500)]
LongText = Annotated[str, StringConstraints(max_length=5000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(examples=["CAD"])]
Cents = Annotated[int, Field(ge=0, le=2**31 - 1)]  # stored in 32-bit integer columns
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$"), Field(examples=["#1d4ed8"])]
Locale = Literal["en", "fr"]
HHMM = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"), Field(examples=["09:00"])]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Category = Literal[OPTIONAL_CATEGORIES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]


def _email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


def _phone(value: str, info: ValidationInfo) -> str:
    # National numbers are read in the business's country (from its timezone).
    region = (info.context or {}).get("region")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number (use international format, e.g. +15145550123)") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown timezone (use an IANA name, e.g. America/Toronto)") from None
    return value


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+[^\s]*$", value):
        raise ValueError("must be an http(s) URL")
    return value


def _url_or_path(value: str) -> str:
    if value.startswith("/") and not value.startswith("//") and " " not in value:
        return value
    return _url(value)


def _origin(value: str) -> str:
    if not re.match(r"^https?://[a-zA-Z0-9.-]+(:[0-9]{1,5})?$", value):
        raise ValueError("must be an origin like https://www.example.com (no path)")
    return value.lower()


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# Lengths are checked as sent (as the document says), the surrounding spaces dropped after.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_name)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email),
                  Field(json_schema_extra={"format": "email"}, examples=["jane@example.com"])]
Phone = Annotated[str, StringConstraints(max_length=40), AfterValidator(_phone),
                  Field(description="Stored in E.164", examples=["+15145550123"])]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone),
                     Field(examples=["America/Toronto"])]
Url = Annotated[str, StringConstraints(max_length=500), AfterValidator(_url),
                Field(json_schema_extra={"format": "uri"})]
UrlOrPath = Annotated[str, StringConstraints(max_length=500), AfterValidator(_url_or_path)]
Origin = Annotated[str, StringConstraints(max_length=200), AfterValidator(_origin)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ------------------------------------------------------------------


class SmsConsentIn(Strict):
    granted: bool
    wording: LongText | None = Field(None, description="The consent text the customer agreed to")
    source: Annotated[str, StringConstraints(min_length=1, max_length=40)] = "booking_system"


class CustomerIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Jane Doe", "email": "jane@example.com", "phone": "+15145550123", "locale": "en",
        "sms_consent": {"granted": True, "wording": "Texts about my appointments", "source": "booking_system"},
        "communication_preferences": {"reminders": {"email": True, "sms": True}},
    }]})

    name: Name
    email: Email | None = None
    phone: Phone | None = None
    locale: Locale = "en"
    timezone: TimeZone | None = None
    sms_consent: SmsConsentIn | None = None
    communication_preferences: dict[Category, dict[Channel, bool]] | None = Field(
        None, description="Per category and channel; critical categories cannot be turned off")


class ProviderIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Alex Martin", "photo_url": "https://cdn.example.com/alex.jpg",
        "working_hours": {"mon": [["08:00", "12:00"], ["13:00", "17:00"]], "tue": [["08:00", "17:00"]]},
    }]})

    name: Name
    photo_url: UrlOrPath | None = None
    working_hours: dict[Weekday, list[tuple[HHMM, HHMM]]] | None = Field(
        None, description="Local time ranges per weekday, in the business's timezone")

    @model_validator(mode="after")
    def _ranges(self):
        for day, ranges in (self.working_hours or {}).items():
            for i, (start, end) in enumerate(ranges):
                if end <= start:
                    raise ValueError(f"working_hours.{day}.{i}: end must be after start")
        return self


class ServiceIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Deep cleaning", "duration_minutes": 120}]})

    name: Name
    duration_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60


class AttachmentIn(Strict):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    url: Url
    content_type: Annotated[str, StringConstraints(max_length=100)] = "application/octet-stream"


# Booking times stay clear of the calendar's ends, where their UTC time or their reminders' would not exist.
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=timezone.utc), datetime(9000, 1, 1, tzinfo=timezone.utc)
BookingTime = Annotated[AwareDatetime, Field(description="With a timezone offset; between the years 1900 and 9000")]


class BookingIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "customer": "cust-1001", "provider": "prov-1", "service": "svc-1",
        "starts_at": "2030-05-01T14:00:00-04:00", "ends_at": "2030-05-01T16:00:00-04:00",
        "address": "1 Main St, Montreal", "invite": True,
    }]})

    customer: ExternalId
    provider: ExternalId | None = None
    service: ExternalId | None = None
    starts_at: BookingTime
    ends_at: BookingTime
    status: Literal["scheduled", "completed"] = "scheduled"
    address: ShortText | None = None
    notes: LongText | None = None
    attachments: list[AttachmentIn] | None = Field(None, max_length=50, description="Replaces the list when given")
    notify: bool = Field(True, description="Send the customer a confirmation when the booking is new or moved")
    invite: bool = Field(False, description="Invite the customer to the portal (subject to the cooldown)")

    @model_validator(mode="after")
    def _order(self):
        for name in ("starts_at", "ends_at"):
            if not EARLIEST <= getattr(self, name) < LATEST:
                raise ValueError(f"{name}: must be between 1900 and 9000")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at: must be after starts_at")
        return self


class CancelIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "Customer called"}]})

    reason: LongText | None = None
    notify: bool = True


class Line(Strict):
    description: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    quantity: Annotated[float, Field(gt=0, le=10**6)] = 1
    unit_cents: Annotated[int, Field(ge=-(10**11), le=10**11)]


class InvoiceIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "customer": "cust-1001", "number": "INV-2041", "currency": "CAD", "amount_cents": 18000,
        "issued_on": "2030-05-01", "due_on": "2030-05-15", "payment_status": "unpaid",
        "lines": [{"description": "Deep cleaning", "quantity": 1, "unit_cents": 18000}], "notify": True,
    }]})

    customer: ExternalId
    booking: ExternalId | None = None
    number: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    currency: Currency = "CAD"
    amount_cents: Cents
    amount_paid_cents: Cents = 0
    issued_on: date
    due_on: date
    payment_status: Literal["unpaid", "partially_paid", "paid", "void"] = "unpaid"
    lines: list[Line] = Field(default_factory=list, max_length=200)
    notify: bool = Field(False, description="Send invoice_issued when the invoice is new")
    invite: bool = False

    @model_validator(mode="after")
    def _dates(self):
        if self.due_on < self.issued_on:
            raise ValueError("due_on: must not be before issued_on")
        return self


class QuoteIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "customer": "cust-1001", "number": "Q-311", "currency": "CAD", "total_cents": 45000,
        "lines": [{"description": "Gutter repair", "quantity": 1, "unit_cents": 45000}],
        "valid_until": "2030-06-01",
    }]})

    customer: ExternalId
    number: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    currency: Currency = "CAD"
    total_cents: Cents
    lines: list[Line] = Field(default_factory=list, max_length=200)
    status: Literal["pending", "approved", "declined", "expired"] = "pending"
    valid_until: date | None = None
    notify: bool = Field(True, description="Send quote_ready when the quote is new")
    invite: bool = False


class QuietHours(Strict):
    start: HHMM = "21:00"
    end: HHMM = "08:00"


class QuietHoursIn(QuietHours):
    """No non-urgent texts in this window; it may only grow beyond 21:00-08:00 (see messages.quiet_hours).
    An end left out keeps its current value; start and end may not both be 12:00 (the whole day)."""

    @model_validator(mode="after")
    def _within_limits(self):
        if not "12:00" <= self.start <= "21:00":
            raise ValueError("start: must be between 12:00 and 21:00 (quiet hours never shrink)")
        if not "08:00" <= self.end <= "12:00":
            raise ValueError("end: must be between 08:00 and 12:00 (quiet hours never shrink)")
        return self


class SettingsIn(Strict):
    """Every field is optional: only the fields given change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "portal_enabled": True, "show_invoices": True, "allow_reschedule": True,
        "reschedule_min_notice_minutes": 1440, "reminder_offsets": [1440, 120],
        "quiet_hours": {"start": "21:00", "end": "08:00"}, "auto_invite": False,
        "embed_origins": ["https://www.example.com"], "webhook_url": "https://booking.example.com/hooks/portal",
        "branding": {"name": "Pro Home Services", "primary_color": "#0f766e"},
    }]})

    portal_enabled: bool | None = None
    show_attachments: bool | None = None
    show_invoices: bool | None = None
    show_provider_photos: bool | None = None
    show_quotes: bool | None = None
    allow_reschedule: bool | None = None
    reschedule_min_notice_minutes: Annotated[int, Field(ge=0, le=60 * 24 * 60)] | None = None
    max_reschedules: Annotated[int, Field(ge=0, le=100)] | None = None
    allow_cancel: bool | None = None
    cancel_min_notice_minutes: Annotated[int, Field(ge=0, le=60 * 24 * 60)] | None = None
    booking_horizon_days: Annotated[int, Field(ge=1, le=730)] | None = None
    reminder_offsets: Annotated[list[Annotated[int, Field(ge=1, le=30 * 24 * 60)]], Field(max_length=5)] | None = \
        Field(None, description="Minutes before the appointment")
    quiet_hours: QuietHoursIn | None = None
    auto_invite: bool | None = None
    embed_origins: Annotated[list[Origin], Field(max_length=20)] | None = None
    webhook_url: Url | None = Field(None, description="Where events are posted; the host must resolve to public "
                                                      "addresses (not loopback, private or link-local)")
    branding: "BrandingIn | None" = None


class BrandingIn(Strict):
    name: Name | None = None
    logo_url: UrlOrPath | None = None
    primary_color: Color | None = None
    accent_color: Color | None = None
    default_locale: Locale | None = None
    timezone: TimeZone | None = None
    support_email: Email | None = None
    support_phone: Phone | None = None
    help_reply: Annotated[str, StringConstraints(max_length=320)] | None = None


SettingsIn.model_rebuild()


class InvitationIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"customer": "cust-1001"}]})

    customer: ExternalId
    force: bool = Field(False, description="Invite even within the cooldown window")


# --- responses -----------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvitationOut(Out):
    customer: str
    status: Literal["queued", "skipped"]
    reason: Literal["invited_recently", "no_channel", "portal_disabled"] | None = None
    last_invited_at: datetime | None = None
    messages: list[int] = Field(default_factory=list, description="Message ids (see /messages)")


class CustomerOut(Out):
    external_id: str
    name: str
    email: str | None
    phone: str | None
    locale: str
    timezone: str | None
    email_status: str
    phone_status: str
    last_invited_at: datetime | None
    sms_consent: bool | None = Field(description="The latest recorded SMS consent, if any")
    communication_preferences: dict[str, dict[str, bool]]
    created_at: datetime
    updated_at: datetime


class ProviderOut(Out):
    external_id: str
    name: str
    photo_url: str | None
    working_hours: dict[str, list[list[str]]]
    updated_at: datetime


class ServiceOut(Out):
    external_id: str
    name: str
    duration_minutes: int
    updated_at: datetime


class AttachmentOut(Out):
    filename: str
    url: str | None
    content_type: str


class BookingOut(Out):
    external_id: str
    customer: str
    provider: str | None
    service: str | None
    status: str
    starts_at: datetime
    ends_at: datetime
    address: str | None
    notes: str | None
    version: int
    reschedule_count: int
    cancel_reason: str | None
    cancelled_at: datetime | None
    attachments: list[AttachmentOut]
    invitation: InvitationOut | None = None
    updated_at: datetime


class LineOut(Out):
    description: str
    quantity: float
    unit_cents: int


class InvoiceOut(Out):
    external_id: str
    customer: str
    booking: str | None
    number: str
    currency: str
    amount_cents: int
    amount_paid_cents: int
    issued_on: date
    due_on: date
    payment_status: str
    status: str = Field(description="payment_status, or overdue when unpaid past due_on")
    lines: list[LineOut]
    invitation: InvitationOut | None = None
    updated_at: datetime


class QuoteOut(Out):
    external_id: str
    customer: str
    number: str
    currency: str
    total_cents: int
    lines: list[LineOut]
    status: str
    valid_until: date | None
    decided_at: datetime | None
    decision_comment: str | None
    invitation: InvitationOut | None = None
    updated_at: datetime


class BrandingOut(Out):
    name: str
    logo_url: str | None
    primary_color: str
    accent_color: str
    default_locale: str
    timezone: str
    support_email: str | None
    support_phone: str | None
    help_reply: str | None


class SettingsOut(Out):
    slug: str
    portal_enabled: bool
    show_attachments: bool
    show_invoices: bool
    show_provider_photos: bool
    show_quotes: bool
    allow_reschedule: bool
    reschedule_min_notice_minutes: int
    max_reschedules: int
    allow_cancel: bool
    cancel_min_notice_minutes: int
    booking_horizon_days: int
    reminder_offsets: list[int]
    quiet_hours: QuietHours
    auto_invite: bool
    embed_origins: list[str]
    webhook_url: str | None
    webhook_secret: str | None = Field(description="Verifies X-Portal-Signature on our webhooks")
    api_key_prefix: str | None
    branding: BrandingOut


class ApiKeyOut(Out):
    api_key: str = Field(description="Shown once; the previous key stops working at once")
    api_key_prefix: str


class MessageEventOut(Out):
    status: str
    detail: str | None
    at: datetime


class MessageOut(Out):
    id: int
    kind: str
    category: str
    channel: str
    customer: str | None
    booking: str | None
    recipient: str
    status: str
    status_reason: str | None
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    history: list[MessageEventOut]


class MessageList(Out):
    messages: list[MessageOut]


class WebhookDeliveryOut(Out):
    event_id: str = Field(description="The body's id: receivers deduplicate on it")
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int = Field(description="Attempts in the current round")
    last_status_code: int | None = Field(description="Your endpoint's answer to the last attempt")
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    data: dict[str, Any] = Field(description="The event's data, as posted")


class WebhookDeliveryList(Out):
    deliveries: list[WebhookDeliveryOut]


class ErrorOut(BaseModel):
    error: str
    fields: dict[str, str] | None = None


# --- parsing -------------------------------------------------------------------

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required",
    "timezone_aware": "must include a timezone offset (e.g. 2030-05-01T14:00:00-04:00)",
}


def _path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "body"


def field_errors(exc: PydanticValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        path, msg = _path(err["loc"]), _MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "value_error":
            msg = str(err.get("ctx", {}).get("error", msg))
            # Cross-field checks name their own field ("ends_at: must be after starts_at").
            head, sep, tail = msg.partition(": ")
            if sep and re.match(r"^[a-z_][a-z0-9_.]*$", head):
                path, msg = (head if path == "body" else f"{path}.{head}"), tail
        fields.setdefault(path, msg)
    return fields


def _nul_at(value: Any, loc: tuple = ()) -> str | None:
    """The path of the first text holding a NUL character: PostgreSQL cannot store one."""
    if isinstance(value, str):
        return _path(loc) if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return _path((*loc, key))
        found = _nul_at(item, (*loc, key))
        if found is not None:
            return found
    return None


def parse(model: type[BaseModel], data: Any, *, region: str | None = None) -> BaseModel:
    """Validate a decoded JSON body; raises ``portal.errors.ValidationError`` (422)."""
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object", {"body": "expected an object"})
    nul = _nul_at(data)
    if nul is not None:
        raise ValidationError("invalid request", {nul: "must not contain NUL characters"})
    try:
        # Strict JSON types, as the document gives them: no 0 for false, "5" for 5 or a number for a date.
        return model.model_validate_json(json.dumps(data), strict=True, context={"region": region})
    except PydanticValidationError as exc:
        raise ValidationError("invalid request", field_errors(exc)) from None

"""Idempotent upserts from the booking system, keyed by its own ids.

Each function runs inside the caller's (tenant-scoped) transaction and takes
an already validated model from ``portal.api_schemas``. A PUT that changes
nothing writes nothing and queues nothing; a booking whose time changes gets a
new ``version``, freshly planned reminders and one confirmation keyed by that
version, so a retried request never sends twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import events, netguard
from portal.api_schemas import (
    BookingIn,
    CancelIn,
    CustomerIn,
    InvoiceIn,
    ProviderIn,
    QuoteIn,
    ServiceIn,
    SettingsIn,
)
from portal.errors import Conflict, NotFound, UnsafeUrl, ValidationError
from portal.invitations import InvitationResult, invite
from portal.models import (
    Booking,
    BookingAttachment,
    Business,
    CommunicationPreference,
    Consent,
    Customer,
    Invoice,
    Quote,
    Service,
    ServiceProvider,
    utcnow,
)
from portal.outbox import queue_notice
from scheduler.planning import cancel_reminders, plan_reminders


@dataclass
class Upserted:
    row: object
    created: bool
    changed: bool
    invitation: InvitationResult | None = None


def get_by_external_id(session: Session, model, external_id: str, *, lock: bool = False):
    query = select(model).where(model.external_id == external_id)
    if lock:  # PostgreSQL: a concurrent portal reschedule waits instead of racing on version
        query = query.with_for_update()
    return session.scalar(query)


def require(session: Session, model, external_id: str, what: str, *, lock: bool = False):
    row = get_by_external_id(session, model, external_id, lock=lock)
    if row is None:
        raise NotFound(f"no {what} {external_id!r}")
    return row


def _resolve(session: Session, refs: dict[str, tuple[type, str | None]]) -> dict:
    """Look up referenced rows by external id; all unknown ones are reported at once (422)."""
    found, errors = {}, {}
    for field, (model, external_id) in refs.items():
        if external_id is None:
            found[field] = None
            continue
        row = get_by_external_id(session, model, external_id)
        if row is None:
            errors[field] = f"unknown {field} {external_id!r}"
        found[field] = row
    if errors:
        raise ValidationError("unknown reference", errors)
    return found


def _assign(row, values: dict) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _lines(lines) -> list[dict]:
    out = []
    for line in lines:
        q = line.quantity
        out.append({"description": line.description, "quantity": int(q) if float(q).is_integer() else q,
                    "unit_cents": line.unit_cents})
    return out


def _upsert(session: Session, model, external_id: str, create: dict, update: dict) -> tuple[object, bool, bool]:
    row = get_by_external_id(session, model, external_id)
    if row is None:
        row = model(external_id=external_id, **create)
        session.add(row)
        session.flush()
        return row, True, True
    changed = _assign(row, update)
    if changed:
        session.flush()
    return row, False, changed


def _fields(data, names: tuple[str, ...]) -> tuple[dict, dict]:
    """(values for a new row: every field, values for an update: only the fields sent)."""
    sent = data.model_fields_set
    create = {n: getattr(data, n) for n in names}
    update = {n: getattr(data, n) for n in names if n in sent}
    return create, update


# --- customers, providers, services ---------------------------------------------


def upsert_customer(session: Session, business: Business, external_id: str, data: CustomerIn) -> Upserted:
    create, update = _fields(data, ("name", "email", "phone", "locale", "timezone"))
    existing = get_by_external_id(session, Customer, external_id)
    if existing is not None:
        # A new address starts with a clean bill: old bounces belonged to the old one.
        if "email" in update and update["email"] != existing.email:
            update["email_status"] = "ok"
        if "phone" in update and update["phone"] != existing.phone:
            update["phone_status"] = "ok"
    customer, created, changed = _upsert(session, Customer, external_id, create, update)
    if data.sms_consent is not None:
        changed |= _record_consent(session, customer, data.sms_consent)
    if data.communication_preferences:
        changed |= _set_preferences(session, customer, data.communication_preferences)
    if changed and not created:
        events.emit(session, business.id, customer.id, "profile_updated", {})
    return Upserted(customer, created, changed)


def _record_consent(session: Session, customer: Customer, consent) -> bool:
    latest = session.scalar(select(Consent).where(Consent.customer_id == customer.id, Consent.channel == "sms")
                            .order_by(Consent.id.desc()).limit(1))
    if latest is not None and (latest.granted, latest.wording, latest.source) == (
            consent.granted, consent.wording, consent.source):
        return False  # the record is append-only; a repeated PUT adds nothing
    session.add(Consent(business_id=customer.business_id, customer_id=customer.id, channel="sms", category=None,
                        granted=consent.granted, wording=consent.wording, source=consent.source))
    session.flush()
    return True


def _set_preferences(session: Session, customer: Customer, prefs: dict) -> bool:
    existing = {(p.category, p.channel): p for p in session.scalars(
        select(CommunicationPreference).where(CommunicationPreference.customer_id == customer.id))}
    changed = False
    for category, channels in prefs.items():
        for channel, enabled in channels.items():
            row = existing.get((category, channel))
            if row is None:
                session.add(CommunicationPreference(business_id=customer.business_id, customer_id=customer.id,
                                                    category=category, channel=channel, enabled=enabled))
                changed = True
            elif row.enabled != enabled:
                row.enabled = enabled
                changed = True
    session.flush()
    return changed


def upsert_provider(session: Session, business: Business, external_id: str, data: ProviderIn) -> Upserted:
    create, update = _fields(data, ("name", "photo_url", "working_hours"))
    for values in (create, update):
        if "working_hours" in values:
            values["working_hours"] = {d: [list(r) for r in rs] for d, rs in (values["working_hours"] or {}).items()}
    row, created, changed = _upsert(session, ServiceProvider, external_id, create, update)
    return Upserted(row, created, changed)


def upsert_service(session: Session, business: Business, external_id: str, data: ServiceIn) -> Upserted:
    create, update = _fields(data, ("name", "duration_minutes"))
    row, created, changed = _upsert(session, Service, external_id, create, update)
    return Upserted(row, created, changed)


# --- bookings ---------------------------------------------------------------------


def _notice_due(booking: Booking, now: datetime) -> bool:
    # Confirming an appointment that is already over (an import) helps nobody.
    return booking.status == "scheduled" and booking.starts_at > now


def _check_slot(session: Session, booking: Booking) -> None:
    """A clear 409 before the database's unique index would refuse the row."""
    if booking.status != "scheduled" or booking.provider_id is None:
        return
    query = select(Booking.external_id).where(
        Booking.provider_id == booking.provider_id, Booking.starts_at == booking.starts_at,
        Booking.status == "scheduled")
    if booking.id is not None:
        query = query.where(Booking.id != booking.id)
    with session.no_autoflush:
        clash = session.scalar(query.limit(1))
    if clash is not None:
        raise Conflict(f"the provider already has booking {clash!r} at that time")


def _booking_event(session: Session, booking: Booking) -> None:
    events.emit(session, booking.business_id, booking.customer_id, "booking_updated",
                {"booking": booking.public_id, "version": booking.version, "status": booking.status,
                 "starts_at": booking.starts_at.isoformat(), "ends_at": booking.ends_at.isoformat()})


def _set_attachments(session: Session, booking: Booking, attachments) -> bool:
    """Replace the booking's linked attachments (uploaded files are left alone)."""
    current = [a for a in booking.attachments if a.url]
    wanted = [(a.filename, a.url, a.content_type) for a in attachments]
    if [(a.filename, a.url, a.content_type) for a in current] == wanted:
        return False
    for a in current:
        session.delete(a)
    for filename, url, content_type in wanted:
        session.add(BookingAttachment(business_id=booking.business_id, booking=booking, filename=filename,
                                      url=url, content_type=content_type))
    session.flush()
    session.expire(booking, ["attachments"])
    return True


def upsert_booking(session: Session, business: Business, external_id: str, data: BookingIn, *,
                   cooldown_s: int) -> Upserted:
    refs = _resolve(session, {"customer": (Customer, data.customer), "provider": (ServiceProvider, data.provider),
                              "service": (Service, data.service)})
    sent = data.model_fields_set
    now = utcnow()
    starts_at, ends_at = data.starts_at.astimezone(timezone.utc), data.ends_at.astimezone(timezone.utc)
    values = {"customer_id": refs["customer"].id, "starts_at": starts_at, "ends_at": ends_at}
    for name in ("provider", "service"):
        if name in sent:
            values[f"{name}_id"] = refs[name].id if refs[name] else None
    for name in ("address", "notes"):
        if name in sent:
            values[name] = getattr(data, name)

    booking = get_by_external_id(session, Booking, external_id, lock=True)
    created = booking is None
    notice = None
    if created:
        booking = Booking(business_id=business.id, external_id=external_id, status=data.status, version=1, **values)
        _check_slot(session, booking)
        session.add(booking)
        session.flush()
        changed, notice = True, "booking_confirmation"
    else:
        moved = (booking.starts_at, booking.ends_at) != (starts_at, ends_at)
        changed = _assign(booking, values)
        if "status" in sent and data.status != booking.status:
            if booking.status == "cancelled":  # the booking system reinstated it
                booking.cancelled_at, booking.cancel_reason = None, None
                booking.version += 1
                notice = "booking_confirmation"
            booking.status = data.status
            changed = True
        if moved and booking.status == "scheduled" and notice is None:
            booking.version += 1
            notice = "reschedule_confirmation"
        _check_slot(session, booking)
        session.flush()
    if data.attachments is not None:
        changed |= _set_attachments(session, booking, data.attachments)

    if notice is not None:
        plan_reminders(session, booking, business)
        if data.notify and _notice_due(booking, now):
            queue_notice(session, kind=notice, customer=refs["customer"], booking=booking,
                         key=f"booking:{booking.id}:v{booking.version}")
    elif changed:
        # Completed: its reminders are cancelled; scheduled again (a completion undone): planned again.
        plan_reminders(session, booking, business)
    if changed:
        _booking_event(session, booking)

    invitation = None
    # Auto-invite, like the confirmation, only for an appointment still to come (not an import of history).
    if data.invite or (created and business.auto_invite and _notice_due(booking, now)):
        invitation = invite(session, refs["customer"], cooldown_s=cooldown_s,
                            source="booking" if data.invite else "auto_invite")
    return Upserted(booking, created, changed, invitation)


def cancel_booking(session: Session, business: Business, external_id: str, data: CancelIn) -> Upserted:
    booking = require(session, Booking, external_id, "booking", lock=True)
    if booking.status == "cancelled":
        return Upserted(booking, False, False)  # cancelling twice is a no-op, not an error
    booking.status = "cancelled"
    booking.cancelled_at = utcnow()
    booking.cancel_reason = data.reason
    booking.version += 1
    session.flush()
    cancel_reminders(session, booking, reason="cancelled by the business")
    if data.notify and booking.starts_at > booking.cancelled_at:
        queue_notice(session, kind="cancellation_confirmation", customer=booking.customer, booking=booking,
                     key=f"booking:{booking.id}:v{booking.version}", params={"by": "business"})
    _booking_event(session, booking)
    return Upserted(booking, False, True)


# --- invoices and quotes -------------------------------------------------------------


def upsert_invoice(session: Session, business: Business, external_id: str, data: InvoiceIn, *,
                   cooldown_s: int) -> Upserted:
    refs = _resolve(session, {"customer": (Customer, data.customer), "booking": (Booking, data.booking)})
    names = ("number", "currency", "amount_cents", "amount_paid_cents", "issued_on", "due_on", "payment_status")
    create, update = _fields(data, names)
    for values in (create, update):
        values["customer_id"] = refs["customer"].id
        if "lines" in data.model_fields_set or values is create:
            values["lines"] = _lines(data.lines)
    if "booking" in data.model_fields_set:
        update["booking_id"] = refs["booking"].id if refs["booking"] else None
    create["booking_id"] = refs["booking"].id if refs["booking"] else None

    before = get_by_external_id(session, Invoice, external_id)
    was_paid = before is not None and before.payment_status == "paid"
    invoice, created, changed = _upsert(session, Invoice, external_id, create, update)
    customer = refs["customer"]
    if created and data.notify:
        queue_notice(session, kind="invoice_issued", customer=customer, key=f"invoice:{invoice.id}:issued",
                     params={"invoice": invoice.public_id})
    elif not created and not was_paid and invoice.payment_status == "paid" and not (
            "notify" in data.model_fields_set and not data.notify):
        queue_notice(session, kind="payment_receipt", customer=customer, key=f"invoice:{invoice.id}:paid",
                     params={"invoice": invoice.public_id})
    if changed and business.show_invoices:  # open pages say nothing of a section the customer cannot open
        events.emit(session, business.id, customer.id, "invoice_updated", {"invoice": invoice.public_id})
    invitation = invite(session, customer, cooldown_s=cooldown_s, source="invoice") if data.invite else None
    return Upserted(invoice, created, changed, invitation)


def upsert_quote(session: Session, business: Business, external_id: str, data: QuoteIn, *,
                 cooldown_s: int) -> Upserted:
    refs = _resolve(session, {"customer": (Customer, data.customer)})
    create, update = _fields(data, ("number", "currency", "total_cents", "status", "valid_until"))
    for values in (create, update):
        values["customer_id"] = refs["customer"].id
        if "lines" in data.model_fields_set or values is create:
            values["lines"] = _lines(data.lines)
    before = get_by_external_id(session, Quote, external_id)
    if before is not None and "status" in update and update["status"] != before.status:
        update["decided_at"] = utcnow() if update["status"] in ("approved", "declined") else None
    quote, created, changed = _upsert(session, Quote, external_id, create, update)
    customer = refs["customer"]
    if created and data.notify and quote.status == "pending":
        queue_notice(session, kind="quote_ready", customer=customer, key=f"quote:{quote.id}:ready",
                     params={"quote": quote.public_id})
    if changed and business.show_quotes:  # open pages say nothing of a section the customer cannot open
        events.emit(session, business.id, customer.id, "quote_updated", {"quote": quote.public_id})
    invitation = invite(session, customer, cooldown_s=cooldown_s, source="quote") if data.invite else None
    return Upserted(quote, created, changed, invitation)


# --- the business's portal settings ------------------------------------------------------

_PLAIN_SETTINGS = (
    "portal_enabled", "show_attachments", "show_invoices", "show_provider_photos", "show_quotes",
    "allow_reschedule", "reschedule_min_notice_minutes", "max_reschedules", "allow_cancel",
    "cancel_min_notice_minutes", "booking_horizon_days", "auto_invite", "embed_origins", "webhook_url",
)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def update_settings(session: Session, business: Business, data: SettingsIn, *,
                    allow_private_webhooks: bool = False) -> bool:
    """Apply the fields sent (explicit nulls clear nullable ones); returns whether anything changed.

    A webhook URL must resolve to public addresses unless ``allow_private_webhooks``
    (``WEBHOOK_ALLOW_PRIVATE``); the worker checks again before each post.
    """
    sent = data.model_fields_set
    values = {n: getattr(data, n) for n in _PLAIN_SETTINGS if n in sent}
    errors = {n: "must not be null" for n, v in values.items() if v is None and n != "webhook_url"}
    if values.get("webhook_url") and not allow_private_webhooks:
        try:
            netguard.check_url(values["webhook_url"])  # a DNS lookup: before the first query opens a transaction
        except UnsafeUrl as exc:
            errors["webhook_url"] = str(exc)
    business = session.get(Business, business.id)
    if "reminder_offsets" in sent:
        if data.reminder_offsets is None:
            errors["reminder_offsets"] = "must not be null"
        else:
            values["reminder_offsets"] = sorted(set(data.reminder_offsets), reverse=True)
    if "quiet_hours" in sent and data.quiet_hours is None:
        errors["quiet_hours"] = "must not be null"
    elif data.quiet_hours is not None:
        # Only the ends sent change, like every other setting.
        for end in data.quiet_hours.model_fields_set:
            values[f"quiet_{end}_minute"] = _minutes(getattr(data.quiet_hours, end))
        start = values.get("quiet_start_minute", business.quiet_start_minute)
        if start == values.get("quiet_end_minute", business.quiet_end_minute):
            # 12:00 to 12:00: the whole day would be quiet and texts held back for ever.
            errors["quiet_hours"] = "start and end must differ: texts need some hours to go out"
    if data.branding is not None:
        nullable = {"logo_url", "support_email", "support_phone", "help_reply"}
        for name in data.branding.model_fields_set:
            value = getattr(data.branding, name)
            if value is None and name not in nullable:
                errors[f"branding.{name}"] = "must not be null"
            values[name] = value
    if errors:
        raise ValidationError("invalid request", errors)
    offsets_before = list(business.reminder_offsets or [])
    changed = _assign(business, values)
    session.flush()
    if list(business.reminder_offsets or []) != offsets_before:
        # Upcoming appointments follow the new offsets (plan_reminders keeps what already went out).
        upcoming = session.scalars(select(Booking).where(Booking.status == "scheduled", Booking.starts_at > utcnow()))
        for booking in upcoming:
            plan_reminders(session, booking, business)
    return changed

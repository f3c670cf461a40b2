"""Bookings: lists, detail, reschedule, cancel, attachments.

    GET  /{slug}/bookings
    GET  /{slug}/bookings/{public_id}
    GET  /{slug}/bookings/{public_id}/reschedule      free slots in the customer's timezone
    POST /{slug}/bookings/{public_id}/reschedule      slot=<ISO UTC>, version
    GET  /{slug}/bookings/{public_id}/cancel          confirm, with an optional reason
    POST /{slug}/bookings/{public_id}/cancel          reason, version
    GET  /{slug}/bookings/{public_id}/attachments/{attachment_public_id}

Every lookup is by the booking's unguessable public id AND the signed-in
customer's id, inside a tenant session: anything else is the same 404.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import booking_changes as bc
from portal import selfservice as ss
from portal.errors import Conflict, PolicyError, ValidationError
from portal.models import Booking, Business, Message, utcnow
from portal.pagination import page_number
from portal.slots import group_by_local_day
from portal_web.keys import BUSINESS, CUSTOMER
from portal_web.sessions import login_required
from portal_web.shell import render_portal
from portal_web.views.selfservice.common import (
    PUBLIC_ID,
    SLUG,
    field,
    form_data,
    in_customer_tenant,
    notice,
    parse_slot,
    parse_version,
    redirect,
    slot_value,
    tr,
)

STATUS_LABELS = {"scheduled": "Scheduled", "cancelled": "Cancelled", "completed": "Completed"}
MESSAGE_STATUS_LABELS = {
    "queued": "Queued", "sending": "Sending", "sent": "Sent", "delivered": "Delivered", "failed": "Failed",
    "skipped": "Not sent", "unknown": "Checking", "dead": "Failed",
}
MESSAGE_KIND_LABELS = {
    "booking_confirmation": "Booking confirmation", "reschedule_confirmation": "Reschedule confirmation",
    "cancellation_confirmation": "Cancellation confirmation", "appointment_reminder": "Appointment reminder",
}


def _load_parts(booking: Booking, business: Business) -> None:
    # Touch the relationships while the session is open: templates get detached rows.
    _ = booking.service, booking.provider
    if business.show_attachments:
        _ = list(booking.attachments)


def _detail(db: Session, business: Business, customer_id: int, public_id: str) -> dict:
    booking = bc.get_booking(db, customer_id, public_id)
    _load_parts(booking, business)
    now = utcnow()
    messages = db.scalars(select(Message).where(Message.booking_id == booking.id, Message.customer_id == customer_id,
                                                 Message.kind.in_(tuple(MESSAGE_KIND_LABELS)))
                          .order_by(Message.id.desc()).limit(10)).all()
    return {"booking": booking, "can_reschedule": bc.can_reschedule(business, booking, now),
            "can_cancel": bc.can_cancel(business, booking, now), "messages": list(messages)}


def _labels(request) -> dict:
    return {"status_labels": {k: tr(request, v) for k, v in STATUS_LABELS.items()},
            "message_status_labels": {k: tr(request, v) for k, v in MESSAGE_STATUS_LABELS.items()},
            "message_kind_labels": {k: tr(request, v) for k, v in MESSAGE_KIND_LABELS.items()}}


@login_required
async def bookings_list(request: web.Request) -> web.StreamResponse:
    number = page_number(request.query.get("page"))

    def load(db: Session, business: Business, customer_id: int):
        now = utcnow()
        upcoming = bc.upcoming_bookings(db, customer_id, now) if number == 1 else []
        return upcoming, bc.past_bookings(db, customer_id, number, now)

    upcoming, page = await in_customer_tenant(request, load)
    return render_portal(request, "portal/bookings.html", {"upcoming": upcoming, "page": page, **_labels(request),
                                                           "live": True})


@login_required
async def booking_detail(request: web.Request) -> web.StreamResponse:
    public_id = request.match_info["public_id"]
    data = await in_customer_tenant(request, lambda db, b, cid: _detail(db, b, cid, public_id))
    return render_portal(request, "portal/booking.html", {**data, **_labels(request), "notice": notice(request),
                                                          "live": True})


def _reschedule_context(db: Session, business: Business, customer_id: int, public_id: str, tz: str) -> dict:
    booking = bc.get_booking(db, customer_id, public_id)
    _load_parts(booking, business)
    now = utcnow()
    allowed = bc.can_reschedule(business, booking, now)
    slots = bc.available_slots(db, business, booking, now) if allowed else []
    days = [{"day": day, "slots": [{"value": slot_value(s), "at": s} for s in day_slots]}
            for day, day_slots in group_by_local_day(slots, tz).items()]
    return {"booking": booking, "allowed": allowed, "days": days,
            "remaining": max(business.max_reschedules - booking.reschedule_count, 0)}


def _tz(request) -> str:
    customer = request[CUSTOMER]
    return customer.timezone or request[BUSINESS].timezone


@login_required
async def reschedule_form(request: web.Request) -> web.StreamResponse:
    public_id = request.match_info["public_id"]
    tz = _tz(request)
    ctx = await in_customer_tenant(request, lambda db, b, cid: _reschedule_context(db, b, cid, public_id, tz))
    return render_portal(request, "portal/reschedule.html", {**ctx, **_labels(request)})


@login_required
async def reschedule_submit(request: web.Request) -> web.StreamResponse:
    public_id = request.match_info["public_id"]
    slug = request[BUSINESS].slug
    form = await form_data(request)
    try:
        raw_slot = field(form, "slot", max_length=40)
        if not raw_slot:
            raise ValidationError("Choose one of the available times.", {"slot": "required"})
        new_start = parse_slot(raw_slot)
        version = parse_version(form)
        await in_customer_tenant(request, lambda db, b, cid: bc.reschedule(
            db, b, cid, public_id, new_start, expected_version=version))
    except (Conflict, PolicyError, ValidationError) as exc:
        # Show the page again, with fresh slots and the reason, instead of a bare error page.
        tz = _tz(request)
        ctx = await in_customer_tenant(request, lambda db, b, cid: _reschedule_context(db, b, cid, public_id, tz))
        return render_portal(request, "portal/reschedule.html", {**ctx, **_labels(request), "error": tr(request, str(exc))},
                             status=exc.status)
    raise redirect(f"/{slug}/bookings/{quote(public_id)}?done=rescheduled")


@login_required
async def cancel_form(request: web.Request) -> web.StreamResponse:
    public_id = request.match_info["public_id"]

    def load(db: Session, business: Business, customer_id: int):
        booking = bc.get_booking(db, customer_id, public_id)
        _load_parts(booking, business)
        return {"booking": booking, "allowed": bc.can_cancel(business, booking, utcnow())}

    ctx = await in_customer_tenant(request, load)
    return render_portal(request, "portal/cancel.html", {**ctx, **_labels(request)})


@login_required
async def cancel_submit(request: web.Request) -> web.StreamResponse:
    public_id = request.match_info["public_id"]
    slug = request[BUSINESS].slug
    form = await form_data(request)
    reason = ""
    try:
        reason = field(form, "reason", max_length=bc.MAX_REASON)
        version = parse_version(form)
        await in_customer_tenant(request, lambda db, b, cid: bc.cancel(db, b, cid, public_id, reason,
                                                                       expected_version=version))
    except (Conflict, PolicyError, ValidationError) as exc:
        def load(db: Session, business: Business, customer_id: int):
            booking = bc.get_booking(db, customer_id, public_id)
            _load_parts(booking, business)
            return {"booking": booking, "allowed": bc.can_cancel(business, booking, utcnow())}

        ctx = await in_customer_tenant(request, load)
        return render_portal(request, "portal/cancel.html", {**ctx, **_labels(request), "reason": reason[:bc.MAX_REASON],
                                                             "error": tr(request, str(exc))}, status=exc.status)
    raise redirect(f"/{slug}/bookings/{quote(public_id)}?done=cancelled")


def _safe_filename(name: str) -> str:
    cleaned = "".join(ch for ch in name if ch.isprintable() and ch not in '"\\/\r\n;')
    return cleaned.strip() or "attachment"


@login_required
async def attachment(request: web.Request) -> web.StreamResponse:
    booking_id = request.match_info["public_id"]
    attachment_id = request.match_info["attachment_id"]

    def load(db: Session, business: Business, customer_id: int):
        att = ss.get_attachment(db, business, customer_id, booking_id, attachment_id)
        return att.filename, att.content_type, att.content, att.url

    filename, content_type, content, url = await in_customer_tenant(request, load)
    if content is None:
        if url and url.startswith("https://"):
            # A file the booking system hosts: send the owner there (after our ownership check).
            raise web.HTTPSeeOther(url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        raise web.HTTPNotFound(text="This file does not exist.")
    safe = _safe_filename(filename)
    return web.Response(body=content, headers={
        "Content-Type": content_type or "application/octet-stream",
        # Always a download: an uploaded HTML or SVG file never runs in the portal's origin.
        "Content-Disposition": f"attachment; filename=\"{safe.encode('ascii', 'replace').decode()}\"; "
                               f"filename*=UTF-8''{quote(safe)}",
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


def setup(app: web.Application) -> None:
    booking = f"/{SLUG}/bookings/{{public_id:{PUBLIC_ID}}}"
    app.router.add_get(f"/{SLUG}/bookings", bookings_list, name="bookings")
    app.router.add_get(booking, booking_detail, name="booking")
    app.router.add_get(f"{booking}/reschedule", reschedule_form, name="booking_reschedule")
    app.router.add_post(f"{booking}/reschedule", reschedule_submit)
    app.router.add_get(f"{booking}/cancel", cancel_form, name="booking_cancel")
    app.router.add_post(f"{booking}/cancel", cancel_submit)
    app.router.add_get(f"{booking}/attachments/{{attachment_id:{PUBLIC_ID}}}", attachment, name="booking_attachment")

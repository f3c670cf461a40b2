"""The booking-system API's operations (``/api/v1``)."""

from __future__ import annotations

from datetime import date

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal import bookings_sync as sync
from portal.api_schemas import (
    ApiKeyOut,
    BookingIn,
    BookingOut,
    CancelIn,
    CustomerIn,
    CustomerOut,
    InvitationIn,
    InvitationOut,
    InvoiceIn,
    InvoiceOut,
    MessageList,
    ProviderIn,
    ProviderOut,
    QuoteIn,
    QuoteOut,
    ServiceIn,
    ServiceOut,
    SettingsIn,
    SettingsOut,
)
from portal.businesses import rotate_api_key
from portal.errors import ValidationError
from portal.invitations import InvitationResult, invite
from portal.models import (
    Booking,
    Business,
    CommunicationPreference,
    Consent,
    Customer,
    Invoice,
    Message,
    Quote,
    Service,
    ServiceProvider,
)
from portal_web.api.base import (
    Route,
    dump,
    endpoint,
    external_id,
    external_id_value,
    in_business,
    post_once,
    query_limit,
    read_body,
    read_json,
)
from portal_web.keys import SETTINGS

# --- serialisers (run inside the transaction; relations load lazily) ------------


def _invitation(result: InvitationResult | None) -> dict | None:
    return dump(InvitationOut, result.as_dict()) if result is not None else None


def customer_json(session: Session, c: Customer) -> dict:
    prefs: dict[str, dict[str, bool]] = {}
    for p in session.scalars(select(CommunicationPreference).where(CommunicationPreference.customer_id == c.id)):
        prefs.setdefault(p.category, {})[p.channel] = p.enabled
    consent = session.scalar(select(Consent.granted).where(Consent.customer_id == c.id, Consent.channel == "sms")
                             .order_by(Consent.id.desc()).limit(1))
    return dump(CustomerOut, dict(
        external_id=c.external_id, name=c.name, email=c.email, phone=c.phone, locale=c.locale, timezone=c.timezone,
        email_status=c.email_status, phone_status=c.phone_status, last_invited_at=c.last_invited_at,
        sms_consent=consent, communication_preferences=prefs, created_at=c.created_at, updated_at=c.updated_at))


def provider_json(session: Session, p: ServiceProvider) -> dict:
    return dump(ProviderOut, dict(external_id=p.external_id, name=p.name, photo_url=p.photo_url,
                                  working_hours=p.working_hours or {}, updated_at=p.updated_at))


def service_json(session: Session, s: Service) -> dict:
    return dump(ServiceOut, dict(external_id=s.external_id, name=s.name, duration_minutes=s.duration_minutes,
                                 updated_at=s.updated_at))


def booking_json(session: Session, b: Booking, invitation: InvitationResult | None = None) -> dict:
    return dump(BookingOut, dict(
        external_id=b.external_id, customer=b.customer.external_id,
        provider=b.provider.external_id if b.provider else None,
        service=b.service.external_id if b.service else None, status=b.status, starts_at=b.starts_at,
        ends_at=b.ends_at, address=b.address, notes=b.notes, version=b.version,
        reschedule_count=b.reschedule_count, cancel_reason=b.cancel_reason, cancelled_at=b.cancelled_at,
        attachments=[{"filename": a.filename, "url": a.url, "content_type": a.content_type} for a in b.attachments],
        invitation=_invitation(invitation), updated_at=b.updated_at))


def invoice_json(session: Session, i: Invoice, invitation: InvitationResult | None = None) -> dict:
    booking = session.get(Booking, i.booking_id) if i.booking_id else None
    return dump(InvoiceOut, dict(
        external_id=i.external_id, customer=i.customer.external_id,
        booking=booking.external_id if booking else None, number=i.number, currency=i.currency,
        amount_cents=i.amount_cents, amount_paid_cents=i.amount_paid_cents, issued_on=i.issued_on,
        due_on=i.due_on, payment_status=i.payment_status, status=i.status_on(date.today()), lines=i.lines or [],
        invitation=_invitation(invitation), updated_at=i.updated_at))


def quote_json(session: Session, q: Quote, invitation: InvitationResult | None = None) -> dict:
    return dump(QuoteOut, dict(
        external_id=q.external_id, customer=q.customer.external_id, number=q.number, currency=q.currency,
        total_cents=q.total_cents, lines=q.lines or [], status=q.status, valid_until=q.valid_until,
        decided_at=q.decided_at, decision_comment=q.decision_comment, invitation=_invitation(invitation),
        updated_at=q.updated_at))


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def settings_json(session: Session, b: Business) -> dict:
    return dump(SettingsOut, dict(
        slug=b.slug, portal_enabled=b.portal_enabled, show_attachments=b.show_attachments,
        show_invoices=b.show_invoices, show_provider_photos=b.show_provider_photos, show_quotes=b.show_quotes,
        allow_reschedule=b.allow_reschedule, reschedule_min_notice_minutes=b.reschedule_min_notice_minutes,
        max_reschedules=b.max_reschedules, allow_cancel=b.allow_cancel,
        cancel_min_notice_minutes=b.cancel_min_notice_minutes, booking_horizon_days=b.booking_horizon_days,
        reminder_offsets=b.reminder_offsets or [],
        quiet_hours={"start": _hhmm(b.quiet_start_minute), "end": _hhmm(b.quiet_end_minute)},
        auto_invite=b.auto_invite, embed_origins=b.embed_origins or [], webhook_url=b.webhook_url,
        webhook_secret=b.webhook_secret, api_key_prefix=b.api_key_prefix,
        branding=dict(name=b.name, logo_url=b.logo_url, primary_color=b.primary_color, accent_color=b.accent_color,
                      default_locale=b.default_locale, timezone=b.timezone, support_email=b.support_email,
                      support_phone=b.support_phone, help_reply=b.help_reply)))


# --- handlers -----------------------------------------------------------------


def _upsert_handler(model_in, upsert, model, serialise, what: str, *, needs_cooldown: bool = False):
    @endpoint
    async def put(request: web.Request, business: Business) -> web.Response:
        ext = external_id(request)
        data, _ = await read_body(request, model_in, business)
        extra = {"cooldown_s": request.app[SETTINGS].invite_cooldown_s} if needs_cooldown else {}

        def work(session: Session):
            result = upsert(session, business, ext, data, **extra)
            args = (result.invitation,) if needs_cooldown else ()
            return (201 if result.created else 200), serialise(session, result.row, *args)

        status, body = await in_business(request, business, work)
        return web.json_response(body, status=status)

    @endpoint
    async def get(request: web.Request, business: Business) -> web.Response:
        ext = external_id(request)
        body = await in_business(request, business, lambda s: serialise(s, sync.require(s, model, ext, what)))
        return web.json_response(body)

    return put, get


put_customer, get_customer = _upsert_handler(CustomerIn, sync.upsert_customer, Customer, customer_json, "customer")
put_provider, get_provider = _upsert_handler(ProviderIn, sync.upsert_provider, ServiceProvider, provider_json,
                                             "service provider")
put_service, get_service = _upsert_handler(ServiceIn, sync.upsert_service, Service, service_json, "service")
put_booking, get_booking = _upsert_handler(BookingIn, sync.upsert_booking, Booking, booking_json, "booking",
                                           needs_cooldown=True)
put_invoice, get_invoice = _upsert_handler(InvoiceIn, sync.upsert_invoice, Invoice, invoice_json, "invoice",
                                           needs_cooldown=True)
put_quote, get_quote = _upsert_handler(QuoteIn, sync.upsert_quote, Quote, quote_json, "quote", needs_cooldown=True)


@endpoint
async def cancel_booking(request: web.Request, business: Business) -> web.Response:
    ext = external_id(request)
    data, raw = await read_body(request, CancelIn, business)

    def work(session: Session):
        result = sync.cancel_booking(session, business, ext, data)
        return 200, booking_json(session, result.row)

    return await post_once(request, business, raw, work)


@endpoint
async def post_invitation(request: web.Request, business: Business) -> web.Response:
    data, raw = await read_body(request, InvitationIn, business)
    cooldown = request.app[SETTINGS].invite_cooldown_s

    def work(session: Session):
        customer = sync.get_by_external_id(session, Customer, data.customer)
        if customer is None:
            raise ValidationError("unknown reference", {"customer": f"unknown customer {data.customer!r}"})
        result = invite(session, customer, cooldown_s=cooldown, force=data.force, source="api")
        return (202 if result.queued else 200), _invitation(result)

    return await post_once(request, business, raw, work)


@endpoint
async def get_settings(request: web.Request, business: Business) -> web.Response:
    body = await in_business(request, business, lambda s: settings_json(s, s.get(Business, business.id)))
    return web.json_response(body)


@endpoint
async def put_settings(request: web.Request, business: Business) -> web.Response:
    data, _ = await read_body(request, SettingsIn, business)
    allow_private = request.app[SETTINGS].webhook_allow_private

    def work(session: Session):
        sync.update_settings(session, business, data, allow_private_webhooks=allow_private)
        return settings_json(session, session.get(Business, business.id))

    return web.json_response(await in_business(request, business, work))


@endpoint
async def rotate_key(request: web.Request, business: Business) -> web.Response:
    # Deliberately not stored for Idempotency-Key replay: the clear key must never be kept.
    await read_json(request)

    def work(session: Session):
        row = session.get(Business, business.id)
        key = rotate_api_key(session, row)
        return dump(ApiKeyOut, {"api_key": key, "api_key_prefix": row.api_key_prefix})

    return web.json_response(await in_business(request, business, work))


MAX_MESSAGES = 200


@endpoint
async def list_messages(request: web.Request, business: Business) -> web.Response:
    customer_ref = request.query.get("customer")
    if customer_ref is not None:
        customer_ref = external_id_value(customer_ref, "customer")
    limit = query_limit(request, MAX_MESSAGES)

    def work(session: Session):
        query = select(Message).options(selectinload(Message.events)).order_by(Message.id.desc()).limit(limit)
        if customer_ref is not None:
            customer = sync.require(session, Customer, customer_ref, "customer")
            query = query.where(Message.customer_id == customer.id)
        rows = session.scalars(query).all()
        customers = {c.id: c.external_id for c in session.scalars(
            select(Customer).where(Customer.id.in_({m.customer_id for m in rows if m.customer_id})))}
        bookings = {b.id: b.external_id for b in session.scalars(
            select(Booking).where(Booking.id.in_({m.booking_id for m in rows if m.booking_id})))}
        return dump(MessageList, {"messages": [dict(
            id=m.id, kind=m.kind, category=m.category, channel=m.channel,
            customer=customers.get(m.customer_id), booking=bookings.get(m.booking_id), recipient=m.recipient,
            status=m.status, status_reason=m.status_reason, attempts=m.attempts, created_at=m.created_at,
            sent_at=m.sent_at,
            history=[{"status": e.status, "detail": e.detail, "at": e.created_at} for e in m.events],
        ) for m in rows]})

    return web.json_response(await in_business(request, business, work))


def _resource(path: str, name: str, model_in, model_out, put, get, tag: str) -> list[Route]:
    return [
        Route("PUT", path, put, f"Create or update a {name} by the booking system's id", model_out, model_in,
              (200, 201), tag=tag),
        Route("GET", path, get, f"Read a {name}", model_out, tag=tag),
    ]


ROUTES: list[Route] = [
    *_resource("/customers/{external_id}", "customer", CustomerIn, CustomerOut, put_customer, get_customer,
               "customers"),
    *_resource("/service-providers/{external_id}", "service provider", ProviderIn, ProviderOut, put_provider,
               get_provider, "catalogue"),
    *_resource("/services/{external_id}", "service", ServiceIn, ServiceOut, put_service, get_service, "catalogue"),
    *_resource("/bookings/{external_id}", "booking", BookingIn, BookingOut, put_booking, get_booking, "bookings"),
    Route("POST", "/bookings/{external_id}/cancel", cancel_booking, "Cancel a booking (idempotent)", BookingOut,
          CancelIn, tag="bookings"),
    *_resource("/invoices/{external_id}", "invoice", InvoiceIn, InvoiceOut, put_invoice, get_invoice, "billing"),
    *_resource("/quotes/{external_id}", "quote", QuoteIn, QuoteOut, put_quote, get_quote, "billing"),
    Route("POST", "/invitations", post_invitation, "Invite a customer to the portal", InvitationOut, InvitationIn,
          (200, 202), tag="invitations"),
    Route("GET", "/settings", get_settings, "Read the business's portal settings", SettingsOut, tag="settings"),
    Route("PUT", "/settings", put_settings, "Change portal settings (only the fields sent)", SettingsOut,
          SettingsIn, tag="settings"),
    Route("POST", "/api-key/rotate", rotate_key, "Replace the API key; the new key is shown once", ApiKeyOut,
          tag="settings", replays=False),
    Route("GET", "/messages", list_messages, "Messages sent to customers, newest first, with status history",
          MessageList, query={"customer": "The booking system's customer id", "limit": "1-200, default 50"},
          tag="messages"),
]

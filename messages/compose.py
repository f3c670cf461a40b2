"""From a Message row to what a provider sends: checks at send time, context, rendering,
headers and attachments. The worker (``workers.messaging``) calls these; nothing here
talks to a provider.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from messages import channels, ics, links, registry
from messages.providers.base import MESSAGE_ID_ARG, Email, Sms
from messages.render import Rendered, render
from messages.types import portal_link
from portal.models import Booking, Business, Customer, Message

def stale_reason(session: Session, message: Message, now: datetime) -> str | None:
    """Why a queued message must not go out any more (None: it still should).

    The booking is looked at as it is now: a reminder or confirmation for a
    booking that was cancelled or changed after queueing is skipped; the
    customer's preferences, consent and suppressions are applied again.
    """
    mtype = registry.get(message.kind)
    customer = session.get(Customer, message.customer_id) if message.customer_id else None
    if customer is None:
        return "customer no longer exists"
    if mtype.needs_booking:
        booking = session.get(Booking, message.booking_id) if message.booking_id else None
        if booking is None:
            return "booking no longer exists"
        if message.kind == "cancellation_confirmation":
            if booking.status != "cancelled":
                return "booking is no longer cancelled"
        elif booking.status == "cancelled":
            return "booking was cancelled"
        # A cancellation too: cancelled again since (after a reinstatement), the newer one tells it.
        if message.booking_version is not None and booking.version != message.booking_version:
            return f"booking changed since queued (version {message.booking_version} -> {booking.version})"
        if message.kind == "appointment_reminder" and booking.starts_at <= now:
            return "appointment already started"
    return channels.refusal(session, customer, message.kind, message.channel)


def context(session: Session, message: Message, settings) -> dict:
    mtype = registry.get(message.kind)
    ctx = mtype.context(session, message, settings)
    critical = mtype.critical
    ctx["unsubscribe_url"] = (links.unsubscribe_url(settings, message)
                              if message.channel == "email" and not critical else None)
    return ctx


def calendar_attachment(session: Session, message: Message, settings, method: str) -> tuple[str, str, bytes]:
    booking = session.get(Booking, message.booking_id)
    business = session.get(Business, message.business_id)
    customer = session.get(Customer, message.customer_id)
    service = booking.service.name if booking.service else None
    summary = f"{service} - {business.name}" if service else business.name
    url = portal_link(settings, business, f"/bookings/{booking.public_id}")
    data = ics.booking_ics(
        method=method,
        uid=ics.booking_uid(booking.public_id, settings.public_base_url),
        sequence=message.booking_version if message.booking_version is not None else booking.version,
        starts_at=booking.starts_at, ends_at=booking.ends_at, summary=summary,
        description=url or "", location=booking.address, url=url,
        organizer_email=business.support_email or settings.sendgrid_from_email, organizer_name=business.name,
        attendee_email=customer.email, attendee_name=customer.name,
    )
    filename = "cancel.ics" if method == "CANCEL" else "invite.ics"
    return filename, ics.content_type(method), data


def compose(session: Session, message: Message, settings) -> tuple[Email | Sms, Rendered]:
    """Render the message; may mint a sign-in token in ``session`` (commit it with the claim)."""
    mtype = registry.get(message.kind)
    customer = session.get(Customer, message.customer_id)
    business = session.get(Business, message.business_id)
    # The customer as they are now: a changed address or language applies to this message.
    # A sign-in link follows the language of the page it was asked from (params["locale"]).
    asked = (message.params or {}).get("locale")
    message.locale = (asked if isinstance(asked, str) and asked else None) or customer.locale \
        or business.default_locale or "en"
    message.recipient = channels.address(customer, message.channel) or ""
    rendered = render(message.kind, message.channel, message.locale, context(session, message, settings))
    if message.channel == "sms":
        # The Twilio adapter turns message_id into its StatusCallback URL.
        return Sms(to=message.recipient, body=rendered.sms or "", sender=settings.twilio_from_number,
                   message_id=message.id), rendered
    headers = {}
    if not mtype.critical:
        # RFC 8058 one-click unsubscribe: mail clients POST to the URL.
        headers["List-Unsubscribe"] = f"<{links.unsubscribe_url(settings, message)}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    attachments = []
    if mtype.ics and message.booking_id:
        attachments.append(calendar_attachment(session, message, settings, mtype.ics))
    return Email(
        to=message.recipient, subject=rendered.subject or "", text=rendered.text or "", html=rendered.html,
        sender=settings.sendgrid_from_email, sender_name=business.name, reply_to=business.support_email,
        headers=headers, categories=[message.kind, message.category],
        custom_args={MESSAGE_ID_ARG: str(message.id)}, attachments=attachments, message_id=message.id,
    ), rendered

"""The message types: each a small function ``(session, message, settings) -> dict``
returning its template context (see ``templates/messages/<kind>/<locale>/``).

Every context has ``business`` (name, absolute logo URL, colours, support
contact, portal URL), ``customer`` (name, first_name) and ``locale``; the
composer adds ``unsubscribe_url``. Kind-specific parts:

- ``signin_link`` / ``invitation``: ``link`` -- the token is minted here, at send
  time, so only its hash is ever stored (``Message.params`` never holds a secret).
- booking kinds: ``booking`` (when, date, time, short_when, service, provider,
  address, url), in the customer's timezone and language; reschedules may pass
  ``params={"previous_starts_at": iso}``.
- ``invoice_issued`` / ``payment_receipt``: ``params={"invoice": public_id}`` (or
  ``"invoice_id": pk``; optionally ``"amount_cents"`` for the receipt);
  ``quote_ready``: ``{"quote": public_id}`` (or ``"quote_id": pk``).

Portal links (``url``, ``bookings_url``, ``portal_url``) are None when the business's portal
is off or the page's section hidden (``portal_link``): templates then leave the link out.

A context function raises ``Skip(reason)`` when the notice no longer makes sense.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time
from sqlalchemy import select

from messages import links
from messages.quiet_hours import zone
from messages.registry import register
from portal import tokens
from portal.dates import french_ordinal
from portal.money import format_money
from portal.models import Booking, Business, Customer, Invoice, Quote

HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class Skip(Exception):
    """The notice should not go out any more; the message is marked skipped with this reason."""


# --- shared helpers ---------------------------------------------------------

def babel_locale(locale: str | None) -> Locale:
    try:
        return Locale.parse((locale or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def _plain(text: str) -> str:
    # Babel uses narrow and non-breaking spaces, which would push an SMS out of GSM-7.
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def _color(value: str | None, default: str) -> str:
    return value if value and HEX_COLOR.match(value) else default


def readable_on(hex_color: str) -> str:
    """Black or white, whichever reads better on ``hex_color`` (WCAG relative luminance)."""
    channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "#000000" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "#ffffff"


def _absolute(settings, url: str | None) -> str | None:
    if not url:
        return None
    if url.startswith(("http://", "https://")):
        return url
    return f"{settings.public_base_url}/{url.lstrip('/')}"


def business_context(settings, business: Business) -> dict:
    primary = _color(business.primary_color, "#1d4ed8")
    return {
        "name": business.name,
        "slug": business.slug,
        "logo_url": _absolute(settings, business.logo_url),
        "primary_color": primary,
        "accent_color": _color(business.accent_color, "#f59e0b"),
        "on_primary": readable_on(primary),
        "support_email": business.support_email,
        "support_phone": business.support_phone,
        "portal_url": portal_link(settings, business, ""),
    }


def portal_link(settings, business: Business, path: str = "/", section: str | None = None) -> str | None:
    """A portal page to link to; None when the business's portal is off or ``section``
    (invoices, quotes) is hidden: those pages answer 404, so the message goes without the link."""
    if not business.portal_enabled or (section and not getattr(business, f"show_{section}")):
        return None
    return links.portal_url(settings, business.slug, path)


def _customer(session, message) -> Customer:
    customer = session.get(Customer, message.customer_id) if message.customer_id else None
    if customer is None:
        raise Skip("customer no longer exists")
    return customer


def base_context(session, message, settings) -> dict:
    customer = _customer(session, message)
    business = session.get(Business, message.business_id)
    name = (customer.name or "").strip()
    return {
        "business": business_context(settings, business),
        "customer": {"name": name, "first_name": name.split(" ")[0] if name else ""},
        "locale": message.locale or customer.locale or "en",
    }


def when(dt: datetime, tzname: str | None, business_tz: str | None, locale: str) -> dict:
    """A moment in the customer's timezone and language, in the forms the templates use."""
    tz = zone(tzname, business_tz)
    loc = babel_locale(locale)
    local = dt.astimezone(tz)
    day = french_ordinal(_plain(format_date(local.date(), "full", locale=loc)), local.day, locale)
    clock = _plain(format_time(local, "short", tzinfo=tz, locale=loc))
    short_day = french_ordinal(_plain(format_skeleton("MMMEd", local, tzinfo=tz, locale=loc)), local.day, locale)
    joiner = " à " if loc.language == "fr" else " at "
    return {"when": f"{day}{joiner}{clock}", "date": day, "time": clock,
            "short_when": f"{short_day} {clock}", "timezone": tz.key}


def money(cents: int, currency: str, locale: str) -> str:
    return _plain(format_money(cents, currency, locale))  # as the invoice page says it


def day(value: date | None, locale: str) -> str | None:
    if value is None:
        return None
    return french_ordinal(_plain(format_date(value, "long", locale=babel_locale(locale))), value.day, locale)


def booking_context(session, message, settings) -> dict:
    ctx = base_context(session, message, settings)
    booking = session.get(Booking, message.booking_id) if message.booking_id else None
    if booking is None:
        raise Skip("booking no longer exists")
    customer = _customer(session, message)
    business = session.get(Business, booking.business_id)
    b = when(booking.starts_at, customer.timezone, business.timezone, ctx["locale"])
    b.update(
        service=booking.service.name if booking.service else None,
        provider=booking.provider.name if booking.provider else None,
        address=booking.address,
        url=portal_link(settings, business, f"/bookings/{booking.public_id}"),
        cancel_reason=booking.cancel_reason,
        # "View or change" only where the business lets customers change bookings online.
        changeable=bool(business.allow_reschedule or business.allow_cancel),
    )
    previous = (message.params or {}).get("previous_starts_at")
    b["previous_when"] = None
    if previous:
        try:
            b["previous_when"] = when(datetime.fromisoformat(previous), customer.timezone, business.timezone,
                                      ctx["locale"])["when"]
        except (TypeError, ValueError):
            pass
    ctx["booking"] = b
    return ctx


# --- the types ----------------------------------------------------------------

def link_context(session, message, settings, purpose: str, ttl_s: int) -> dict:
    """Context with a fresh magic link, minted now so only its hash is ever stored.

    ``params["next"]``: the portal page the link leads to once used (link_path checks it)."""
    ctx = base_context(session, message, settings)
    raw = tokens.mint(session, _customer(session, message), purpose, ttl_s)
    back = (message.params or {}).get("next")
    ctx["link"] = settings.public_base_url + tokens.link_path(ctx["business"]["slug"], raw,
                                                              back if isinstance(back, str) else None)
    return ctx


@register("signin_link", "account", urgent=True)
def signin_link(session, message, settings) -> dict:
    ctx = link_context(session, message, settings, "signin", settings.signin_token_ttl_s)
    ctx["expires_minutes"] = max(1, settings.signin_token_ttl_s // 60)
    return ctx


@register("invitation", "account")
def invitation(session, message, settings) -> dict:
    ctx = link_context(session, message, settings, "invitation", settings.invitation_token_ttl_s)
    ctx["expires_days"] = max(1, settings.invitation_token_ttl_s // 86400)
    business = session.get(Business, message.business_id)
    ctx["offers"] = {"reschedule": business.allow_reschedule, "cancel": business.allow_cancel,
                     "invoices": business.show_invoices, "quotes": business.show_quotes}
    return ctx


@register("appointment_reminder", "reminders", needs_booking=True)
def appointment_reminder(session, message, settings) -> dict:
    return booking_context(session, message, settings)


@register("booking_confirmation", "booking_updates", ics="REQUEST")
def booking_confirmation(session, message, settings) -> dict:
    return booking_context(session, message, settings)


@register("reschedule_confirmation", "booking_updates", ics="REQUEST")
def reschedule_confirmation(session, message, settings) -> dict:
    return booking_context(session, message, settings)


@register("cancellation_confirmation", "booking_updates", ics="CANCEL")
def cancellation_confirmation(session, message, settings) -> dict:
    ctx = booking_context(session, message, settings)
    # The email's button reads "my appointments": the list of what is still booked, not the cancelled one.
    ctx["bookings_url"] = portal_link(settings, session.get(Business, message.business_id), "/bookings")
    return ctx


def _row(session, message, model, name: str):
    """The invoice or quote named by ``params[name + "_id"]`` (primary key) or ``params[name]`` (public id)."""
    params = message.params or {}
    row = None
    if isinstance(params.get(f"{name}_id"), int):
        row = session.get(model, params[f"{name}_id"])
    elif isinstance(params.get(name), str):
        row = session.scalar(select(model).where(model.public_id == params[name]))
    if row is None or row.business_id != message.business_id or row.customer_id != message.customer_id:
        raise Skip(f"{name} no longer exists")
    return row


def _invoice(session, message) -> Invoice:
    return _row(session, message, Invoice, "invoice")


def _section_url(settings, session, message, section: str, path: str) -> str | None:
    """The portal page of an invoice or quote, if its section is shown (see ``portal_link``)."""
    return portal_link(settings, session.get(Business, message.business_id), path, section)


def _invoice_context(settings, session, message, invoice: Invoice, locale: str) -> dict:
    return {
        "number": invoice.number,
        "amount": money(invoice.amount_cents, invoice.currency, locale),
        "balance": money(invoice.amount_cents - invoice.amount_paid_cents, invoice.currency, locale),
        "issued_on": day(invoice.issued_on, locale),
        "due_on": day(invoice.due_on, locale),
        "url": _section_url(settings, session, message, "invoices", f"/invoices/{invoice.public_id}"),
    }


@register("invoice_issued", "billing")
def invoice_issued(session, message, settings) -> dict:
    ctx = base_context(session, message, settings)
    ctx["invoice"] = _invoice_context(settings, session, message, _invoice(session, message), ctx["locale"])
    return ctx


@register("payment_receipt", "billing")
def payment_receipt(session, message, settings) -> dict:
    ctx = base_context(session, message, settings)
    invoice = _invoice(session, message)
    ctx["invoice"] = _invoice_context(settings, session, message, invoice, ctx["locale"])
    amount = (message.params or {}).get("amount_cents")
    if not isinstance(amount, int):
        amount = invoice.amount_paid_cents
    ctx["payment"] = {"amount": money(amount, invoice.currency, ctx["locale"])}
    return ctx


@register("quote_ready", "quotes")
def quote_ready(session, message, settings) -> dict:
    ctx = base_context(session, message, settings)
    quote = _row(session, message, Quote, "quote")
    ctx["quote"] = {
        "number": quote.number,
        "total": money(quote.total_cents, quote.currency, ctx["locale"]),
        "valid_until": day(quote.valid_until, ctx["locale"]),
        "url": _section_url(settings, session, message, "quotes", f"/quotes/{quote.public_id}"),
    }
    return ctx

"""Sign-in by magic link, sign-out and the dashboard.

    GET/POST /{slug}/signin      ask for a link (English)
    GET/POST /{slug}/connexion   the same, in French
    GET/HEAD /{slug}/link/{token}  "Continue as j•••@example.com": shows, never uses, the link
    POST     /{slug}/link/{token}  uses the link up (atomically) and starts a session
    POST     /{slug}/signout     ends the session on the server
    GET      /{slug}/ and /{slug}/dashboard   the signed-in home page
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import web
from sqlalchemy import and_, bindparam, func, literal, or_, select, true
from sqlalchemy.orm import Session

from portal import tokens
from portal.errors import ValidationError
from portal.metrics import SIGNINS
from portal.models import Booking, Customer, Invoice, Quote, Service, ServiceProvider, utcnow
from portal_web import csrf, ratelimit
from portal_web.db import in_tenant
from portal_web.forms import read_form
from portal_web.i18n import gettext
from portal_web.keys import BUSINESS, CUSTOMER, LOCALE, REDIS, SETTINGS
from portal_web.sessions import (
    COOKIE,
    clear_session_cookie,
    create_session,
    current_session,
    destroy_session,
    login_required,
    set_session_cookie,
    signed_in,
)
from portal_web.shell import SIGNIN_PATHS, load_business, negotiate_locale, render_portal, signin_path
from portal_web.views.selfservice.bookings import STATUS_LABELS

log = logging.getLogger(__name__)
SLUG = r"{slug:[a-z0-9][a-z0-9-]{0,63}}"
NO_REFERRER = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def mask_phone(phone: str) -> str:
    return f"•••-•••-{phone[-4:]}" if len(phone) >= 4 else "•••"


def masked_identity(customer: Customer) -> str:
    if customer.email:
        return mask_email(customer.email)
    return mask_phone(customer.phone or "")


def return_to(request: web.Request, business) -> str | None:
    """``?next=``: the portal page to land on once signed in, if it is a safe one."""
    return tokens.safe_return_path(business.slug, request.query.get("next"))


def _signin_context(request: web.Request, business, locale: str, **extra) -> dict:
    keep = tokens.next_query(return_to(request, business))  # the form and language links carry it on
    return {
        "csrf_token": csrf.signin_form_token(request, business.id),
        "form_action": signin_path(business.slug, locale) + keep,
        "languages": [{"code": code, "name": name, "href": signin_path(business.slug, code) + keep,
                       "current": code == locale}
                      for code, name in (("en", "English"), ("fr", "Français"))],
        "ttl_minutes": request.app[SETTINGS].signin_token_ttl_s // 60,
        **extra,
    }


# --- asking for a link ---

def signin_page(locale: str):
    async def get(request: web.Request) -> web.StreamResponse:
        business = await load_business(request)
        if await current_session(request) is not None:
            raise web.HTTPSeeOther(return_to(request, business) or f"/{business.slug}/")
        return render_portal(request, "portal/signin.html", _signin_context(request, business, locale),
                             locale=locale)

    async def post(request: web.Request) -> web.StreamResponse:
        business = await load_business(request)
        request[LOCALE] = locale
        await csrf.verify(request, csrf.signin_form_token(request, business.id))
        form = await read_form(request)
        raw = form.get("identifier") if isinstance(form.get("identifier"), str) else ""
        from workers.signin import parse_identifier, request_signin_link

        try:
            parse_identifier(raw)
        except ValidationError as exc:
            # Depends on what was typed only, never on whether it is a customer's.
            return render_portal(request, "portal/signin.html", _signin_context(
                request, business, locale, error=gettext(locale, str(exc)), identifier=raw.strip()[:254]),
                status=422, locale=locale)
        settings = request.app[SETTINGS]
        _kind, value = parse_identifier(raw)
        allowed = await ratelimit.allow_signin_request(request.app[REDIS], settings, business.id,
                                                       ratelimit.client_ip(request, settings.trusted_proxy_hops), value)
        if allowed:
            try:
                # A push onto the queue: the same work whether or not the customer exists.
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: request_signin_link.send(business.id, value, locale, uuid.uuid4().hex,
                                                           return_to(request, business)))
            except Exception:
                log.warning("could not enqueue a sign-in link request", exc_info=True)
        SIGNINS.labels(outcome="link_requested" if allowed else "rate_limited").inc()
        # Identical for every identifier: no echo of what was typed, no token, no cookie.
        return render_portal(request, "portal/signin_sent.html", _signin_context(request, business, locale,
                             csrf_token=""), locale=locale)

    return get, post


# --- using a link ---

async def _stale_link(request: web.Request, business, raw: str) -> web.Response:
    """A used, expired or unknown link's page, in its customer's language when the link was real
    (the one it was sent in), else the browser's."""
    owner = await in_tenant(request.app, business.id, lambda db: tokens.owner(db, business.id, raw))
    return _invalid_link(request, business, negotiate_locale(request, customer=owner))


def _invalid_link(request: web.Request, business, locale: str) -> web.Response:
    resp = render_portal(request, "portal/link_invalid.html", _signin_context(request, business, locale),
                         status=410, locale=locale)
    resp.headers.update(NO_REFERRER)
    return resp


async def link_get(request: web.Request) -> web.StreamResponse:
    """Shows who the link signs in; GET and HEAD never use it up (mail scanners follow links)."""
    business = await load_business(request)
    raw = request.match_info["token"]

    def peek(db: Session):
        token = tokens.peek(db, business.id, raw)
        if token is None:
            return None
        return db.get(Customer, token.customer_id), token.purpose

    found = await in_tenant(request.app, business.id, peek)
    if found is None or found[0] is None:
        return await _stale_link(request, business, raw)
    customer, purpose = found
    locale = negotiate_locale(request, customer=customer)
    resp = render_portal(request, "portal/link.html", {
        "identity": masked_identity(customer), "purpose": purpose,
        "csrf_token": csrf.link_form_token(request, business.id, raw),
        "form_action": tokens.link_path(business.slug, raw, return_to(request, business)),
    }, locale=locale)
    resp.headers.update(NO_REFERRER)
    return resp


async def link_post(request: web.Request) -> web.StreamResponse:
    """Uses the link up and signs in; of two simultaneous POSTs exactly one gets a session."""
    business = await load_business(request)
    raw = request.match_info["token"]
    await csrf.verify(request, csrf.link_form_token(request, business.id, raw))
    settings = request.app[SETTINGS]
    old_cookie = request.cookies.get(COOKIE)

    def sign_in(db: Session):
        token = tokens.consume(db, business.id, raw)
        if token is None:
            return None
        # No fixation: whatever session id the browser brought is destroyed, never reused.
        destroy_session(db, old_cookie)
        session_id, _row = create_session(db, business.id, token.customer_id, settings)
        return session_id, db.get(Customer, token.customer_id), token.purpose

    result = await in_tenant(request.app, business.id, sign_in)
    if result is None:
        SIGNINS.labels(outcome="invalid_link").inc()
        return await _stale_link(request, business, raw)
    session_id, customer, purpose = result
    SIGNINS.labels(outcome="success").inc()
    resp = web.Response(status=303, headers={"Location": return_to(request, business) or f"/{business.slug}/",
                                             **NO_REFERRER})
    set_session_cookie(resp, session_id, business.slug, settings)
    return resp


# --- signed in ---

@login_required
async def signout(request: web.Request) -> web.StreamResponse:
    business = request[BUSINESS]
    raw = request.cookies.get(COOKIE)
    await in_tenant(request.app, business.id, lambda db: destroy_session(db, raw))
    resp = web.Response(status=303, headers={"Location": signin_path(business.slug, request[LOCALE]),
                                             "Cache-Control": "no-store"})
    clear_session_cookie(resp, business.slug, request.app[SETTINGS])
    SIGNINS.labels(outcome="signed_out").inc()
    return resp


async def signout_get(request: web.Request) -> web.StreamResponse:
    """The sign-out address typed or reloaded: a GET changes nothing (no CSRF token), so it
    leads to the home page, whose Sign out button does it (or to sign-in, if signed out already)."""
    raise web.HTTPSeeOther(f"/{request.match_info['slug']}/", headers={"Cache-Control": "no-store"})


# The home page's reads, built once as Core statements on the tables: with the
# ORM and the session's tenant criteria they cost three times as much, on the
# page every customer opens first. They run on the session's connection, so the
# tenant filter is explicit: every table is matched on ``business_id``.
_BK, _SV, _PR = Booking.__table__, Service.__table__, ServiceProvider.__table__
_UPCOMING = (
    select(_BK.c.public_id, _BK.c.starts_at, _BK.c.address,
           _SV.c.name.label("service_name"), _PR.c.name.label("provider_name"))
    .select_from(_BK.outerjoin(_SV, and_(_SV.c.id == _BK.c.service_id, _SV.c.business_id == _BK.c.business_id))
                 .outerjoin(_PR, and_(_PR.c.id == _BK.c.provider_id, _PR.c.business_id == _BK.c.business_id)))
    .where(_BK.c.business_id == bindparam("business_id"), _BK.c.customer_id == bindparam("customer_id"),
           _BK.c.status == "scheduled", _BK.c.ends_at >= bindparam("now"))
    .order_by(_BK.c.starts_at).limit(3)
)
_IV, _QT = Invoice.__table__, Quote.__table__
_OPEN_INVOICES = select(func.count()).select_from(_IV).where(
    _IV.c.business_id == bindparam("business_id"), _IV.c.customer_id == bindparam("customer_id"),
    # Not IN (...): an expanding parameter is rewritten on every execution.
    or_(_IV.c.payment_status == "unpaid", _IV.c.payment_status == "partially_paid")).scalar_subquery()
_PENDING_QUOTES = select(func.count()).select_from(_QT).where(
    _QT.c.business_id == bindparam("business_id"), _QT.c.customer_id == bindparam("customer_id"),
    _QT.c.status == "pending").scalar_subquery()


def _home_statement(show_invoices: bool, show_quotes: bool):
    """The page's reads in one statement (one round trip, one execute: each cost a tenth of
    the page): a one-row ``counts`` (0 for a section the business hides, not counted at
    all) joined to the next three bookings, so the counts arrive even with no booking."""
    counts = select((_OPEN_INVOICES if show_invoices else literal(0)).label("open_invoices"),
                    (_PENDING_QUOTES if show_quotes else literal(0)).label("pending_quotes")).subquery("counts")
    upcoming = _UPCOMING.subquery("upcoming")
    return (select(counts, upcoming).select_from(counts.outerjoin(upcoming, true()))
            .order_by(upcoming.c.starts_at))


_HOME = {(inv, qt): _home_statement(inv, qt) for inv in (True, False) for qt in (True, False)}


def dashboard_data(db: Session, business, customer: Customer) -> dict:
    """The home page's reads: next three bookings, open invoices, pending quotes."""
    params = {"business_id": business.id, "customer_id": customer.id, "now": utcnow()}
    rows = db.connection().execute(_HOME[bool(business.show_invoices), bool(business.show_quotes)], params).all()
    return {"upcoming": [row for row in rows if row.public_id is not None],
            "open_invoices": rows[0].open_invoices, "pending_quotes": rows[0].pending_quotes}


async def dashboard(request: web.Request) -> web.StreamResponse:
    # signed_in: the sign-in check and the page's reads in one database hop (as login_required would).
    data = await signed_in(request, dashboard_data)
    # For live updates: a booking the office cancels shows its new status.
    status_labels = {key: gettext(request[LOCALE], label) for key, label in STATUS_LABELS.items()}
    return render_portal(request, "portal/dashboard.html", {**data, "status_labels": status_labels})


async def business_root(request: web.Request) -> web.StreamResponse:
    business = await load_business(request)
    raise web.HTTPMovedPermanently(f"/{business.slug}/")


def setup(app: web.Application) -> None:
    for locale, segment in SIGNIN_PATHS.items():
        get, post = signin_page(locale)
        app.router.add_get(f"/{SLUG}/{segment}", get, name=f"signin_{locale}")
        app.router.add_post(f"/{SLUG}/{segment}", post)
    app.router.add_get(f"/{SLUG}/link/{{token}}", link_get, name="link")
    app.router.add_post(f"/{SLUG}/link/{{token}}", link_post)
    app.router.add_post(f"/{SLUG}/signout", signout, name="signout")
    app.router.add_get(f"/{SLUG}/signout", signout_get)
    app.router.add_get(f"/{SLUG}/", dashboard, name="dashboard")
    app.router.add_get(f"/{SLUG}/dashboard", dashboard)
    app.router.add_get(f"/{SLUG}", business_root)

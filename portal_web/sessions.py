"""Server-side portal sessions and the ``login_required`` decorator.

The cookie holds 256 random bits; the database keeps only their SHA-256 in a
``PortalSession`` row bound to one business and customer. A new id is made at
every sign-in (any session cookie already present is destroyed, never
reused), the cookie is HttpOnly, SameSite=Lax, Secure when PUBLIC_BASE_URL is
https, and scoped to ``Path=/{slug}``. A session ends after
``SESSION_IDLE_TIMEOUT`` without a request or ``SESSION_ABSOLUTE_TIMEOUT``
after sign-in, whichever comes first, or at sign-out (the row is deleted).

For pages of the signed-in portal::

    from portal_web.keys import BUSINESS, CUSTOMER, LOCALE, PORTAL_SESSION
    from portal_web.sessions import login_required
    from portal_web.shell import render_portal

    @login_required
    async def bookings(request):
        customer = request[CUSTOMER]       # portal.models.Customer (detached, read-only)
        business = request[BUSINESS]       # portal.models.Business
        locale = request[LOCALE]           # "en" | "fr"
        csrf = request[PORTAL_SESSION].csrf_token
        ...
        return render_portal(request, "portal/bookings.html", {...})

``login_required`` also checks the CSRF token and Origin on every POST/PUT/
PATCH/DELETE (form field ``csrf_token`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from portal.models import Customer, PortalSession, utcnow
from portal.security import hash_token, new_token
from portal.settings import Settings
from portal_web import csrf
from portal_web.db import in_tenant
from portal_web.keys import BUSINESS, CUSTOMER, LOCALE, PORTAL_SESSION, SETTINGS
from portal_web.shell import load_business, negotiate_locale, signin_path

COOKIE = "portal_session"
# last_seen_at is written at most this often: the idle timeout needs no write per request.
TOUCH_EVERY = timedelta(seconds=60)


# --- database side (plain synchronous SQLAlchemy, in a tenant session) ---

def create_session(db: Session, business_id: int, customer_id: int, settings: Settings,
                   now: datetime | None = None) -> tuple[str, PortalSession]:
    """A new session row; returns the raw id for the cookie (never stored)."""
    now = now or utcnow()
    raw = new_token(32)
    row = PortalSession(business_id=business_id, customer_id=customer_id, session_hash=hash_token(raw),
                        csrf_token=new_token(32), created_at=now, last_seen_at=now,
                        expires_at=now + timedelta(seconds=settings.session_absolute_timeout_s))
    db.add(row)
    db.flush()
    return raw, row


def find_session(db: Session, raw: str | None, settings: Settings,
                 now: datetime | None = None) -> PortalSession | None:
    """The live session for this cookie value in the session's business, or None.

    A timed-out row is deleted on sight; a live one has its idle clock reset.
    """
    if not raw or len(raw) > 128:
        return None
    now = now or utcnow()
    row = db.scalar(select(PortalSession).where(PortalSession.session_hash == hash_token(raw)))
    if row is None:
        return None
    idle = timedelta(seconds=settings.session_idle_timeout_s)
    if row.expires_at <= now or row.last_seen_at + idle <= now:
        db.delete(row)
        db.flush()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def destroy_session(db: Session, raw: str | None) -> int:
    """Delete the row behind a cookie value (in this business); returns rows deleted."""
    if not raw or len(raw) > 128:
        return 0
    result = db.execute(delete(PortalSession).where(PortalSession.session_hash == hash_token(raw))
                        .execution_options(synchronize_session=False))
    return result.rowcount or 0


def purge_expired(db: Session, settings: Settings, now: datetime | None = None) -> int:
    """Housekeeping: delete every timed-out session (system or tenant session)."""
    now = now or utcnow()
    idle_cutoff = now - timedelta(seconds=settings.session_idle_timeout_s)
    result = db.execute(delete(PortalSession)
                        .where(or_(PortalSession.expires_at <= now, PortalSession.last_seen_at <= idle_cutoff))
                        .execution_options(synchronize_session=False))
    return result.rowcount or 0


# --- cookie ---

def set_session_cookie(resp: web.StreamResponse, raw: str, slug: str, settings: Settings) -> None:
    resp.set_cookie(COOKIE, raw, path=f"/{slug}", httponly=True, samesite="Lax", secure=settings.https,
                    max_age=settings.session_absolute_timeout_s)


def clear_session_cookie(resp: web.StreamResponse, slug: str, settings: Settings) -> None:
    resp.del_cookie(COOKIE, path=f"/{slug}", httponly=True, samesite="Lax", secure=settings.https)


# --- request side ---

async def current_session(request: web.Request) -> tuple[PortalSession, Customer] | None:
    """The request's session and customer for the business in the URL, or None."""
    business = await load_business(request)
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    settings = request.app[SETTINGS]

    def work(db: Session):
        row = find_session(db, raw, settings)
        if row is None:
            return None
        customer = db.get(Customer, row.customer_id)
        return (row, customer) if customer is not None else None

    return await in_tenant(request.app, business.id, work)


def _wants_redirect(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" not in accept and "text/event-stream" not in accept


async def require_customer(request: web.Request) -> Customer:
    """Sets request[BUSINESS], [CUSTOMER], [PORTAL_SESSION], [LOCALE]; else sends to sign-in.

    Unsafe methods must also pass the CSRF check (403 otherwise).
    """
    if CUSTOMER in request:
        return request[CUSTOMER]
    business = await load_business(request)
    found = await current_session(request)
    if found is None:
        if _wants_redirect(request):
            raise web.HTTPSeeOther(signin_path(business.slug, negotiate_locale(request)))
        raise web.HTTPUnauthorized(text="Sign in to continue.")
    row, customer = found
    if request.method not in csrf.SAFE_METHODS:
        await csrf.verify(request, row.csrf_token)
    request[PORTAL_SESSION] = row
    request[CUSTOMER] = customer
    request[LOCALE] = negotiate_locale(request, customer=customer)
    return customer


def login_required(handler):
    """Decorator for portal handlers that need a signed-in customer of the URL's business."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        await require_customer(request)
        return await handler(request)

    return wrapper

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
from typing import Callable, TypeVar

from aiohttp import web
from sqlalchemy import and_, bindparam, delete, or_, select
from sqlalchemy.orm import Session, lazyload

from portal import tokens
from portal.db import scope_to
from portal.errors import NotFound
from portal.models import Business, Customer, PortalSession, utcnow
from portal.security import hash_token, new_token
from portal.settings import Settings
from portal_web import csrf
from portal_web.db import in_system, in_tenant
from portal_web.keys import BUSINESS, CUSTOMER, LOCALE, PORTAL_SESSION, SETTINGS
from portal_web.shell import BUSINESS_MISSING, load_business, negotiate_locale, signin_path

T = TypeVar("T")

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


# The signed-in lookup behind every portal page, built once (building it per
# request cost as much as running it): the URL's business, and the cookie's
# session and customer *in that business*, in one query. It runs in a system
# session, so the tenant condition is written into the joins themselves.
_SIGNED_IN = (
    select(Business, PortalSession, Customer)
    .outerjoin(PortalSession, and_(PortalSession.business_id == Business.id,
                                   PortalSession.session_hash == bindparam("session_hash")))
    .outerjoin(Customer, and_(Customer.id == PortalSession.customer_id, Customer.business_id == Business.id))
    # The business is in this row already: customer.business comes from the identity map.
    .options(lazyload(Customer.business))
    .where(Business.slug == bindparam("slug"))
)


def lookup(db: Session, slug: str, raw: str | None, settings: Settings,
           now: datetime | None = None) -> tuple[Business | None, tuple[PortalSession, Customer] | None]:
    """(the business with this slug or None, its live session for this cookie value and
    the session's customer, or None), in one query.

    A timed-out row is deleted on sight; a live one has its idle clock reset,
    at most every TOUCH_EVERY (no write per request).
    """
    session_hash = hash_token(raw) if raw and len(raw) <= 128 else ""  # "": no session matches
    found = db.execute(_SIGNED_IN, {"slug": slug, "session_hash": session_hash}).first()
    if found is None:
        return None, None
    business, row, customer = found
    if row is None or customer is None:
        return business, None
    _ = customer.business  # set while the session is open: templates get a detached copy
    now = now or utcnow()
    idle = timedelta(seconds=settings.session_idle_timeout_s)
    if row.expires_at <= now or row.last_seen_at + idle <= now:
        db.delete(row)
        db.flush()
        return business, None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return business, (row, customer)


def _timed_out(settings: Settings, now: datetime | None):
    """SQL: the session is past its absolute or its idle timeout."""
    now = now or utcnow()
    idle_cutoff = now - timedelta(seconds=settings.session_idle_timeout_s)
    return or_(PortalSession.expires_at <= now, PortalSession.last_seen_at <= idle_cutoff)


def still_live(db: Session, session_id: int, settings: Settings, now: datetime | None = None) -> bool:
    """Whether a session is still there and within its timeouts (read only: no idle reset)."""
    return db.scalar(select(PortalSession.id).where(PortalSession.id == session_id,
                                                    ~_timed_out(settings, now))) is not None


def destroy_session(db: Session, raw: str | None) -> int:
    """Delete the row behind a cookie value (in this business); returns rows deleted."""
    if not raw or len(raw) > 128:
        return 0
    result = db.execute(delete(PortalSession).where(PortalSession.session_hash == hash_token(raw))
                        .execution_options(synchronize_session=False))
    return result.rowcount or 0


def purge_expired(db: Session, settings: Settings, now: datetime | None = None) -> int:
    """Housekeeping: delete every timed-out session (system or tenant session)."""
    result = db.execute(delete(PortalSession).where(_timed_out(settings, now))
                        .execution_options(synchronize_session=False))
    return result.rowcount or 0


# --- cookie ---

def set_session_cookie(resp: web.StreamResponse, raw: str, slug: str, settings: Settings) -> None:
    resp.set_cookie(COOKIE, raw, path=f"/{slug}", httponly=True, samesite="Lax", secure=settings.https,
                    max_age=settings.session_absolute_timeout_s)


def clear_session_cookie(resp: web.StreamResponse, slug: str, settings: Settings) -> None:
    resp.del_cookie(COOKIE, path=f"/{slug}", httponly=True, samesite="Lax", secure=settings.https)


# --- request side ---

def _signed_in_work(request: web.Request, then: Callable[[Session, Business, Customer], T] | None = None):
    """The database side of a signed-in request, for one ``run_db`` hop: the URL's
    business, the cookie's live session and customer in that business (one query),
    then ``then(db, business, customer)`` in the same database session."""
    known = request.get(BUSINESS)
    slug = known.slug if known is not None else request.match_info.get("slug", "")
    raw = request.cookies.get(COOKIE)
    settings = request.app[SETTINGS]

    def work(db: Session):
        business, found = lookup(db, slug, raw, settings)
        if business is None or not business.portal_enabled:
            return None, None, None
        scope_to(db, business.id)  # from here on, this business's rows only
        if found is None or then is None:
            return business, found, None
        return business, found, then(db, business, found[1])

    return work


async def current_session(request: web.Request) -> tuple[PortalSession, Customer] | None:
    """The request's session and customer for the business in the URL, or None.

    Sets request[BUSINESS] (404 if unknown or its portal is off)."""
    if not request.cookies.get(COOKIE):
        await load_business(request)
        return None
    business, found, _ = await in_system(request.app, _signed_in_work(request))
    _set_business(request, business)
    return found


def _set_business(request: web.Request, business: Business | None) -> None:
    if business is None:
        raise NotFound(BUSINESS_MISSING)
    request[BUSINESS] = business


def _wants_redirect(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" not in accept and "text/event-stream" not in accept


def _signed_out(request: web.Request) -> web.HTTPException:
    if _wants_redirect(request):
        slug = request[BUSINESS].slug
        target = signin_path(slug, negotiate_locale(request))
        # A page opened from an email (a booking, an invoice) is where the sign-in link will lead back to.
        home = request.path in (f"/{slug}/", f"/{slug}/dashboard")
        back = request.path_qs if request.method == "GET" and not home else None
        target += tokens.next_query(tokens.safe_return_path(slug, back))
        return web.HTTPSeeOther(target)
    return web.HTTPUnauthorized(text="Sign in to continue.")


def _set_customer(request: web.Request, row: PortalSession, customer: Customer) -> None:
    request[PORTAL_SESSION] = row
    request[CUSTOMER] = customer
    request[LOCALE] = negotiate_locale(request, customer=customer)


async def require_customer(request: web.Request) -> Customer:
    """Sets request[BUSINESS], [CUSTOMER], [PORTAL_SESSION], [LOCALE]; else sends to sign-in.

    Unsafe methods must also pass the CSRF check (403 otherwise).
    """
    if CUSTOMER in request:
        return request[CUSTOMER]
    found = await current_session(request)
    if found is None:
        raise _signed_out(request)
    row, customer = found
    if request.method not in csrf.SAFE_METHODS:
        # A refusal is explained in the customer's language, like the page the form came from.
        request[LOCALE] = negotiate_locale(request, customer=customer)
        await csrf.verify(request, row.csrf_token)
    _set_customer(request, row, customer)
    return customer


async def signed_in(request: web.Request, load: Callable[[Session, Business, Customer], T]) -> T:
    """``require_customer`` and a page's reads, ``load(db, business, customer)``,
    in one thread hop, each statement on its own (``in_system(read_mostly=True)``):
    for read-only pages.

    Like ``login_required``: signed-out visitors go to sign-in, and ``load``
    runs only for a live session, scoped to the URL's business."""
    if CUSTOMER in request or request.method not in csrf.SAFE_METHODS:
        # Unsafe methods check CSRF before any work; an already known customer needs no lookup.
        await require_customer(request)
        return await in_tenant(request.app, request[BUSINESS].id,
                               lambda db: load(db, request[BUSINESS], request[CUSTOMER]))
    if not request.cookies.get(COOKIE):
        await load_business(request)
        raise _signed_out(request)
    business, found, data = await in_system(request.app, _signed_in_work(request, load), read_mostly=True)
    _set_business(request, business)
    if found is None:
        raise _signed_out(request)
    _set_customer(request, *found)
    return data


def login_required(handler):
    """Decorator for portal handlers that need a signed-in customer of the URL's business."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        await require_customer(request)
        return await handler(request)

    return wrapper

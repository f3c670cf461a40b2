"""Shared bits of the self-service pages: route patterns, tenant work, form reading, notices."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from portal.errors import NotFound, ValidationError
from portal.models import Business
from portal_web import i18n
from portal_web.db import in_tenant
from portal_web.forms import read_form
from portal_web.keys import BUSINESS, CUSTOMER, LOCALE

T = TypeVar("T")

SLUG = r"{slug:[a-z0-9][a-z0-9-]{0,63}}"
# Public ids are 22 URL-safe characters; anything else cannot match a row.
PUBLIC_ID = r"[A-Za-z0-9_-]{1,64}"

# ?done=... after a POST/redirect: the sentence shown in the page's status banner.
NOTICES = {
    "rescheduled": "Your booking was rescheduled. A confirmation is on its way.",
    "cancelled": "Your booking was cancelled. A confirmation is on its way.",
    "approved": "Thank you: you approved this quote. We will be in touch.",
    "declined": "You declined this quote. We have let the business know.",
    "card_saved": "Your payment method was updated.",
    "saved": "Your preferences were saved.",
}


async def in_customer_tenant(request: web.Request, fn: Callable[[Session, Business, int], T]) -> T:
    """Run ``fn(db, business, customer_id)`` in the signed-in customer's business, then commit.

    ``business`` is re-read in that session, so it is never a stale copy."""
    business_id = request[BUSINESS].id
    customer_id = request[CUSTOMER].id

    def work(db: Session) -> T:
        business = db.get(Business, business_id)
        if business is None:
            raise NotFound("There is no customer portal at this address.")
        return fn(db, business, customer_id)

    return await in_tenant(request.app, business_id, work)


def tr(request: web.Request, message: str, **variables) -> str:
    return i18n.gettext(request.get(LOCALE) or i18n.DEFAULT, message, **variables)


def notice(request: web.Request) -> str | None:
    key = request.query.get("done")
    return tr(request, NOTICES[key]) if key in NOTICES else None


async def form_data(request: web.Request):
    """The posted form (already parsed by the CSRF check)."""
    return await read_form(request)


def field(form, name: str, *, max_length: int = 2000) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > max_length:
        raise ValidationError("This field is too long.", {name: "too long"})
    return value


def parse_version(form) -> int | None:
    raw = field(form, "version", max_length=12).strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit(), not to int()
        raise ValidationError("The form is out of date. Please reload the page.", {"version": "invalid"})
    return int(raw)


def parse_slot(raw: str) -> datetime:
    """A slot value from the form: an ISO 8601 UTC time such as 2025-06-05T18:00:00Z."""
    try:
        value = datetime.fromisoformat(raw.strip())
        if value.tzinfo is None:
            raise ValueError("no offset")
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        raise ValidationError("Choose one of the available times.", {"slot": "invalid"}) from None


def slot_value(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers={"Cache-Control": "no-store"})


async def to_form_page(request: web.Request) -> web.StreamResponse:
    """GET on a form's POST-only address (reloaded, bookmarked, opened again from history):
    303 to the page the form lives on (the path without its last segment), not a bare 405.
    The route patterns allow only [a-z0-9-] slugs and URL-safe ids, so the path is safe to reuse."""
    raise redirect(request.path.rsplit("/", 1)[0])

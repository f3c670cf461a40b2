"""Communication preferences.

    GET  /{slug}/preferences
    POST /{slug}/preferences     pref=<category>:<channel> (one per ticked box), locale

Each checkbox's label is the exact sentence recorded in the Consent row when
the box changes (``portal.preferences.wording``), in the page's language.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from messages.registry import CHANNELS, OPTIONAL_CATEGORIES
from portal import preferences as prefs
from portal.errors import ValidationError
from portal.models import Business, Customer
from portal_web import i18n
from portal_web.keys import BUSINESS, LOCALE, SETTINGS
from portal_web.sessions import login_required
from portal_web.shell import LANG_COOKIE, render_portal
from portal_web.views.selfservice.common import SLUG, form_data, in_customer_tenant, notice, redirect


def _page(db: Session, business: Business, customer_id: int, translate) -> dict:
    customer = db.get(Customer, customer_id)
    state = prefs.current(db, customer)
    rows = []
    for category in OPTIONAL_CATEGORIES:
        cells = []
        for channel in CHANNELS:
            available = bool(customer.email if channel == "email" else customer.phone)
            cells.append({
                "channel": channel, "name": f"{category}:{channel}", "on": state[category][channel],
                "available": available, "label": translate(prefs.CHANNEL_LABELS[channel]),
                "wording": prefs.wording(business, customer, category, channel, True, translate),
            })
        rows.append({"category": category, "label": translate(prefs.CATEGORY_LABELS[category]), "cells": cells})
    critical = [{"category": c, "label": translate(prefs.CATEGORY_LABELS.get(c, c))} for c in prefs.critical_categories()]
    return {"rows": rows, "critical": critical, "current_locale": customer.locale,
            "has_phone": bool(customer.phone), "has_email": bool(customer.email)}


@login_required
async def show(request: web.Request) -> web.StreamResponse:
    translate = i18n.translations(request[LOCALE]).gettext
    ctx = await in_customer_tenant(request, lambda db, b, cid: _page(db, b, cid, translate))
    return render_portal(request, "portal/preferences.html", {**ctx, "notice": notice(request),
                                                              "language_names": i18n.LANGUAGE_NAMES})


@login_required
async def save(request: web.Request) -> web.StreamResponse:
    translate = i18n.translations(request[LOCALE]).gettext
    form = await form_data(request)
    enabled = set()
    for value in form.getall("pref", []):
        if isinstance(value, str) and value.count(":") == 1:
            category, channel = value.split(":")
            enabled.add((category, channel))
    raw_locale = form.get("locale")
    locale = raw_locale if isinstance(raw_locale, str) and raw_locale else None

    def apply(db: Session, business: Business, customer_id: int):
        prefs.save(db, business, db.get(Customer, customer_id), enabled, locale, translate=translate)

    try:
        await in_customer_tenant(request, apply)
    except ValidationError as exc:
        ctx = await in_customer_tenant(request, lambda db, b, cid: _page(db, b, cid, translate))
        return render_portal(request, "portal/preferences.html", {
            **ctx, "error": translate(str(exc)), "language_names": i18n.LANGUAGE_NAMES}, status=exc.status)
    business = request[BUSINESS]
    resp = redirect(f"/{business.slug}/preferences?done=saved")
    if locale in i18n.SUPPORTED:
        # The chosen language wins over an earlier ?lang= choice remembered in the cookie.
        resp.set_cookie(LANG_COOKIE, locale, path=f"/{business.slug}", samesite="Lax",
                        secure=request.app[SETTINGS].https, max_age=365 * 24 * 3600)
    raise resp


def setup(app: web.Application) -> None:
    app.router.add_get(f"/{SLUG}/preferences", show, name="preferences")
    app.router.add_post(f"/{SLUG}/preferences", save)

"""The branded portal shell: which business, which language, and ``render_portal``.

Every portal page (sign-in, link, dashboard, and the self-service pages of
``views/selfservice``) is rendered through ``render_portal`` so it gets the
business's branding, the navigation, the CSRF token and translations.
"""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup
from sqlalchemy import select

from portal.errors import NotFound
from portal.models import Business
from portal_web import i18n
from portal_web.branding import css_variables, theme
from portal_web.db import in_system
from portal_web.keys import BUSINESS, CUSTOMER, LOCALE, PORTAL_SESSION, SETTINGS
from portal_web.rendering import render

LANG_COOKIE = "portal_lang"
# Sign-in page per language: the URL itself chooses the language.
SIGNIN_PATHS = {"en": "signin", "fr": "connexion"}
BUSINESS_MISSING = "There is no customer portal at this address."


async def load_business(request: web.Request) -> Business:
    """The business named by ``{slug}``; 404 if unknown or its portal is turned off."""
    business = request.get(BUSINESS)
    if business is not None:
        return business
    slug = request.match_info.get("slug", "")
    found = await in_system(request.app, lambda s: s.scalar(select(Business).where(Business.slug == slug)))
    if found is None or not found.portal_enabled:
        raise NotFound(BUSINESS_MISSING)
    request[BUSINESS] = found
    return found


def accept_language(header: str | None) -> str | None:
    """The browser's most preferred supported language from ``Accept-Language``."""
    best, best_q = None, 0.0
    for part in (header or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = i18n.normalise(tag)
        if lang and q > best_q:
            best, best_q = lang, q
    return best


def negotiate_locale(request: web.Request, *, fixed: str | None = None, customer=None) -> str:
    """The URL's language, then ``?lang=``, then the remembered choice, then the customer's,
    then the browser's (Accept-Language), then the business's default."""
    for candidate in (fixed, request.query.get("lang"), request.cookies.get(LANG_COOKIE),
                      getattr(customer, "locale", None), accept_language(request.headers.get("Accept-Language"))):
        lang = i18n.normalise(candidate)
        if lang:
            return lang
    business = request.get(BUSINESS)
    return i18n.normalise(getattr(business, "default_locale", None)) or i18n.DEFAULT


def signin_path(slug: str, locale: str) -> str:
    return f"/{slug}/{SIGNIN_PATHS.get(locale, 'signin')}"


def nav_items(business: Business, path: str, locale: str) -> list[dict]:
    """Sections the business turned on; hidden sections also answer 404 on the server (issue 5)."""
    _ = i18n.translations(locale).gettext
    base = f"/{business.slug}"
    items = [("dashboard", f"{base}/", _("Home")), ("bookings", f"{base}/bookings", _("Bookings"))]
    if business.show_invoices:
        items.append(("invoices", f"{base}/invoices", _("Invoices")))
    if business.show_quotes:
        items.append(("quotes", f"{base}/quotes", _("Quotes")))
    items.append(("payment-method", f"{base}/payment-method", _("Payment method")))
    items.append(("preferences", f"{base}/preferences", _("Preferences")))
    out = []
    for key, href, label in items:
        if key == "dashboard":
            current = path in (f"{base}/", f"{base}/dashboard")
        else:
            current = path == href or path.startswith(href + "/")
        out.append({"key": key, "href": href, "label": label, "current": current})
    return out


def language_links(request: web.Request, locale: str, explicit: dict[str, str] | None = None) -> list[dict]:
    """Links to this page in each language: ``explicit`` URLs (sign-in pages) or ``?lang=``."""
    links = []
    for code in i18n.SUPPORTED:
        href = (explicit or {}).get(code) or str(request.rel_url.update_query(lang=code))
        links.append({"code": code, "name": i18n.LANGUAGE_NAMES[code], "href": href, "current": code == locale})
    return links


def render_portal(request: web.Request, template: str, context: dict | None = None, *,
                  status: int = 200, locale: str | None = None) -> web.Response:
    """Render a page that extends ``portal/base.html``.

    The context gets: business, theme, brand_css, slug, customer, portal_session,
    csrf_token, csrf_input (a hidden field), locale, tz, nav, languages, and the
    translation callables ``_``/``gettext``/``ngettext``. ``context`` overrides them.
    """
    business = request[BUSINESS]
    customer = request.get(CUSTOMER)
    session = request.get(PORTAL_SESSION)
    locale = locale or request.get(LOCALE) or negotiate_locale(request, customer=customer)
    brand = theme(business)
    ctx = {
        "business": business, "theme": brand, "brand_css": css_variables(brand), "slug": business.slug,
        "customer": customer, "portal_session": session,
        "csrf_token": session.csrf_token if session is not None else "",
        "locale": locale, "tz": (getattr(customer, "timezone", None) or business.timezone),
        "nav": nav_items(business, request.path, locale) if customer is not None else [],
        "languages": language_links(request, locale),
        "path": request.path,
        "dev_mode": request.app[SETTINGS].dev_mode,
    }
    ctx.update(i18n.jinja_callables(locale))
    ctx.update(context or {})
    ctx["csrf_input"] = Markup('<input type="hidden" name="csrf_token" value="{}">').format(ctx["csrf_token"])
    resp = render(request, template, ctx, status=status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Language"] = locale
    chosen = i18n.normalise(request.query.get("lang"))
    if chosen and chosen != request.cookies.get(LANG_COOKIE):
        # Remember an explicit language choice for this business's pages (not a server-side change).
        resp.set_cookie(LANG_COOKIE, chosen, path=f"/{business.slug}", samesite="Lax",
                        secure=request.app[SETTINGS].https, max_age=365 * 24 * 3600)
    return resp

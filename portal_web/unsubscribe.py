"""One-click unsubscribe (RFC 8058) at ``/unsubscribe/{token}``.

- GET/HEAD shows what the link would turn off and a button; it changes NOTHING,
  because mail scanners and link previewers follow every GET.
- POST turns that category x channel off and records a Consent row. It needs no
  session and no CSRF token: mailbox providers POST ``List-Unsubscribe=One-Click``
  on the user's behalf, and the signed token is the proof of whom it is about.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from messages.links import parse_unsubscribe_token
from messages.providers import feedback
from messages.registry import CRITICAL_CATEGORIES
from portal import preferences
from portal.errors import NotFound, ValidationError
from portal.models import Customer
from portal_web.db import in_tenant
from portal_web.keys import SETTINGS
from portal_web.rendering import render

SOURCE = "unsubscribe_link"
TEXT = {
    "en": {
        "title": "Unsubscribe", "done_title": "You are unsubscribed",
        "question": "Stop receiving {category} from {business} by {channel} at {address}?",
        "button": "Unsubscribe",
        "done": "You will no longer receive {category} from {business} by {channel}.",
        "already": "You were already unsubscribed from {category} by {channel}.",
        "critical": "{category} cannot be turned off: they are how you sign in.",
        "manage": "You can change this at any time in your communication preferences.",
        "wording": "Unsubscribed from {category} from {business} by {channel} with the link in a message.",
    },
    "fr": {
        "title": "Désabonnement", "done_title": "Vous êtes désabonné(e)",
        "question": "Ne plus recevoir les {category} de {business} par {channel} à {address} ?",
        "button": "Me désabonner",
        "done": "Vous ne recevrez plus les {category} de {business} par {channel}.",
        "already": "Vous étiez déjà désabonné(e) des {category} par {channel}.",
        "critical": "Les {category} ne peuvent pas être désactivés : ils vous permettent de vous connecter.",
        "manage": "Vous pouvez changer cela à tout moment dans vos préférences de communication.",
        "wording": "Désabonnement des {category} de {business} par {channel} avec le lien d'un message.",
    },
}
CATEGORY = {
    "en": {"account": "sign-in links", "reminders": "appointment reminders",
           "booking_updates": "booking confirmations and changes", "billing": "invoices and receipts",
           "quotes": "quotes"},
    "fr": {"account": "liens de connexion", "reminders": "rappels de rendez-vous",
           "booking_updates": "confirmations et changements de rendez-vous", "billing": "factures et reçus",
           "quotes": "soumissions"},
}
CHANNEL = {"en": {"email": "email", "sms": "text message"}, "fr": {"email": "courriel", "sms": "texto"}}


def setup(app: web.Application) -> None:
    app.router.add_get("/unsubscribe/{token}", show, name="unsubscribe")  # also answers HEAD
    app.router.add_post("/unsubscribe/{token}", confirm)


def _target(request: web.Request):
    try:
        target = parse_unsubscribe_token(request.app[SETTINGS], request.match_info["token"])
    except (NotFound, ValidationError):
        target = None
    if target is None:
        raise NotFound("This unsubscribe link is not valid.")
    if isinstance(target, dict):
        return (int(target["business_id"]), int(target["customer_id"]), target["category"], target["channel"])
    return target.business_id, target.customer_id, target.category, target.channel


def _mask(address: str, channel: str) -> str:
    if channel == "email":
        local, _, domain = address.partition("@")
        return f"{local[:1]}•••@{domain}"
    return f"•••{address[-4:]}"


def _context(customer: Customer, category: str, channel: str) -> dict:
    business = customer.business
    locale = "fr" if (customer.locale or business.default_locale or "en").startswith("fr") else "en"
    words = {"category": CATEGORY[locale].get(category, category), "channel": CHANNEL[locale][channel],
             "business": business.name,
             "address": _mask((customer.email if channel == "email" else customer.phone) or "", channel)}
    text = {key: value.format(**words) for key, value in TEXT[locale].items()}
    return {"locale": locale, "text": text, "business": business, "critical": category in CRITICAL_CATEGORIES,
            # The portal's preferences page, unless the portal is off (it would be a 404).
            "preferences_url": f"/{business.slug}/preferences" if business.portal_enabled else None}


def _load(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:  # deleted since, or a token for another business's customer
        raise NotFound("This unsubscribe link is not valid.")
    return customer


async def show(request: web.Request) -> web.Response:
    business_id, customer_id, category, channel = _target(request)

    def read(session: Session) -> dict:
        customer = _load(session, customer_id)
        ctx = _context(customer, category, channel)
        # Clicked again, or off already: say so rather than ask again.
        ctx["already"] = not ctx["critical"] and not preferences.current(session, customer).get(
            category, {}).get(channel, True)
        return ctx

    ctx = await in_tenant(request.app, business_id, read)
    ctx["action"] = request.path
    resp = render(request, "unsubscribe/confirm.html", ctx)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return resp


async def confirm(request: web.Request) -> web.Response:
    business_id, customer_id, category, channel = _target(request)
    await request.read()  # "List-Unsubscribe=One-Click" or the confirmation form: either means yes

    def apply(session: Session) -> dict:
        customer = _load(session, customer_id)
        ctx = _context(customer, category, channel)
        ctx["changed"] = False
        if not ctx["critical"]:
            ctx["changed"] = feedback.disable_preference(session, customer, category, channel, source=SOURCE,
                                                         wording=ctx["text"]["wording"])
        return ctx

    ctx = await in_tenant(request.app, business_id, apply)
    resp = render(request, "unsubscribe/done.html", ctx)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp

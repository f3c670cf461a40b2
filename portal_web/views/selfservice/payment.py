"""Payment method: show the saved card, replace it through the configured gateway.

    GET  /{slug}/payment-method           brand, last 4, expiry; a "Replace" button
    POST /{slug}/payment-method/setup     starts a setup with the gateway and shows its form
    POST /{slug}/payment-method           finishes: test_card=... (test gateway) or
                                          setup_intent=seti_... (Stripe.js confirmed it)

Starting a setup is a POST because it creates records at the gateway; GETs
change nothing. No card number or CVC is ever posted here: Stripe.js talks to
Stripe directly, and the test gateway offers named test cards only.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.orm import Session

from portal.errors import NotFound, ProviderError, ValidationError
from portal.models import Business, Customer
from portal.payments import current_method, gateway_for, save_payment_method
from portal_web.keys import BUSINESS, SETTINGS
from portal_web.middleware import content_security_policy
from portal_web.sessions import login_required
from portal_web.shell import render_portal
from portal_web.views.selfservice.common import (
    SLUG,
    form_data,
    in_customer_tenant,
    notice,
    redirect,
    to_form_page,
    tr,
)

log = logging.getLogger(__name__)
# Stripe.js runs from js.stripe.com, frames the card field and talks to api.stripe.com.
STRIPE_SOURCES = ("script-src 'self' https://js.stripe.com; frame-src https://js.stripe.com https://hooks.stripe.com; "
                  "connect-src 'self' https://api.stripe.com")


def stripe_csp(request: web.Request) -> str:
    """The portal's usual policy (same frame-ancestors) plus what Stripe.js needs."""
    return f"{content_security_policy(request)}; {STRIPE_SOURCES}"


def _method_view(method) -> dict | None:
    if method is None:
        return None
    return {"brand": method.brand, "last4": method.last4, "exp_month": method.exp_month, "exp_year": method.exp_year}


@login_required
async def show(request: web.Request) -> web.StreamResponse:
    method = await in_customer_tenant(request, lambda db, b, cid: _method_view(current_method(db, cid)))
    return render_portal(request, "portal/payment_method.html", {"method": method, "notice": notice(request)})


async def _form_page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.StreamResponse:
    gateway = gateway_for(request.app[SETTINGS])
    return_url = f"{request.app[SETTINGS].public_base_url}/{request[BUSINESS].slug}/payment-method"

    def begin(db: Session, business: Business, customer_id: int):
        customer = db.get(Customer, customer_id)
        setup_session = gateway.begin_setup(customer, return_url=return_url)
        if setup_session.gateway_customer:
            customer.payment_customer_ref = setup_session.gateway_customer
        return setup_session, _method_view(current_method(db, customer_id))

    try:
        setup_session, method = await in_customer_tenant(request, begin)
    except ProviderError as exc:
        return render_portal(request, "portal/payment_method.html", {"method": None, "error": tr(request, str(exc))},
                             status=503)
    resp = render_portal(request, gateway.template, {"setup": setup_session, "method": method, "error": error},
                         status=status)
    if gateway.name == "stripe":
        resp.headers["Content-Security-Policy"] = stripe_csp(request)
    return resp


@login_required
async def start(request: web.Request) -> web.StreamResponse:
    return await _form_page(request)


@login_required
async def complete(request: web.Request) -> web.StreamResponse:
    gateway = gateway_for(request.app[SETTINGS])
    form = await form_data(request)
    # Only the gateway's own fields are read: nothing else from the form is kept or logged.
    params = {name: form.get(name) for name in ("test_card", "setup_intent") if isinstance(form.get(name), str)}

    def finish(db: Session, business: Business, customer_id: int):
        customer = db.get(Customer, customer_id)
        card = gateway.complete_setup(customer, params)
        save_payment_method(db, business, customer, gateway.name, card)

    try:
        await in_customer_tenant(request, finish)
    except ValidationError as exc:
        return await _form_page(request, error=tr(request, str(exc)), status=exc.status)
    except (NotFound, ProviderError) as exc:
        status = 404 if isinstance(exc, NotFound) else 503
        return render_portal(request, "portal/payment_method.html", {"method": None, "error": tr(request, str(exc))},
                             status=status)
    raise redirect(f"/{request[BUSINESS].slug}/payment-method?done=card_saved")


def setup(app: web.Application) -> None:
    app.router.add_get(f"/{SLUG}/payment-method", show, name="payment_method")
    app.router.add_post(f"/{SLUG}/payment-method", complete)
    app.router.add_post(f"/{SLUG}/payment-method/setup", start, name="payment_method_setup")
    app.router.add_get(f"/{SLUG}/payment-method/setup", to_form_page)

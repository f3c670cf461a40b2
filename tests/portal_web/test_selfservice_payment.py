"""Payment method pages: the built-in test gateway and Stripe (real SDK, local fake)."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from portal.models import Customer, PaymentMethod, WebhookDelivery
from portal_web.app import create_app
from tests.factories import make_business, make_customer
from tests.fakes.stripe_fake import fake_stripe  # noqa: F401  (fixture)
from tests.portal_web.signin_support import sign_in


@pytest.fixture
def shop(db):
    business = make_business(db, webhook_url="https://booking.example/hooks")
    customer = make_customer(db, business)
    db.add(PaymentMethod(business_id=business.id, customer_id=customer.id, gateway="test", gateway_token="test_pm_old",
                         brand="visa", last4="4242", exp_month=3, exp_year=2027))
    db.commit()
    return business, customer


async def test_saved_card_and_replacing_it_with_the_test_gateway(client, db, shop, stub_broker, caplog):
    caplog.set_level(logging.DEBUG)
    business, customer = shop
    csrf = await sign_in(client, db, customer)
    page = await (await client.get(f"/{business.slug}/payment-method")).text()
    assert "Visa" in page and "4242" in page and "03/2027" in page
    form = await client.post(f"/{business.slug}/payment-method/setup", data={"csrf_token": csrf})
    html = await form.text()
    assert form.status == 200 and 'name="test_card"' in html and "mastercard_4444" in html
    # No field for a card number or CVC, ever.
    assert not re.search(r'name="(card|number|cvc|cvv|card_number)"', html)
    declined = await client.post(f"/{business.slug}/payment-method",
                                 data={"csrf_token": csrf, "test_card": "declined_0002"})
    assert declined.status == 422 and "declined" in await declined.text()
    resp = await client.post(f"/{business.slug}/payment-method",
                             data={"csrf_token": csrf, "test_card": "mastercard_4444",
                                   "number": "4242424242424242", "cvc": "123"}, allow_redirects=False)
    assert resp.status == 303
    db.expire_all()
    method = db.scalar(select(PaymentMethod).where(PaymentMethod.customer_id == customer.id))
    assert (method.brand, method.last4) == ("mastercard", "4444")
    hook = db.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id))
    assert hook.event_type == "customer.payment_method_changed"
    assert "4242424242424242" not in str(hook.payload) and "4242424242424242" not in caplog.text
    assert "Your payment method was updated" in await (await client.get(resp.headers["Location"])).text()


async def test_test_cards_are_named_in_french_on_a_french_page(client, db, shop):
    business, customer = shop
    customer.locale = "fr"
    db.commit()
    csrf = await sign_in(client, db, customer)
    html = await (await client.post(f"/{business.slug}/payment-method/setup", data={"csrf_token": csrf})).text()
    assert 'lang="fr"' in html and "Carte de test" in html
    assert "Visa se terminant par 4242" in html and "toujours refusée" in html and "ending" not in html


async def test_setup_needs_post_and_csrf(client, db, shop):
    business, customer = shop
    await sign_in(client, db, customer)
    # A GET (the form's address reloaded or opened again) starts nothing: back to the card page.
    got = await client.get(f"/{business.slug}/payment-method/setup", allow_redirects=False)
    assert (got.status, got.headers["Location"]) == (303, f"/{business.slug}/payment-method")
    assert db.scalar(select(Customer.payment_customer_ref).where(Customer.id == customer.id)) is None
    assert (await client.post(f"/{business.slug}/payment-method/setup")).status == 403


async def test_stripe_flow_through_the_pages(aiohttp_client, db, shop, settings, session_factory, aredis, fake_stripe,
                                             stub_broker):
    business, customer = shop
    client = await aiohttp_client(create_app(fake_stripe.configure(settings), session_factory=session_factory,
                                             redis_client=aredis))
    csrf = await sign_in(client, db, customer)
    page = await client.post(f"/{business.slug}/payment-method/setup", data={"csrf_token": csrf})
    html = await page.text()
    assert page.status == 200, html
    assert "https://js.stripe.com/v3/" in html and fake_stripe.publishable_key in html
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self' https://js.stripe.com" in csp and "frame-ancestors 'none'" in csp
    secret = re.search(r'data-client-secret="([^"]+)"', html).group(1)
    intent_id = secret.split("_secret_")[0]
    db.expire_all()
    assert db.get(Customer, customer.id).payment_customer_ref in fake_stripe.customers

    fake_stripe.confirm_in_browser(intent_id, "pm_card_visa")  # what Stripe.js does
    resp = await client.post(f"/{business.slug}/payment-method", data={"csrf_token": csrf, "setup_intent": intent_id},
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    db.expire_all()
    method = db.scalar(select(PaymentMethod).where(PaymentMethod.customer_id == customer.id))
    assert (method.gateway, method.brand, method.last4) == ("stripe", "visa", "4242")
    assert method.gateway_token.startswith("pm_")


async def test_stripe_unconfirmed_or_down(aiohttp_client, db, shop, settings, session_factory, aredis, fake_stripe):
    business, customer = shop
    client = await aiohttp_client(create_app(fake_stripe.configure(settings), session_factory=session_factory,
                                             redis_client=aredis))
    csrf = await sign_in(client, db, customer)
    html = await (await client.post(f"/{business.slug}/payment-method/setup", data={"csrf_token": csrf})).text()
    intent_id = re.search(r'data-client-secret="([^"]+)"', html).group(1).split("_secret_")[0]
    resp = await client.post(f"/{business.slug}/payment-method", data={"csrf_token": csrf, "setup_intent": intent_id})
    assert resp.status == 422 and "not confirmed" in await resp.text()
    fake_stripe.fail_status(503)
    fake_stripe.fail_status(503)
    down = await client.post(f"/{business.slug}/payment-method/setup", data={"csrf_token": csrf})
    assert down.status == 503 and "not available right now" in await down.text()
    db.expire_all()
    assert db.scalar(select(PaymentMethod.last4).where(PaymentMethod.customer_id == customer.id)) == "4242"

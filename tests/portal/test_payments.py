"""Payment methods: the Protocol, the built-in test gateway, and Stripe's real SDK against the fake."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from portal.db import tenant_session
from portal.errors import NotFound, ProviderError, ValidationError
from portal.models import Customer, PaymentMethod, WebhookDelivery
from portal.payments import PaymentGateway, current_method, gateway_for, save_payment_method
from portal.payments.stripe_gateway import StripeGateway
from portal.payments.test_gateway import TEST_CARDS, TestGateway
from tests.factories import make_business, make_customer
from tests.fakes.stripe_fake import fake_stripe  # noqa: F401  (fixture)


@pytest.fixture
def shop(db):
    business = make_business(db, webhook_url="https://booking.example/hooks")
    customer = make_customer(db, business)
    db.commit()
    return business, customer


def test_gateway_choice(settings, fake_stripe):
    assert isinstance(gateway_for(settings), TestGateway)
    stripe_gw = gateway_for(fake_stripe.configure(settings))
    assert isinstance(stripe_gw, StripeGateway)
    for gw in (TestGateway(), stripe_gw):
        assert isinstance(gw, PaymentGateway)


def test_test_gateway_offers_named_cards_only(shop):
    business, customer = shop
    setup = TestGateway().begin_setup(customer, return_url="/x")
    assert [token for token, _ in setup.choices] == list(TEST_CARDS)
    assert all("4242 4242" not in label for _, label in setup.choices)
    card = TestGateway().complete_setup(customer, {"test_card": "mastercard_4444"})
    assert (card.brand, card.last4) == ("mastercard", "4444")
    assert card.token.startswith("test_pm_")
    with pytest.raises(ValidationError, match="declined"):
        TestGateway().complete_setup(customer, {"test_card": "declined_0002"})
    with pytest.raises(ValidationError):
        TestGateway().complete_setup(customer, {"test_card": "4242424242424242"})


def test_save_replaces_the_method_and_notifies(db, session_factory, shop):
    business, customer = shop
    with tenant_session(session_factory, business.id) as s:
        c = s.get(Customer, customer.id)
        save_payment_method(s, business, c, "test", TestGateway().complete_setup(c, {"test_card": "visa_4242"}))
        save_payment_method(s, business, c, "test", TestGateway().complete_setup(c, {"test_card": "amex_0005"}))
        s.commit()
    rows = db.scalars(select(PaymentMethod).where(PaymentMethod.customer_id == customer.id)).all()
    assert [(r.brand, r.last4) for r in rows] == [("amex", "0005")]
    hooks = db.scalars(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id)).all()
    assert [h.event_type for h in hooks] == ["customer.payment_method_changed"] * 2
    assert hooks[-1].payload["last4"] == "0005" and "number" not in hooks[-1].payload


def test_stripe_setup_intent_flow_with_the_real_sdk(db, session_factory, shop, fake_stripe, settings, caplog):
    caplog.set_level(logging.DEBUG)
    business, customer = shop
    gateway = gateway_for(fake_stripe.configure(settings))
    with tenant_session(session_factory, business.id) as s:
        c = s.get(Customer, customer.id)
        setup = gateway.begin_setup(c, return_url="http://portal.test/x/payment-method/return")
        assert setup.id.startswith("seti_") and setup.client_secret.startswith(setup.id + "_secret_")
        assert setup.publishable_key == fake_stripe.publishable_key
        assert setup.gateway_customer in fake_stripe.customers
        c.payment_customer_ref = setup.gateway_customer
        # A second setup reuses the Stripe customer.
        again = gateway.begin_setup(c, return_url="http://portal.test/x")
        assert again.gateway_customer is None
        assert fake_stripe.setup_intents[again.id]["customer"] == c.payment_customer_ref

        # The browser (Stripe.js) confirms with Stripe directly...
        fake_stripe.confirm_in_browser(setup.id, "pm_card_mastercard")
        # ...and Stripe redirects back with ?setup_intent=...
        card = gateway.complete_setup(c, {"setup_intent": setup.id})
        assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("mastercard", "4444", 12, 2034)
        assert card.token.startswith("pm_")
        save_payment_method(s, business, c, gateway.name, card)
        s.commit()

    paths = [(r.method, r.path) for r in fake_stripe.requests]
    assert paths[:3] == [("POST", "/v1/customers"), ("POST", "/v1/setup_intents"), ("POST", "/v1/setup_intents")]
    assert ("GET", f"/v1/setup_intents/{setup.id}") in paths
    assert ("GET", f"/v1/payment_methods/{card.token}") in paths
    create = fake_stripe.requests[1].form
    assert create["usage"] == "off_session" and create["metadata[portal_customer]"] == str(customer.id)
    # Nothing card-number-like ever left or was logged.
    assert all(b"4444" not in r.body for r in fake_stripe.requests)
    assert "4242424242424242" not in caplog.text and "5555555555554444" not in caplog.text
    method = db.scalar(select(PaymentMethod).where(PaymentMethod.customer_id == customer.id))
    assert (method.gateway, method.brand, method.last4) == ("stripe", "mastercard", "4444")


def test_stripe_refuses_unconfirmed_foreign_or_unknown_setups(db, session_factory, shop, fake_stripe, settings):
    business, customer = shop
    other = make_customer(db, business)
    db.commit()
    gateway = gateway_for(fake_stripe.configure(settings))
    with tenant_session(session_factory, business.id) as s:
        c, o = s.get(Customer, customer.id), s.get(Customer, other.id)
        mine = gateway.begin_setup(c, return_url="/r")
        c.payment_customer_ref = mine.gateway_customer
        theirs = gateway.begin_setup(o, return_url="/r")
        o.payment_customer_ref = theirs.gateway_customer
        with pytest.raises(ValidationError, match="not confirmed"):
            gateway.complete_setup(c, {"setup_intent": mine.id})
        fake_stripe.confirm_in_browser(theirs.id)
        with pytest.raises(NotFound):  # another customer's confirmed setup is not usable
            gateway.complete_setup(c, {"setup_intent": theirs.id})
        with pytest.raises(NotFound):
            gateway.complete_setup(c, {"setup_intent": "seti_doesnotexist"})
        with pytest.raises(ValidationError):
            gateway.complete_setup(c, {"setup_intent": "../../v1/customers"})
        with pytest.raises(ValidationError):
            gateway.complete_setup(c, {})


def test_stripe_outage_and_bad_key_are_provider_errors(db, shop, fake_stripe, settings):
    business, customer = shop
    gateway = gateway_for(fake_stripe.configure(settings))
    fake_stripe.fail_status(500)
    fake_stripe.fail_status(500)  # the SDK retries once
    with pytest.raises(ProviderError):
        gateway.begin_setup(customer, return_url="/r")
    bad = StripeGateway("sk_test_wrong", api_base=fake_stripe.url)
    with pytest.raises(ProviderError):
        bad.begin_setup(customer, return_url="/r")


def test_current_method(db, session_factory, shop):
    business, customer = shop
    with tenant_session(session_factory, business.id) as s:
        assert current_method(s, customer.id) is None

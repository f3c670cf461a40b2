"""Saved payment methods behind one small Protocol.

A gateway never sees a card number on our side: the card is typed into the
gateway's own form (Stripe.js in production) or, in dev and tests, chosen from
a list of named test cards. We keep only the gateway's token and what we show
the customer: brand, last 4 digits and expiry.

    gateway = gateway_for(settings)
    setup = gateway.begin_setup(customer, return_url=...)      # show the form
    card = gateway.complete_setup(customer, request_params)     # on return
    save_payment_method(session, business, customer, gateway.name, card)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import Business, Customer, PaymentMethod
from portal.settings import Settings
from portal.webhooks_out import record_event


@dataclass(frozen=True)
class SetupSession:
    """What the page needs to collect a card: the gateway's setup id and, for
    Stripe.js, the client secret and publishable key. ``gateway_customer`` is
    set when the gateway created a customer record that must be remembered."""

    id: str
    client_secret: str | None = None
    publishable_key: str | None = None
    gateway_customer: str | None = None
    choices: list[tuple[str, str]] = field(default_factory=list)  # test gateway: (token, label)


@dataclass(frozen=True)
class CardDetails:
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@runtime_checkable
class PaymentGateway(Protocol):
    name: str
    #: The page template that renders this gateway's card form.
    template: str

    def begin_setup(self, customer: Customer, *, return_url: str) -> SetupSession:
        """Start saving a new card for ``customer``."""
        ...

    def complete_setup(self, customer: Customer, params: Mapping[str, str]) -> CardDetails:
        """Finish from the form's or the redirect's parameters; raises ValidationError
        (card not confirmed / declined), NotFound (not this customer's setup) or
        ProviderError (gateway unreachable)."""
        ...


def gateway_for(settings: Settings) -> PaymentGateway:
    if settings.payment_gateway == "stripe":
        from portal.payments.stripe_gateway import StripeGateway

        return StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base,
                             publishable_key=settings.stripe_publishable_key)
    from portal.payments.test_gateway import TestGateway

    return TestGateway()


def current_method(session: Session, customer_id: int) -> PaymentMethod | None:
    return session.scalar(select(PaymentMethod).where(PaymentMethod.customer_id == customer_id))


def save_payment_method(session: Session, business: Business, customer: Customer, gateway: str,
                        card: CardDetails) -> PaymentMethod:
    """Replace the customer's saved method and tell the booking system."""
    method = current_method(session, customer.id)
    if method is None:
        method = PaymentMethod(business_id=customer.business_id, customer_id=customer.id)
        session.add(method)
    method.gateway = gateway
    method.gateway_token = card.token
    method.brand = card.brand[:20]
    method.last4 = card.last4[-4:]
    method.exp_month = int(card.exp_month)
    method.exp_year = int(card.exp_year)
    session.flush()
    record_event(session, business, "customer.payment_method_changed", {
        "customer": customer.external_id, "gateway": gateway, "payment_method": card.token,
        "brand": method.brand, "last4": method.last4, "exp_month": method.exp_month,
        "exp_year": method.exp_year, "source": "portal",
    })
    return method

"""Stripe through the official SDK: the SetupIntent flow.

1. ``begin_setup`` makes sure the customer has a Stripe customer, then
   creates a SetupIntent for it (card, off-session use). The page hands its
   client secret to Stripe.js, which collects the card in Stripe's own iframe
   and confirms the SetupIntent with Stripe directly, then redirects back
   with ``?setup_intent=seti_...``.
2. ``complete_setup`` retrieves that SetupIntent, checks it belongs to this
   customer and succeeded, and retrieves its PaymentMethod for the brand,
   last 4 and expiry. The card number never passes through this server.

The API base is a setting (``STRIPE_API_BASE``) so tests run the real SDK
against a local fake (``tests/fakes/stripe_fake.py``).
"""

from __future__ import annotations

import logging
from typing import Mapping

import stripe

from portal.errors import NotFound, ProviderError, ValidationError
from portal.models import Customer
from portal.payments import CardDetails, SetupSession

log = logging.getLogger(__name__)


class StripeGateway:
    name = "stripe"
    template = "portal/payment_method_stripe.html"

    def __init__(self, api_key: str, *, api_base: str = "https://api.stripe.com", publishable_key: str = "",
                 max_network_retries: int = 1):
        self.publishable_key = publishable_key
        self.client = stripe.StripeClient(api_key, base_addresses={"api": api_base.rstrip("/")},
                                          max_network_retries=max_network_retries)

    def _metadata(self, customer: Customer) -> dict[str, str]:
        return {"portal_business": str(customer.business_id), "portal_customer": str(customer.id),
                "external_id": customer.external_id}

    def begin_setup(self, customer: Customer, *, return_url: str) -> SetupSession:
        created = None
        try:
            stripe_customer = customer.payment_customer_ref
            if not stripe_customer:
                params = {"name": customer.name, "metadata": self._metadata(customer)}
                if customer.email:
                    params["email"] = customer.email
                # One Stripe customer per portal customer, even if two tabs race within a day.
                created = self.client.v1.customers.create(
                    params, {"idempotency_key": f"portal-customer-{customer.business_id}-{customer.id}"})
                stripe_customer = created.id
            intent = self.client.v1.setup_intents.create({
                "customer": stripe_customer, "usage": "off_session", "payment_method_types": ["card"],
                "metadata": self._metadata(customer),
            })
        except stripe.StripeError as exc:
            log.warning("stripe setup failed: %s", type(exc).__name__)
            raise ProviderError("The payment provider is not available right now. Please try again later.") from exc
        return SetupSession(id=intent.id, client_secret=intent.client_secret, publishable_key=self.publishable_key,
                            gateway_customer=created.id if created is not None else None)

    def complete_setup(self, customer: Customer, params: Mapping[str, str]) -> CardDetails:
        intent_id = (params.get("setup_intent") or "").strip()
        if not intent_id.startswith("seti_") or len(intent_id) > 255:
            raise ValidationError("The card form did not finish. Please try again.", {"setup_intent": "missing"})
        try:
            intent = self.client.v1.setup_intents.retrieve(intent_id)
        except stripe.InvalidRequestError as exc:
            raise NotFound("This card setup does not exist.") from exc
        except stripe.StripeError as exc:
            log.warning("stripe retrieve failed: %s", type(exc).__name__)
            raise ProviderError("The payment provider is not available right now. Please try again later.") from exc
        data = intent.to_dict()  # StripeObjects are not dicts in SDK 16
        metadata = data.get("metadata") or {}
        if not customer.payment_customer_ref or data.get("customer") != customer.payment_customer_ref \
                or metadata.get("portal_customer") != str(customer.id):
            raise NotFound("This card setup does not exist.")
        pm_ref = data.get("payment_method")
        if data.get("status") != "succeeded" or not pm_ref:
            raise ValidationError("The card was not confirmed. Please try again.", {"setup_intent": str(data.get("status"))})
        pm_id = pm_ref if isinstance(pm_ref, str) else pm_ref.get("id")
        try:
            pm = self.client.v1.payment_methods.retrieve(pm_id)
        except stripe.StripeError as exc:
            log.warning("stripe payment method retrieve failed: %s", type(exc).__name__)
            raise ProviderError("The payment provider is not available right now. Please try again later.") from exc
        pm_data = pm.to_dict()
        card = pm_data.get("card")
        if pm_data.get("type") != "card" or not card:
            raise ValidationError("Only cards can be saved here.", {"payment_method": "not a card"})
        return CardDetails(token=pm_data["id"], brand=str(card.get("brand") or "card"), last4=str(card.get("last4") or ""),
                           exp_month=int(card.get("exp_month") or 0), exp_year=int(card.get("exp_year") or 0))

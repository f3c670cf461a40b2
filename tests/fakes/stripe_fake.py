"""A fake of the Stripe API parts the SetupIntent flow uses, with Stripe's real shapes.

    POST /v1/customers                         -> customer
    POST /v1/setup_intents                     -> setup_intent (requires_payment_method)
    GET  /v1/setup_intents/{id}                -> setup_intent
    POST /v1/setup_intents/{id}/confirm        -> what Stripe.js does in the browser; accepts
                                                  Stripe's test payment methods (pm_card_visa,
                                                  pm_card_mastercard, pm_card_chargeDeclined)
    GET  /v1/payment_methods/{id}              -> payment_method (type card)

Form-encoded bodies with Stripe's bracket notation, ``Authorization: Bearer sk_...``,
``Idempotency-Key`` replays, and Stripe's error envelope
``{"error": {"type", "code", "message", "param", ...}}``. Every request is kept in
``requests``; ``queue(Canned(...))`` scripts the next reply (e.g. a 500).

    def test_x(fake_stripe, settings):
        settings = fake_stripe.configure(settings)
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from tests.fakes.server import Canned, FakeServer, json_response

# Stripe's test payment methods: token -> (brand, last4, declined?)
TEST_PAYMENT_METHODS = {
    "pm_card_visa": ("visa", "4242", False),
    "pm_card_mastercard": ("mastercard", "4444", False),
    "pm_card_amex": ("amex", "8431", False),
    "pm_card_chargeDeclined": ("visa", "0002", True),
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def parse_form(body: bytes) -> dict:
    """Stripe's ``a[b]=1&c[0]=x`` encoding -> nested dicts / lists."""
    out: dict = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                if part.isdigit() or part == "":
                    node.setdefault("__list__", []).append(value)
                else:
                    node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(out)


def _lists(node):
    if isinstance(node, dict):
        if set(node) == {"__list__"}:
            return node["__list__"]
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def stripe_error(status: int, type_: str, message: str, *, code: str | None = None, param: str | None = None,
                 **extra) -> tuple[int, dict]:
    err = {"type": type_, "message": message}
    if code:
        err["code"] = code
        err["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        err["param"] = param
    err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/req_{secrets.token_hex(7)}"
    err.update(extra)
    return status, {"error": err}


class FakeStripe(FakeServer):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key or f"sk_test_{secrets.token_hex(12)}"
        self.publishable_key = f"pk_test_{secrets.token_hex(12)}"
        self.customers: dict[str, dict] = {}
        self.setup_intents: dict[str, dict] = {}
        self.payment_methods: dict[str, dict] = {}
        self._idempotent: dict[str, tuple[int, dict]] = {}

    def configure(self, settings):
        return settings.replace(payment_gateway="stripe", stripe_api_key=self.api_key, stripe_api_base=self.url,
                                stripe_publishable_key=self.publishable_key)

    def fail_status(self, status: int = 500) -> None:
        self.queue(Canned(*stripe_error(status, "api_error", "An unknown error occurred")))

    def confirm_in_browser(self, intent_id: str, payment_method: str = "pm_card_visa") -> dict:
        """What Stripe.js does once the customer typed a card: confirm the SetupIntent."""
        status, body = self._confirm(intent_id, {"payment_method": payment_method})
        if status != 200:
            raise AssertionError(f"confirm failed: {body}")
        return body

    # -- the API -----------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/customers", self._handle)
        app.router.add_post("/v1/setup_intents", self._handle)
        app.router.add_get("/v1/setup_intents/{id}", self._handle)
        app.router.add_post("/v1/setup_intents/{id}/confirm", self._handle)
        app.router.add_get("/v1/payment_methods/{id}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self._record(request, raw)
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return json_response(*stripe_error(401, "invalid_request_error",
                                               f"Invalid API Key provided: {key[:8]}****{key[-4:]}"))
        canned = self._next_canned()
        if canned is not None:
            if canned.hang:
                await self._hold()
            return json_response(canned.status, canned.body, canned.headers)
        params = parse_form(raw) if raw else dict(parse_qsl(request.query_string))
        ikey = request.headers.get("Idempotency-Key")
        if request.method == "POST" and ikey and ikey in self._idempotent:
            status, body = self._idempotent[ikey]
            return json_response(status, body, {"Idempotent-Replayed": "true"})
        status, body = self._dispatch(request, params)
        if request.method == "POST" and ikey:
            self._idempotent[ikey] = (status, body)
        return json_response(status, body, {"Request-Id": f"req_{secrets.token_hex(7)}"})

    def _dispatch(self, request: web.Request, params: dict) -> tuple[int, dict]:
        path = request.path
        ident = request.match_info.get("id")
        if path == "/v1/customers":
            return self._create_customer(params)
        if path == "/v1/setup_intents":
            return self._create_setup_intent(params)
        if path.startswith("/v1/setup_intents/") and path.endswith("/confirm"):
            return self._confirm(ident, params)
        if path.startswith("/v1/setup_intents/"):
            intent = self.setup_intents.get(ident)
            if intent is None:
                return stripe_error(404, "invalid_request_error", f"No such setupintent: '{ident}'",
                                    code="resource_missing", param="intent")
            return 200, intent
        pm = self.payment_methods.get(ident)
        if pm is None:
            return stripe_error(404, "invalid_request_error", f"No such PaymentMethod: '{ident}'",
                                code="resource_missing", param="payment_method")
        return 200, pm

    def _create_customer(self, params: dict) -> tuple[int, dict]:
        cid = new_id("cus")
        self.customers[cid] = {
            "id": cid, "object": "customer", "address": None, "balance": 0, "created": int(time.time()),
            "currency": None, "default_source": None, "delinquent": False, "description": None,
            "discount": None, "email": params.get("email"), "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False, "metadata": params.get("metadata", {}), "name": params.get("name"),
            "phone": params.get("phone"), "preferred_locales": [], "shipping": None, "tax_exempt": "none",
            "test_clock": None,
        }
        return 200, self.customers[cid]

    def _create_setup_intent(self, params: dict) -> tuple[int, dict]:
        customer = params.get("customer")
        if customer and customer not in self.customers:
            return stripe_error(400, "invalid_request_error", f"No such customer: '{customer}'",
                                code="resource_missing", param="customer")
        sid = new_id("seti")
        self.setup_intents[sid] = {
            "id": sid, "object": "setup_intent", "application": None, "automatic_payment_methods": None,
            "cancellation_reason": None, "client_secret": f"{sid}_secret_{secrets.token_hex(12)}",
            "created": int(time.time()), "customer": customer, "description": params.get("description"),
            "flow_directions": None, "last_setup_error": None, "latest_attempt": None, "livemode": False,
            "mandate": None, "metadata": params.get("metadata", {}), "next_action": None, "on_behalf_of": None,
            "payment_method": None,
            "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}},
            "payment_method_types": params.get("payment_method_types", ["card"]), "single_use_mandate": None,
            "status": "requires_payment_method", "usage": params.get("usage", "off_session"),
        }
        return 200, self.setup_intents[sid]

    def _confirm(self, ident: str | None, params: dict) -> tuple[int, dict]:
        intent = self.setup_intents.get(ident or "")
        if intent is None:
            return stripe_error(404, "invalid_request_error", f"No such setupintent: '{ident}'",
                                code="resource_missing", param="intent")
        token = params.get("payment_method", "")
        if token not in TEST_PAYMENT_METHODS:
            return stripe_error(400, "invalid_request_error", f"No such PaymentMethod: '{token}'",
                                code="resource_missing", param="payment_method")
        brand, last4, declined = TEST_PAYMENT_METHODS[token]
        if declined:
            intent["status"] = "requires_payment_method"
            intent["last_setup_error"] = {"code": "card_declined", "decline_code": "generic_decline",
                                          "message": "Your card was declined.", "type": "card_error"}
            return stripe_error(402, "card_error", "Your card was declined.", code="card_declined",
                                decline_code="generic_decline", setup_intent=intent)
        pm_id = new_id("pm")
        self.payment_methods[pm_id] = {
            "id": pm_id, "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": {"address": {"city": None, "country": None, "line1": None, "line2": None,
                                            "postal_code": None, "state": None},
                                "email": None, "name": None, "phone": None},
            "card": {"brand": brand, "checks": {"address_line1_check": None, "address_postal_code_check": None,
                                                "cvc_check": "pass"},
                     "country": "US", "display_brand": brand, "exp_month": 12, "exp_year": 2034,
                     "fingerprint": secrets.token_hex(8), "funding": "credit", "generated_from": None,
                     "last4": last4, "networks": {"available": [brand], "preferred": None},
                     "three_d_secure_usage": {"supported": True}, "wallet": None},
            "created": int(time.time()), "customer": intent["customer"], "livemode": False, "metadata": {},
            "type": "card",
        }
        intent.update(status="succeeded", payment_method=pm_id, last_setup_error=None)
        return 200, intent


@pytest.fixture
def fake_stripe():
    with FakeStripe() as fake:
        yield fake

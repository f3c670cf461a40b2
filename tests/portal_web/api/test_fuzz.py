"""Property-based fuzzing of /api/v1 with Schemathesis.

Every operation of the OpenAPI document the app serves is called with generated
requests, valid and invalid, against the real app and database (the test's
transaction, rolled back afterwards). Nothing may answer 5xx; each answer must
have a documented status, content type and shape, and a request the document
calls invalid must be refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from sqlalchemy import update

from portal.models import Business
from portal.security import hash_token
from portal_web.api import build, routes
from portal_web.api.base import PREFIX
from tests.factories import make_booking, make_customer, make_invoice, make_provider, make_quote, make_service
from tests.fakes.dns import PUBLIC
from tests.portal_web.api.live import LiveServer

FUZZ_KEY = "cpk_fuzz-0123456789abcdef0123456789abcdef"
CONFIG = {
    "generation": {
        "mode": "all",  # valid and invalid requests
        "max-examples": 10,  # per operation, for the random (fuzzing) phase; keeps the whole file to seconds
        "deterministic": True,  # the same requests every run: a failure here is never a fluke
        "database": "none",  # no .hypothesis/ directory, no replay of earlier runs' failures
        # The API ignores query parameters it does not know, as HTTP APIs commonly do; the document does not
        # forbid them, so they are not "invalid data".
        "allow-extra-parameters": False,
    },
    "phases": {"stateful": {"enabled": False}},
    # Schemathesis sends it, except where it tests a missing or wrong key; the test business is given it.
    "auth": {"openapi": {"apiKey": {"bearer": FUZZ_KEY}}},
    "checks": {
        # A body can match the document and still be refused with 422: unknown references, cross-field rules
        # (ends_at after starts_at), phone numbers and time zones are checked beyond what JSON Schema says.
        "positive_data_acceptance": {"enabled": False},
    },
}

# The document the app serves at /api/v1/openapi.json (test_served_document_is_the_fuzzed_one checks that).
schema = schemathesis.openapi.from_dict(build(routes()), config=schemathesis.Config.from_dict(CONFIG))


# The rows live_api makes, under the documented examples' ids.
SEEDED = {"customers": "cust-1001", "service-providers": "prov-1", "services": "svc-1", "bookings": "bk-1",
          "invoices": "inv-1", "quotes": "q-1"}


@schema.hook
def map_path_parameters(context, path_parameters):
    """About half of the valid generated ids name a seeded row, so reads and cancels get past "not found"."""
    value = (path_parameters or {}).get("external_id")
    if isinstance(value, str) and re.fullmatch(r"[^/\s\x00]{1,100}", value) and len(value) % 2:
        resource = context.operation.path.removeprefix(PREFIX + "/").split("/")[0]
        return {**path_parameters, "external_id": SEEDED[resource]}
    return path_parameters


def _resolve_everything_publicly(monkeypatch):
    """Webhook URLs are checked by resolving their host: every generated name resolves to a public address."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (PUBLIC, port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def live_api(settings, session_factory, db, biz, redis_client, stub_broker, monkeypatch):
    from portal_web.app import create_app

    # The documented examples' ids exist, so the examples reach past reference checks.
    customer = make_customer(db, biz, external_id="cust-1001")
    provider, service = make_provider(db, biz, external_id="prov-1"), make_service(db, biz, external_id="svc-1")
    booking = make_booking(db, customer, external_id="bk-1", provider_id=provider.id, service_id=service.id)
    make_invoice(db, customer, external_id="inv-1", booking_id=booking.id)
    make_quote(db, customer, external_id="q-1")
    _give_fuzz_key(db, biz)
    _resolve_everything_publicly(monkeypatch)
    with LiveServer(lambda: create_app(settings, session_factory=session_factory)) as server:
        yield server


def _give_fuzz_key(db, biz):
    # A statement, not the session's copy of the row: that one has not seen the app rotate the key.
    db.execute(update(Business).where(Business.id == biz.id).values(api_key_hash=hash_token(FUZZ_KEY)))
    db.commit()


@schema.parametrize()
# The live server and the test's transaction span all of an operation's examples, on purpose; and nothing
# here may depend on how fast the machine is (Schemathesis already sets deadline=None).
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_fuzz(case, live_api, db, biz):
    response = case.call_and_validate(base_url=live_api.url)
    if case.path.endswith("/api-key/rotate") and response.status_code == 200:
        _give_fuzz_key(db, biz)  # the next examples authenticate again


def test_served_document_is_the_fuzzed_one(live_api):
    served = requests.get(live_api.url + "/api/v1/openapi.json", timeout=10).json()
    assert served == build(routes())


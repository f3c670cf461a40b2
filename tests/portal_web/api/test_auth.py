"""API keys: missing, wrong and another business's key never reach data."""

import pytest
from sqlalchemy import func, select

from portal.models import Customer
from tests.factories import make_business, make_customer
from tests.portal_web.api.conftest import Api

PATHS = ["/customers/c-1", "/settings", "/messages?customer=c-1", "/bookings/b-1"]


@pytest.fixture
async def other(client, db):
    business = make_business(db)
    make_customer(db, business, external_id="theirs", name="Their Customer")
    db.commit()
    return Api(client, business.api_key)


@pytest.mark.parametrize("path", PATHS)
async def test_missing_key_is_401_with_challenge(client, biz, path):
    resp = await client.get("/api/v1" + path)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await resp.json())["error"].startswith("missing API key")


@pytest.mark.parametrize("header", ["Bearer cpk_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer ", "cpk_x"])
async def test_wrong_key_is_401(client, biz, header):
    resp = await client.get("/api/v1/settings", headers={"Authorization": header})
    assert resp.status == 401
    assert "WWW-Authenticate" in resp.headers
    assert "slug" not in await resp.text()


async def test_wrong_key_writes_nothing(client, biz, db):
    resp = await client.put("/api/v1/customers/c-9", json={"name": "X"}, headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    assert db.scalar(select(func.count()).select_from(Customer).where(Customer.external_id == "c-9")) == 0


async def test_a_key_reaches_only_its_own_business(api, other, db, biz):
    assert (await api.put("/customers/mine", {"name": "Mine"}))[0] == 201
    # The other business cannot read it, and its own customer is invisible to us.
    status, body = await other.get("/customers/mine")
    assert status == 404 and "Mine" not in str(body)
    status, body = await api.get("/customers/theirs")
    assert status == 404 and "Their" not in str(body)
    # Same external id in two businesses: two independent rows.
    assert (await other.put("/customers/mine", {"name": "Other's"}))[0] == 201
    assert (await api.get("/customers/mine"))[1]["name"] == "Mine"
    # Another business's customer cannot be referenced either.
    status, body = await api.put("/bookings/b1", {"customer": "theirs", "starts_at": "2030-01-01T10:00:00Z",
                                                  "ends_at": "2030-01-01T11:00:00Z"})
    assert status == 422 and body["fields"] == {"customer": "unknown customer 'theirs'"}
    status, body = await other.get("/messages")
    assert status == 200 and body["messages"] == []
    assert (await other.get("/settings"))[1]["slug"] != biz.slug


async def test_rotate_key_returns_new_key_once_and_old_one_stops(api, client):
    status, body = await api.post("/api-key/rotate")
    assert status == 200 and body["api_key"].startswith("cpk_") and body["api_key"] != api.key
    assert (await api.get("/settings"))[0] == 401
    fresh = Api(client, body["api_key"])
    status, settings = await fresh.get("/settings")
    assert status == 200 and settings["api_key_prefix"] == body["api_key_prefix"]
    assert body["api_key"] not in str(settings)


async def test_openapi_document_needs_no_key(client, biz):
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200 and (await resp.json())["openapi"].startswith("3.")

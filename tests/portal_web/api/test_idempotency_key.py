"""Idempotency-Key on POSTs: replay the first response; another body is 422."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from portal.models import IdempotencyRecord, Message
from tests.factories import make_booking, make_customer

START = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=5)


@pytest.fixture
def booking(db, biz):
    customer = make_customer(db, biz, external_id="c1")
    b = make_booking(db, customer, external_id="b1", starts_at=START)
    db.commit()
    return b


def messages(db):
    db.expire_all()
    return db.scalar(select(func.count()).select_from(Message))


async def test_same_key_same_body_replays_first_response(api, db, booking):
    headers = {"Idempotency-Key": "cancel-b1-attempt"}
    first = await api.client.post("/api/v1/bookings/b1/cancel", json={"reason": "sick"},
                                  headers={**api._headers(headers)})
    first_body = await first.json()
    assert first.status == 200 and "Idempotent-Replayed" not in first.headers
    again = await api.client.post("/api/v1/bookings/b1/cancel", data=b'{ "reason" : "sick" }',
                                  headers={**api._headers(headers), "Content-Type": "application/json"})
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == first_body
    assert messages(db) == 1
    assert db.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1


async def test_same_key_other_body_is_422_and_changes_nothing(api, db, booking):
    headers = {"Idempotency-Key": "k-1"}
    assert (await api.post("/invitations", {"customer": "c1"}, headers=headers))[0] == 202
    status, body = await api.post("/invitations", {"customer": "c1", "force": True}, headers=headers)
    assert status == 422 and "Idempotency-Key" in body["fields"]
    status, body = await api.post("/bookings/b1/cancel", {}, headers=headers)  # another path, same key
    assert status == 422
    assert messages(db) == 1
    assert (await api.get("/bookings/b1"))[1]["status"] == "scheduled"


async def test_replay_of_a_queued_invitation_is_not_a_second_invitation(api, db, booking):
    headers = {"Idempotency-Key": "invite-c1"}
    first = await api.post("/invitations", {"customer": "c1", "force": True}, headers=headers)
    second = await api.post("/invitations", {"customer": "c1", "force": True}, headers=headers)
    assert first == second and first[0] == 202
    assert messages(db) == 1


async def test_keys_are_per_business(api, db, booking, client):
    from tests.factories import make_business
    from tests.portal_web.api.conftest import Api

    other_biz = make_business(db)
    make_customer(db, other_biz, external_id="c1")
    db.commit()
    other = Api(client, other_biz.api_key)
    headers = {"Idempotency-Key": "shared-key"}
    assert (await api.post("/invitations", {"customer": "c1"}, headers=headers))[0] == 202
    assert (await other.post("/invitations", {"customer": "c1"}, headers=headers))[0] == 202
    assert messages(db) == 2


async def test_failed_request_is_not_recorded(api, db, booking):
    headers = {"Idempotency-Key": "k-2"}
    assert (await api.post("/invitations", {"customer": "nobody"}, headers=headers))[0] == 422
    assert db.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    assert (await api.post("/invitations", {"customer": "c1"}, headers={"Idempotency-Key": "k-2"}))[0] == 202


async def test_overlong_key_is_refused(api, booking):
    status, body = await api.post("/invitations", {"customer": "c1"}, headers={"Idempotency-Key": "x" * 201})
    assert status == 422 and "Idempotency-Key" in body["fields"]


async def test_the_document_offers_the_key_only_where_it_replays(client):
    # Found by the fuzzer: the key rotation listed Idempotency-Key, but a retry with it rotates again.
    doc = await (await client.get("/api/v1/openapi.json")).json()
    offered = {path for path, ops in doc["paths"].items() for op in ops.values()
               if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", []))}
    assert offered == {"/api/v1/bookings/{external_id}/cancel", "/api/v1/invitations"}


async def test_a_key_older_than_its_lifetime_is_new_again(api, db, booking, settings):
    headers = {"Idempotency-Key": "invite-c1-old"}
    assert (await api.post("/invitations", {"customer": "c1", "force": True}, headers=headers))[0] == 202
    record = db.scalar(select(IdempotencyRecord))
    record.created_at -= timedelta(seconds=settings.idempotency_key_ttl_s + 1)
    db.commit()
    # Not purged yet: the old record is replaced, and the request runs again instead of replaying.
    second = await api.client.post("/api/v1/invitations", json={"customer": "c1", "force": True},
                                   headers=api._headers(headers))
    assert second.status == 202 and "Idempotent-Replayed" not in second.headers
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1
    assert messages(db) == 2

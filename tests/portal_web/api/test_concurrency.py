"""Requests that arrive at the same moment, on PostgreSQL with committed data and a connection each:
the same Idempotency-Key, the same invitation or the same new id still make one row and send once."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests
from sqlalchemy import delete, func, select

from portal.db import system_session
from portal.models import Business, Customer, IdempotencyRecord, Message
from tests.factories import make_business, make_customer
from tests.portal_web.api.live import LiveServer

AT_ONCE = 8


@pytest.fixture
def committed_api(committed_factory, settings, redis_client, stub_broker):
    from portal_web.app import create_app

    factory = committed_factory
    with system_session(factory) as s:
        business = make_business(s, slug=f"at-once-{uuid.uuid4().hex[:8]}")
        make_customer(s, business, external_id="c1")
        s.commit()
        business_id, key = business.id, business.api_key
    try:
        with LiveServer(lambda: create_app(settings.replace(db_threads=AT_ONCE), session_factory=factory)) as server:
            yield server.url + "/api/v1", {"Authorization": f"Bearer {key}"}, business_id, factory
    finally:
        with system_session(factory) as s:
            s.execute(delete(Business).where(Business.id == business_id))  # cascades to every row it owns
            s.commit()


def at_once(send) -> list[requests.Response]:
    barrier = threading.Barrier(AT_ONCE)
    answers: list = [None] * AT_ONCE

    def run(i):
        barrier.wait(timeout=10)
        answers[i] = send()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(AT_ONCE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def count(factory, business_id, model, *where) -> int:
    with system_session(factory) as s:
        return s.scalar(select(func.count()).select_from(model).where(model.business_id == business_id, *where))


def test_the_same_idempotency_key_at_once_runs_once(committed_api):
    url, auth, business_id, factory = committed_api
    answers = at_once(lambda: requests.post(url + "/invitations", json={"customer": "c1", "force": True},
                                            headers={**auth, "Idempotency-Key": "k-1"}, timeout=30))
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1  # every answer is the first one
    assert count(factory, business_id, Message, Message.kind == "invitation") == 1
    assert count(factory, business_id, IdempotencyRecord) == 1


def test_the_same_invitation_at_once_invites_once(committed_api):
    url, auth, business_id, factory = committed_api
    answers = at_once(lambda: requests.post(url + "/invitations", json={"customer": "c1"}, headers=auth, timeout=30))
    assert sorted(a.status_code for a in answers) == [200] * (AT_ONCE - 1) + [202]
    assert {a.json()["reason"] for a in answers if a.status_code == 200} == {"invited_recently"}
    assert count(factory, business_id, Message, Message.kind == "invitation") == 1


def test_the_same_new_id_at_once_is_one_row(committed_api):
    url, auth, business_id, factory = committed_api
    answers = at_once(lambda: requests.put(url + "/customers/c2", json={"name": "Jane", "email": "jane@example.com"},
                                           headers=auth, timeout=30))
    assert sorted(a.status_code for a in answers) == [200] * (AT_ONCE - 1) + [201]
    assert count(factory, business_id, Customer, Customer.external_id == "c2") == 1

"""portal.invitations: the cooldown rule, and the job the booking system can queue from Python."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.errors import SettingsError
from portal.invitations import enqueue_invitation, invite
from portal.models import Message, utcnow
from tests.factories import make_business, make_customer

COOLDOWN = 3600


def invitations(db):
    db.expire_all()
    return db.scalars(select(Message).where(Message.kind == "invitation")).all()


@pytest.fixture
def customer(db):
    c = make_customer(db, make_business(db), external_id="c1")
    db.commit()
    return c


def test_invite_sets_last_invited_and_queues_one_message(db, customer):
    result = invite(db, customer, cooldown_s=COOLDOWN)
    assert result.queued and len(result.messages) == 1
    assert customer.last_invited_at is not None
    assert result.messages[0].params == {"source": "api"}
    assert result.as_dict()["messages"] == [result.messages[0].id]


def test_cooldown_and_force(db, customer):
    now = utcnow()
    assert invite(db, customer, cooldown_s=COOLDOWN, now=now).queued
    again = invite(db, customer, cooldown_s=COOLDOWN, now=now + timedelta(seconds=COOLDOWN - 1))
    assert (again.status, again.reason) == ("skipped", "invited_recently")
    assert invite(db, customer, cooldown_s=COOLDOWN, now=now + timedelta(seconds=1), force=True).queued
    assert invite(db, customer, cooldown_s=COOLDOWN, now=now + timedelta(seconds=COOLDOWN + 2)).queued
    assert len(invitations(db)) == 3


def test_same_key_never_queues_twice(db, customer):
    first = invite(db, customer, cooldown_s=COOLDOWN, force=True, key="customer:1:bulk:run")
    second = invite(db, customer, cooldown_s=COOLDOWN, force=True, key="customer:1:bulk:run")
    assert [m.id for m in first.messages] == [m.id for m in second.messages]
    assert len(invitations(db)) == 1


def test_no_channel_is_logged_as_skipped_and_portal_disabled_leaves_no_trace(db, customer):
    customer.email = customer.phone = None
    result = invite(db, customer, cooldown_s=COOLDOWN)
    assert result.reason == "no_channel" and customer.last_invited_at is None
    [row] = invitations(db)
    assert row.status == "skipped" and "no email address" in row.status_reason
    assert result.as_dict()["messages"] == [row.id]
    customer.email = "x@example.com"
    customer.business.portal_enabled = False
    assert invite(db, customer, cooldown_s=COOLDOWN, force=True).reason == "portal_disabled"
    assert customer.last_invited_at is None and len(invitations(db)) == 1


@pytest.fixture
def invitation_worker(stub_broker):
    """Runs only the invitation jobs: the messages they queue are not this test's business."""
    import dramatiq

    worker = dramatiq.Worker(stub_broker, queues={"invitations"}, worker_timeout=50, worker_threads=1)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def bulk_wired(monkeypatch, session_factory, settings, stub_broker):
    from workers import bulk

    monkeypatch.setattr(bulk._config, "session_factory", session_factory)
    monkeypatch.setattr(bulk._config, "settings", settings.replace(invite_rate_per_s=1000))
    monkeypatch.setattr(bulk._config, "limiters", {})
    return stub_broker


@pytest.mark.parametrize("by", ["slug", "id"])
def test_enqueue_invitation_from_python(db, customer, bulk_wired, invitation_worker, by):
    business = customer.business
    enqueue_invitation(business.slug if by == "slug" else business.id, "c1")
    assert bulk_wired.queues["invitations"].qsize() == 1
    bulk_wired.join("invitations")
    invitation_worker.join()
    assert [m.params["source"] for m in invitations(db)] == ["job"]
    # Within the cooldown a second job does nothing; force sends again.
    enqueue_invitation(business.slug, "c1")
    enqueue_invitation(business.slug, "c1", force=True)
    bulk_wired.join("invitations")
    invitation_worker.join()
    assert len(invitations(db)) == 2


def test_unknown_business_or_customer_is_dropped(db, customer, bulk_wired, invitation_worker):
    enqueue_invitation("no-such-business", "c1")
    enqueue_invitation(customer.business.slug, "ghost")
    bulk_wired.join("invitations", fail_fast=True)
    invitation_worker.join()
    assert invitations(db) == [] and bulk_wired.dead_letters == []


def test_invite_customer_actor_by_internal_ids(db, customer, bulk_wired, invitation_worker):
    from workers.bulk import invite_customer

    invite_customer.send(customer.business_id, customer.id, False)
    invite_customer.send(customer.business_id, 999_999, False)  # gone since: dropped
    bulk_wired.join("invitations", fail_fast=True)
    invitation_worker.join()
    assert len(invitations(db)) == 1


def test_enqueue_invitation_without_redis_is_an_error_not_a_silent_drop(customer, bulk_wired, monkeypatch):
    monkeypatch.delenv("PORTAL_BROKER")  # the booking system's own process, REDIS_URL not set: a stub broker
    with pytest.raises(SettingsError, match="REDIS_URL"):
        enqueue_invitation(customer.business.slug, "c1")
    assert bulk_wired.queues["invitations"].qsize() == 0


def test_a_slug_made_of_digits_names_its_own_business_not_the_business_with_that_id(db, customer, bulk_wired,
                                                                                    invitation_worker):
    numbered = make_business(db, slug=str(customer.business_id))  # another business whose slug is A's id
    own = make_customer(db, numbered, external_id="c1")
    db.commit()
    enqueue_invitation(numbered.slug, "c1")
    bulk_wired.join("invitations")
    invitation_worker.join()
    assert [m.customer_id for m in invitations(db)] == [own.id]

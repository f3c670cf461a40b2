"""Urgent kinds (sign-in links) have a queue of their own that workers serve first: a customer
waiting for a link is not queued behind a morning's reminders."""

from datetime import datetime, timedelta, timezone

import dramatiq
import pytest
import time_machine

from messages.providers.base import MESSAGE_ID_ARG, SendResult
from portal.models import Message
from portal.outbox import queue_notice
from tests.factories import make_booking, make_business, make_customer
from tests.messages.support import drain
from workers import messaging


@pytest.fixture
def customer(db):
    return make_customer(db, make_business(db))


def _signin_link(db, customer):
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:req-1",
                              params={"purpose": "signin", "locale": "en"}, channels=["email"])
    return message


def _confirmations(db, customer, n: int) -> None:
    for _ in range(n):
        booking = make_booking(db, customer)
        queue_notice(db, kind="booking_confirmation", customer=customer, booking=booking,
                     key=f"booking:{booking.id}:v1", channels=["email"])


def test_a_signin_link_goes_on_the_urgent_queue(db, senders, customer):
    _confirmations(db, customer, 1)
    _signin_link(db, customer)
    db.commit()
    queued = {name: [dramatiq.Message.decode(raw).actor_name for raw in list(queue.queue)]
              for name, queue in senders.broker.queues.items() if name in ("messages", "urgent")}
    assert queued == {"messages": ["deliver_message"], "urgent": ["deliver_urgent_message"]}


def test_a_signin_link_is_sent_before_a_backlog_of_reminders(db, senders, customer):
    _confirmations(db, customer, 30)
    link = _signin_link(db, customer)  # asked for last
    db.commit()
    drain(senders.broker)
    order = [int(email.custom_args[MESSAGE_ID_ARG]) for email in senders.email.sent]
    assert len(order) == 31
    # One worker thread: at most the few confirmations it had already fetched go first (on one
    # queue it would be the 31st).
    assert order.index(link.id) < 5


def test_an_urgent_send_is_leased_for_a_minute_not_sending_lease(db, senders, customer, settings):
    """A worker that dies holding a sign-in link lets another send it after a minute or so."""
    leases = []

    def spy(email):
        db.expire_all()
        leases.append(db.get(Message, int(email.custom_args[MESSAGE_ID_ARG])).lease_until)
        return SendResult("spy", "spy-1")

    senders.email.send_email = spy
    now = datetime(2030, 1, 7, 15, 0, tzinfo=timezone.utc)
    booking = make_booking(db, customer, starts_at=now + timedelta(days=3))
    with time_machine.travel(now, tick=False):
        link = _signin_link(db, customer)
        (confirmation,) = queue_notice(db, kind="booking_confirmation", customer=customer, booking=booking,
                                       key=f"booking:{booking.id}:v1", channels=["email"])
        db.commit()
        assert messaging.deliver(link.id) == messaging.deliver(confirmation.id) == "sent"
    assert [lease.replace(tzinfo=timezone.utc) - now for lease in leases] == [
        timedelta(seconds=messaging.URGENT_LEASE_S), timedelta(seconds=settings.sending_lease_s)]

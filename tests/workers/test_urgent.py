"""Urgent kinds (sign-in links) have a queue of their own that workers serve first: a customer
waiting for a link is not queued behind a morning's reminders."""

import dramatiq
import pytest

from messages.providers.base import MESSAGE_ID_ARG
from portal.outbox import queue_notice
from tests.factories import make_booking, make_business, make_customer
from tests.messages.support import drain


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

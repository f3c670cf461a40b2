from sqlalchemy import func, select

from portal.db import system_session
from portal.models import Customer, Message, MessageEvent
from portal.outbox import queue_notice
from tests.factories import make_booking, make_business, make_customer
from tests.messages.support import consent_sms


def queued_jobs(broker) -> list[int]:
    from dramatiq.message import Message as Job

    return [Job.decode(raw).args[0] for raw in list(broker.queues["messages"].queue)]


def test_enqueued_only_after_commit(db, stub_broker):
    customer = make_customer(db, make_business(db))
    booking = make_booking(db, customer)
    (message,) = queue_notice(db, kind="booking_confirmation", customer=customer, booking=booking,
                              key=f"booking:{booking.id}:v1")
    assert message.status == "queued" and message.booking_version == 1
    assert queued_jobs(stub_broker) == []
    db.commit()
    assert queued_jobs(stub_broker) == [message.id]


def test_nothing_enqueued_on_rollback(session_factory, db, stub_broker):
    customer_id = make_customer(db, make_business(db)).id
    db.commit()
    with system_session(session_factory) as session:
        customer = session.get(Customer, customer_id)
        queue_notice(session, kind="booking_confirmation", customer=customer, key="booking:1:v1",
                     booking=make_booking(session, customer))
        session.rollback()
    assert queued_jobs(stub_broker) == []
    assert db.scalar(select(func.count()).select_from(Message).where(Message.customer_id == customer_id)) == 0


def test_repeated_notice_is_one_row_and_one_job(db, stub_broker):
    customer = make_customer(db, make_business(db))
    consent_sms(db, customer)
    booking = make_booking(db, customer)
    first = queue_notice(db, kind="booking_confirmation", customer=customer, booking=booking, key="booking:x:v1")
    db.commit()
    again = queue_notice(db, kind="booking_confirmation", customer=customer, booking=booking, key="booking:x:v1")
    db.commit()
    assert [m.channel for m in first] == ["email", "sms"]
    assert [m.id for m in again] == [m.id for m in first]
    assert sorted(queued_jobs(stub_broker)) == sorted(m.id for m in first)
    assert db.scalar(select(func.count()).select_from(Message).where(Message.customer_id == customer.id)) == 2


def test_no_channel_writes_one_skipped_row_with_reasons(db, stub_broker):
    customer = make_customer(db, make_business(db), email=None)
    (message,) = queue_notice(db, kind="appointment_reminder", customer=customer, key="reminder:9")
    db.commit()
    assert message.status == "skipped"
    assert message.status_reason == "email: no email address; sms: no SMS consent on record"
    events = db.scalars(select(MessageEvent).where(MessageEvent.message_id == message.id)).all()
    assert [(e.status, e.detail) for e in events] == [("skipped", message.status_reason)]
    assert queued_jobs(stub_broker) == []
    # Asking again changes nothing.
    (again,) = queue_notice(db, kind="appointment_reminder", customer=customer, key="reminder:9")
    assert again.id == message.id


def test_explicit_channels_are_used_as_given(db, stub_broker):
    customer = make_customer(db, make_business(db))
    (message,) = queue_notice(db, kind="signin_link", customer=customer, key="signin:r1", channels=["sms"])
    assert message.channel == "sms" and message.recipient == customer.phone

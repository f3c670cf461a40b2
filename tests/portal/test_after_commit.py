"""Enqueue after commit: the real commit, not a SAVEPOINT release."""

from sqlalchemy import text

from portal.db import after_commit, system_session
from portal.outbox import queue_notice
from tests.factories import make_business, make_customer


def test_savepoint_release_does_not_run_callbacks(session_factory):
    ran = []
    with system_session(session_factory) as session:
        after_commit(session, lambda: ran.append("first"))
        with session.begin_nested():
            pass  # releasing a savepoint is not the commit
        assert ran == []
        try:
            with session.begin_nested():
                raise ValueError
        except ValueError:
            pass
        after_commit(session, lambda: ran.append("second"))
        session.commit()
    assert ran == ["first", "second"]


def test_rollback_drops_callbacks(session_factory):
    ran = []
    with system_session(session_factory) as session:
        session.execute(text("SELECT 1"))  # callbacks are registered inside a transaction
        after_commit(session, lambda: ran.append("x"))
        session.rollback()
        session.commit()
    assert ran == []


def test_several_notices_in_one_transaction_are_enqueued_only_at_commit(db, stub_broker):
    business = make_business(db)
    customers = [make_customer(db, business) for _ in range(3)]
    for i, customer in enumerate(customers):
        queue_notice(db, kind="invitation", customer=customer, key=f"t{i}", channels=["email"])
        assert stub_broker.queues.get("messages") is None or stub_broker.queues["messages"].qsize() == 0
    db.commit()
    assert stub_broker.queues["messages"].qsize() == 3

"""Scheduler test helpers: a frozen clock at a fixed Monday noon (UTC) and the stub broker's queue."""

from __future__ import annotations

from datetime import datetime, timezone

import dramatiq
import pytest

T0 = datetime(2030, 3, 4, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock(time_machine):
    """The clock, frozen at T0; move it with ``clock.move_to(when)``."""
    time_machine.move_to(T0, tick=False)
    return time_machine


def queued_message_ids(broker, queue: str = "messages") -> list[int]:
    """Outbox message ids waiting in the stub broker's queue (and its delay queue)."""
    ids = []
    for name in (queue, dramatiq.common.dq_name(queue)):
        q = broker.queues.get(name)
        if q is not None:
            ids += [dramatiq.Message.decode(raw).args[0] for raw in list(q.queue)]
    return ids

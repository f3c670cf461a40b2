"""The baseline for the notifications benchmark: a no-op actor on the very same
broker (``workers`` installs it: namespace, heartbeat, middleware) and run by
the same ``dramatiq`` command with the same processes and threads as
``portal worker``. Its only work is one Redis INCR, so the benchmark can count
it."""

import dramatiq

from workers import broker  # noqa: F401  (the production broker and actors)

QUEUE = "bench_noop"
COUNTER = "bench:noop:done"


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(i: int) -> None:
    dramatiq.get_broker().client.incr(COUNTER)

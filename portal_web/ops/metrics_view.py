"""``/metrics`` for Prometheus: the web process's counters plus gauges read at scrape time.

Counters incremented in worker processes cannot be seen from here, so
messages by status and channel come from the database at scrape time, and
queue depths from Redis. Open to ``Authorization: Bearer <OPS_TOKEN>``, and to
direct loopback requests (a scraper on the same host); a request relayed by a
proxy (it carries forwarding headers) needs the token.
"""

from __future__ import annotations

import logging
import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from portal import queues
from portal_web.db import in_system
from portal_web.keys import REDIS, SETTINGS
from portal_web.ops import stats
from portal_web.ops.auth import bearer, token_ok

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1")
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def allowed(request: web.Request) -> bool:
    given = bearer(request)
    if given is not None:
        return token_ok(request.app[SETTINGS].ops_token, given)
    return request.remote in LOOPBACK and not any(h in request.headers for h in FORWARDING_HEADERS)


class Snapshot(Collector):
    """Gauges computed for this scrape only."""

    def __init__(self, counts: list | None, queue_rows: list | None):
        self.counts, self.queue_rows = counts, queue_rows

    def collect(self):
        if self.counts is not None:
            family = GaugeMetricFamily("portal_messages_current",
                                       "Messages in the database by current status and channel",
                                       labels=["status", "channel"])
            for status, channel, count in self.counts:
                family.add_metric([status, channel], count)
            yield family
        if self.queue_rows is not None:
            family = GaugeMetricFamily("portal_queue_messages", "Dramatiq messages per queue and state",
                                       labels=["queue", "state"])
            for row in self.queue_rows:
                for state in ("ready", "delayed", "in_flight", "dead"):
                    family.add_metric([row["queue"], state], row[state])
            yield family


def process_registry():
    """The default registry, or the multiprocess files when several web processes share them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


async def metrics(request: web.Request) -> web.Response:
    if not allowed(request):
        return web.Response(status=401, text="Bearer OPS_TOKEN required\n",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    counts = queue_rows = None
    # A scrape still reports what it can; an outage is one line per scrape, not a traceback.
    try:
        counts = await in_system(request.app, stats.message_counts)
    except OperationalError as exc:
        log.warning("metrics: database unreachable, no message counts (%s)", str(exc.orig).splitlines()[0])
    except Exception:
        log.warning("metrics: could not count messages", exc_info=True)
    try:
        queue_rows = (await queues.queue_stats(request.app[REDIS], queues.known_queues()))["queues"]
    except RedisError as exc:
        log.warning("metrics: Redis unreachable, no queue depths (%s)", exc)
    snapshot = CollectorRegistry(auto_describe=True)
    snapshot.register(Snapshot(counts, queue_rows))
    body = generate_latest(process_registry()) + generate_latest(snapshot)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})

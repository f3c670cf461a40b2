"""Live updates for open portal pages: Server-Sent Events fed by Redis pub/sub.

    GET /{slug}/events      (signed-in customer; Accept: text/event-stream)

Domain code publishes with ``portal.events.emit`` after its transaction
commits, on the channel ``portal.events.channel(business_id, customer_id)``;
each message ``{"type": T, "data": {...}}`` is forwarded as an SSE event named
T. Types in use: ``booking_updated``, ``message_status``, ``invoice_updated``,
``quote_updated``, ``preferences``, ``profile_updated``.

A comment line is sent every ``HEARTBEAT_S`` so proxies keep the connection
open and a vanished client is noticed (the write fails) and unsubscribed.
A stream ends after ``MAX_STREAM_S``; the browser's EventSource reconnects
on its own, which re-checks the session (a signed-out customer gets 401).
Each event is forwarded only while the session is still live: signed out in
another tab (or timed out), the stream ends instead.
Streams still open at shutdown are closed so the server stops promptly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref

from aiohttp import web

from portal.events import channel
from portal_web.db import in_system
from portal_web.keys import BUSINESS, PORTAL_SESSION, REDIS, SETTINGS
from portal_web.sessions import require_customer, still_live

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
MAX_STREAM_S = 300.0
RETRY_MS = 2000
STREAMS = web.AppKey("live_streams", weakref.WeakSet)
TIMING = web.AppKey("live_timing", dict)


def sse(event: str | None, data: str) -> bytes:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


async def stream(request: web.Request) -> web.StreamResponse:
    customer = await require_customer(request)
    business = request[BUSINESS]
    session_id, settings = request[PORTAL_SESSION].id, request.app[SETTINGS]
    timing = request.app.get(TIMING) or {}
    heartbeat = timing.get("heartbeat", HEARTBEAT_S)
    max_stream = timing.get("max_stream", MAX_STREAM_S)
    headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        # Headers only: a StreamResponse would write its events into the HEAD reply.
        return web.Response(headers=headers)

    pubsub = request.app[REDIS].pubsub()
    await pubsub.subscribe(channel(business.id, customer.id))
    resp = web.StreamResponse(headers=headers)
    task = asyncio.current_task()
    if task is not None:
        request.app[STREAMS].add(task)
    try:
        await resp.prepare(request)
        await resp.write(f"retry: {RETRY_MS}\n: connected\n\n".encode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_stream
        while loop.time() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True,
                                               timeout=min(heartbeat, max(deadline - loop.time(), 0.01)))
            if message is None:
                await resp.write(b": heartbeat\n\n")
                continue
            try:
                doc = json.loads(message["data"])
                event, data = str(doc["type"]), json.dumps(doc.get("data") or {})
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed live event on %s", message.get("channel"))
                continue
            if not await in_system(request.app, lambda db: still_live(db, session_id, settings)):
                break  # signed out meanwhile: nothing more for this page
            await resp.write(sse(event, data))
    except ConnectionResetError:
        pass  # the browser went away
    finally:  # also on cancellation (server shutdown)
        try:
            await pubsub.unsubscribe()
            await pubsub.aclose()
        except Exception:  # the Redis connection may already be gone
            log.debug("closing a live pubsub failed", exc_info=True)
    return resp


async def _close_streams(app: web.Application) -> None:
    for task in list(app[STREAMS]):
        task.cancel()


def setup(app: web.Application) -> None:
    from portal_web.views.selfservice.common import SLUG

    app[STREAMS] = weakref.WeakSet()
    app.on_shutdown.append(_close_streams)
    app.router.add_get(f"/{SLUG}/events", stream, name="live_events")

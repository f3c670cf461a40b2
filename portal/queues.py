"""Reading and repairing Dramatiq's Redis queues, for the operator dashboard.

Key layout of Dramatiq 2.2's Redis broker (``dramatiq/brokers/redis/dispatch.lua``),
under our namespace ``portal``:

    portal:{q}                  list of ready message ids
    portal:{q}.msgs             hash id -> body, for ready and fetched-but-unacked messages
    portal:{q}.DQ(.msgs)        the delay queue (retry backoff, quiet hours), same shape
    portal:{q}.XQ               zset of dead-lettered ids, scored by when (ms)
    portal:{q}.XQ.msgs          hash id -> body
    portal:__acks__.{w}.{q}     set of ids fetched by broker process w, not yet acked
    portal:__heartbeats__       zset broker id -> time of its last command (ms)
    portal:__workers__          hash broker id -> "host:pid", ours: set by worker processes (WorkerRegistry)

Ids here are the broker's ``redis_message_id`` (unique per enqueue), not the
Dramatiq message id. Everything goes through plain Redis commands, never the
broker's dispatch script: reading the dashboard must not register the web
process as a worker in the heartbeats.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name
from dramatiq.errors import DecodeError
from dramatiq.message import Message as DramatiqMessage
from dramatiq.middleware import Middleware

from portal.broker import HEARTBEAT_TIMEOUT_MS, NAMESPACE

MAX_WORKERS_LISTED = 100
ERROR_CHARS = 500
# Options that belong to the failed attempt, not to a fresh one.
ATTEMPT_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta", "error", "failed_at", "redis_message_id")
WORKERS = "__workers__"  # see WorkerRegistry


def _key(*parts: str, namespace: str = NAMESPACE) -> str:
    return f"{namespace}:{''.join(parts)}"


def known_queues() -> list[str]:
    """The queues our actors are declared on (the web app imports the same actors)."""
    import workers  # noqa: F401  (declares the actors on the global broker)

    return sorted({q_name(q) for q in dramatiq.get_broker().get_declared_queues()})


def _now_ms() -> int:
    return int(time.time() * 1000)


async def queue_stats(r, queues: list[str], *, namespace: str = NAMESPACE, now_ms: int | None = None) -> dict:
    """Counts per queue, and the worker processes seen in the heartbeats."""
    now_ms = now_ms or _now_ms()
    beats = await r.zrevrange(_key("__heartbeats__", namespace=namespace), 0, -1, withscores=True)
    # Every process that enqueues (web, scheduler, scripts) beats too: list only those that booted as workers.
    names = await r.hmget(_key(WORKERS, namespace=namespace), [w for w, _ in beats]) if beats else []
    workers = [(w.decode() if isinstance(w, bytes) else w, int(score), name.decode())
               for (w, score), name in zip(beats, names) if name is not None][:MAX_WORKERS_LISTED]
    pipe = r.pipeline(transaction=False)
    for q in queues:
        pipe.llen(_key(q, namespace=namespace))
        pipe.hlen(_key(q, ".msgs", namespace=namespace))
        pipe.hlen(_key(q, ".DQ.msgs", namespace=namespace))
        pipe.zcard(_key(q, ".XQ", namespace=namespace))
    for w, _, _ in workers:
        for q in queues:
            # Not its .DQ acks: delayed messages a worker holds until their time count as delayed.
            pipe.scard(_key("__acks__.", w, ".", q, namespace=namespace))
    values = iter(await pipe.execute())
    rows = []
    for q in queues:
        ready, bodies, delayed, dead = next(values), next(values), next(values), next(values)
        # Bodies stay in .msgs until acked: what is not in the ready list is in flight.
        rows.append({"queue": q, "ready": ready, "delayed": delayed, "in_flight": max(bodies - ready, 0),
                     "dead": dead})
    worker_rows = []
    for w, beat, name in workers:
        held = sum(next(values) for _ in queues)
        age_s = max(now_ms - beat, 0) / 1000
        worker_rows.append({"id": w, "name": name, "last_beat_s": round(age_s, 1),
                            "alive": age_s * 1000 < HEARTBEAT_TIMEOUT_MS, "in_flight": held})
    return {"queues": rows, "workers": worker_rows}


@dataclass
class DeadLetter:
    id: str
    queue: str
    failed_at: datetime
    actor: str = "?"
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    message_id: str = ""
    retries: int = 0
    error: str = ""
    traceback: str = ""

    def as_json(self) -> dict:
        return {"id": self.id, "queue": self.queue, "failed_at": self.failed_at.isoformat(), "actor": self.actor,
                "args": self.args, "kwargs": self.kwargs, "message_id": self.message_id, "retries": self.retries,
                "error": self.error, "traceback": self.traceback}


def error_summary(options: dict) -> str:
    if options.get("error"):
        return str(options["error"])[:ERROR_CHARS]
    lines = [line for line in str(options.get("traceback") or "").splitlines() if line.strip()]
    return lines[-1][:ERROR_CHARS] if lines else ""


def _dead_letter(queue: str, rid: str, score: float, body: bytes | None) -> DeadLetter:
    letter = DeadLetter(id=rid, queue=queue, failed_at=datetime.fromtimestamp(score / 1000, timezone.utc))
    if body is None:
        letter.error = "(message body expired)"
        return letter
    try:
        message = DramatiqMessage.decode(body)
    except DecodeError:
        letter.error = "(undecodable message body)"
        return letter
    options = message.options
    letter.actor, letter.args, letter.kwargs = message.actor_name, list(message.args), dict(message.kwargs)
    letter.message_id = message.message_id
    letter.retries = int(options.get("retries") or 0)
    letter.error = error_summary(options)
    letter.traceback = str(options.get("traceback") or "")
    return letter


async def dead_letters(r, queue: str, *, limit: int = 100, namespace: str = NAMESPACE) -> list[DeadLetter]:
    """The most recent dead letters of a queue, newest first."""
    entries = await r.zrevrange(_key(queue, ".XQ", namespace=namespace), 0, limit - 1, withscores=True)
    if not entries:
        return []
    ids = [rid.decode() if isinstance(rid, bytes) else rid for rid, _ in entries]
    bodies = await r.hmget(_key(queue, ".XQ.msgs", namespace=namespace), ids)
    return [_dead_letter(queue, rid, score, body) for rid, (_, score), body in zip(ids, entries, bodies)]


async def get_dead_letter(r, queue: str, rid: str, *, namespace: str = NAMESPACE) -> DeadLetter | None:
    score = await r.zscore(_key(queue, ".XQ", namespace=namespace), rid)
    if score is None:
        return None
    body = await r.hget(_key(queue, ".XQ.msgs", namespace=namespace), rid)
    return _dead_letter(queue, rid, score, body)


# Moves one dead letter back onto its queue, exactly like the broker's enqueue,
# only if it is still dead-lettered: two operators clicking retry enqueue it once.
_RETRY = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("hset", KEYS[4], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[3], ARGV[2])
return 1
"""

_DISCARD = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call("hdel", KEYS[2], ARGV[1])
return 1
"""


def fresh_copy(body: bytes) -> tuple[str, bytes]:
    """A new enqueue of a dead-lettered message: a new broker id, a clean retry count."""
    message = DramatiqMessage.decode(body)
    options = {k: v for k, v in message.options.items() if k not in ATTEMPT_OPTIONS}
    rid = str(uuid.uuid4())
    options["redis_message_id"] = rid
    fresh = DramatiqMessage(queue_name=q_name(message.queue_name), actor_name=message.actor_name,
                            args=message.args, kwargs=message.kwargs, options=options,
                            message_id=message.message_id)
    return rid, fresh.encode()


async def retry_dead_letter(r, queue: str, rid: str, *, namespace: str = NAMESPACE) -> str | None:
    """Re-enqueue a dead letter on its queue; returns the new broker id, or None if it is gone."""
    body = await r.hget(_key(queue, ".XQ.msgs", namespace=namespace), rid)
    if body is None:
        return None
    new_rid, new_body = fresh_copy(body)
    keys = [_key(queue, ".XQ", namespace=namespace), _key(queue, ".XQ.msgs", namespace=namespace),
            _key(queue, namespace=namespace), _key(queue, ".msgs", namespace=namespace)]
    done = await r.eval(_RETRY, len(keys), *keys, rid, new_rid, new_body)
    return new_rid if done else None


async def discard_dead_letter(r, queue: str, rid: str, *, namespace: str = NAMESPACE) -> bool:
    keys = [_key(queue, ".XQ", namespace=namespace), _key(queue, ".XQ.msgs", namespace=namespace)]
    return bool(await r.eval(_DISCARD, len(keys), *keys, rid))


_RECORD = """
if redis.call("hexists", KEYS[1], ARGV[1]) == 1 then redis.call("hset", KEYS[1], ARGV[1], ARGV[2]) end
"""


class DeadLetterErrors(Middleware):
    """Keep the error with a dead letter.

    The broker's nack moves the body as it was *enqueued* onto the dead-letter
    queue, so without this a message that failed on its first attempt would
    carry no trace of why. After the nack we overwrite that body with the
    failed attempt's (the Retries middleware put the traceback in its options).
    """

    def after_nack(self, broker, message) -> None:
        if not isinstance(broker, RedisBroker):
            return
        rid = message.options.get("redis_message_id")
        if not rid:
            return
        exc = getattr(message, "_exception", None)
        options = message.options
        if exc is not None:
            options["error"] = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
            if not options.get("traceback"):
                options["traceback"] = "".join(traceback.format_exception(exc, limit=30))
        options["failed_at"] = _now_ms()
        body = DramatiqMessage(**{**message.asdict(), "options": options}).encode()
        key = f"{broker.namespace}:{q_name(message.queue_name)}.XQ.msgs"
        broker.client.eval(_RECORD, 1, key, rid, body)


class WorkerRegistry(Middleware):
    """Name each worker process's broker id (host:pid), so the dashboard lists workers, not every enqueuer.

    Dramatiq's heartbeats also record the web app and the scheduler whenever
    they enqueue; only the processes that booted a worker register here.
    """

    def after_worker_boot(self, broker, worker) -> None:
        if isinstance(broker, RedisBroker):
            name = f"{socket.gethostname()}:{os.getpid()}"
            broker.client.hset(f"{broker.namespace}:{WORKERS}", broker.broker_id, name)

    def after_worker_shutdown(self, broker, worker) -> None:
        if isinstance(broker, RedisBroker):
            broker.client.hdel(f"{broker.namespace}:{WORKERS}", broker.broker_id)

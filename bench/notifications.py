"""Notifications end to end: N booking events -> N emails accepted by a fake
SendGrid that answers after 100 ms, through PostgreSQL, the real Redis broker
and ``portal worker`` with the production settings. Baseline, same run: a
no-op actor on the same broker, same ``dramatiq`` command, same processes and
threads."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from dramatiq import Message

from bench import datagen, env as benv, pipeline
from bench.cpu import CpuMeter, Own
from bench.provider_client import FakeProvider
from bench.report import ratio

# Not bench.noop_actors: importing it installs a broker in this process.
QUEUE, COUNTER = "bench_noop", "bench:noop:done"


def sender(env: benv.BenchEnv):
    """A broker client for the bench Redis with the production namespace and
    middleware, used to enqueue the no-op messages (whatever broker this
    process has installed globally)."""
    from dramatiq.brokers.redis import RedisBroker

    from portal import broker

    client = RedisBroker(url=env.redis_url, namespace=broker.NAMESPACE, middleware=broker.middleware())

    def send(i: int) -> None:
        client.enqueue(Message(queue_name=QUEUE, actor_name="noop", args=(i,), kwargs={}, options={}))

    return send


def baseline(env: benv.BenchEnv, n: int, processes: int, threads: int) -> dict:
    counter = pipeline.noop_counter(env)
    send = sender(env)
    worker = pipeline.start_noop_worker(env, processes, threads)
    try:
        warm = 2 * processes * threads
        counter.delete(COUNTER)
        for i in range(warm):
            send(i)
        if not pipeline.wait_counter(counter, COUNTER, warm, 60, worker):
            raise RuntimeError(f"the no-op worker did not start:\n{worker.tail()}")
        counter.delete(COUNTER)
        start = time.perf_counter()
        for i in range(n):
            send(i)
        enqueue_s = time.perf_counter() - start
        finished = pipeline.wait_counter(counter, COUNTER, n, max(60.0, n / 50), worker)
        elapsed = time.perf_counter() - start
    finally:
        worker.stop()
    done = int(counter.get(COUNTER) or 0)
    return {"n": n, "processed": done, "finished": finished, "enqueue_s": round(enqueue_s, 3),
            "elapsed_s": round(elapsed, 3), "per_s": round(done / elapsed, 1)}


def pipeline_run(env: benv.BenchEnv, n: int, processes: int, threads: int, delay_ms: int = 100,
                 producers: int = 16) -> dict:
    """Two phases on one dataset:

    1. end to end: the producer writes N events while the workers send them;
    2. backlog: with the workers stopped, the producer writes N more events on
       its own (its uncontended rate), then fresh workers drain the backlog
       (their rate alone, first to last ``sent_at``).
    Phase 1 is the headline; phase 2 says which side limits it.
    """
    benv.wipe(env)
    warm = min(50, max(1, n // 10))
    biz = datagen.business(env.engine, "bench-notify")
    customers = datagen.customers(env.engine, biz, 2 * n + warm)
    first, last = datagen.bookings(env.engine, biz, 2 * n + warm, customers)
    datagen.analyze(env.engine)
    fake = FakeProvider(delay_ms)
    worker = pipeline.start_portal_worker(env, processes, threads, fake.provider_env())
    try:
        # Warm up: every process imported, pools connected, templates compiled.
        pipeline.produce_confirmations(env, biz, (first, first + warm - 1))
        counts, _, ok = pipeline.wait_messages(env, biz, warm, 120, worker=worker)
        if not ok:
            raise RuntimeError(f"warm-up messages not delivered ({counts}):\n{worker.tail()}")
        watermark = pipeline.max_message_id(env)
        fake.reset()
        meter = CpuMeter({"worker": worker.pid, "producer": Own(os.getpid()), "provider": fake.proc.pid,
                          "postgres": "postgres", "redis": "redis-server"})
        started_at = datetime.now(timezone.utc)
        start = time.perf_counter()
        produce_s = pipeline.produce_confirmations(env, biz, (first + warm, first + warm + n - 1), producers)
        counts, _, finished = pipeline.wait_messages(env, biz, n, max(120.0, n / 20), watermark, worker)
        elapsed = time.perf_counter() - start
        last_sent = pipeline.last_sent_at(env, biz, watermark)
        if finished and last_sent:  # the worker's own clock, not our polling interval
            elapsed = max(0.001, min(elapsed, (last_sent - started_at).total_seconds()))
        received = fake.stats()
        cpu = meter.per_item_ms(n)
        worker.stop()

        # Phase 2: a backlog written by the producer alone, drained by the workers alone.
        backlog_mark = pipeline.max_message_id(env)
        alone_s = pipeline.produce_confirmations(env, biz, (first + warm + n, last), producers)
        worker = pipeline.start_portal_worker(env, processes, threads, fake.provider_env(), name="worker-drain")
        drain_counts, _, drained = pipeline.wait_messages(env, biz, n, max(120.0, n / 20), backlog_mark, worker)
        drain_s = pipeline.sent_span_s(env, biz, backlog_mark)
        drain_received = fake.stats()
    finally:
        worker.stop()
        fake.stop()
    sent = counts.get("sent", 0) + counts.get("delivered", 0)
    drain_sent = drain_counts.get("sent", 0) + drain_counts.get("delivered", 0)
    return {
        "n": n, "finished": finished, "statuses": counts, "sent_rows": sent,
        "provider_received": received["accepted"], "provider_unique": received["unique"],
        "provider_duplicated": received["duplicated"], "produce_s": round(produce_s, 3),
        "produce_per_s": round(n / produce_s, 1) if produce_s else None,
        "elapsed_s": round(elapsed, 3), "per_s": round(min(sent, received["unique"]) / elapsed, 1),
        "cpu_ms_per_message": cpu,
        "producer_alone_per_s": round(n / alone_s, 1) if alone_s else None,
        "drain": {"finished": drained, "statuses": drain_counts, "span_s": drain_s and round(drain_s, 3),
                  "per_s": round(drain_sent / drain_s, 1) if drain_s else None,
                  "provider_duplicated": drain_received["duplicated"]},
    }


def run(env: benv.BenchEnv, n: int, processes: int | None = None, threads: int | None = None,
        delay_ms: int = 100, producers: int = 16) -> dict:
    default_p, default_t = pipeline.worker_defaults(env)
    processes = processes or default_p
    threads = threads or default_t
    base = baseline(env, n, processes, threads)
    real = pipeline_run(env, n, processes, threads, delay_ms, producers)
    return {
        "per_s": real["per_s"], "baseline_per_s": base["per_s"], "ratio": ratio(real["per_s"], base["per_s"]),
        "n": n, "worker_processes": processes, "worker_threads": threads, "provider_delay_ms": delay_ms,
        "producer_threads": producers,
        "pipeline": real, "baseline": base,
    }


def rows(result: dict) -> list[tuple[str, object]]:
    real, base = result["pipeline"], result["baseline"]
    return [
        ("messages (N)", result["n"]),
        ("worker processes x threads", f"{result['worker_processes']} x {result['worker_threads']}"),
        ("provider answers after", f"{result['provider_delay_ms']} ms"),
        ("producer threads (events in flight)", result["producer_threads"]),
        ("end to end, msg/s", result["per_s"]),
        ("no-op baseline, msg/s", result["baseline_per_s"]),
        ("ratio (target >= 0.5)", result["ratio"]),
        ("producer while sending, events/s", real["produce_per_s"]),
        ("producer alone, events/s", real["producer_alone_per_s"]),
        ("workers alone (backlog), msg/s", real["drain"]["per_s"]),
        ("CPU ms per message, end to end", _cpu(real["cpu_ms_per_message"])),
        ("rows sent / provider unique", f"{real['sent_rows']} / {real['provider_unique']}"),
        ("provider duplicates", real["provider_duplicated"] + real["drain"]["provider_duplicated"]),
        ("finished (not timed out)", f"{real['finished']} / baseline {base['finished']}"),
    ]


def _cpu(parts: dict[str, float]) -> str:
    """"7.1 = worker 4.2 + postgres 1.3 + ..." (biggest first)."""
    named = sorted(((v, k) for k, v in parts.items() if k != "total"), reverse=True)
    return f"{parts['total']} = " + " + ".join(f"{k} {v}" for v, k in named)

"""Bulk invitations: N customers; the time ``portal invite SLUG --all`` takes
to queue them (issue 6's CLI) and the time until every invitation has been
accepted by the fake provider (100 ms answers) through ``portal worker`` with
the production settings.

``portal invite`` throttles itself to INVITE_RATE_PER_S (5/s by default, to
stay inside provider rate limits): at that rate 100k invitations take 5.6 h by
design. The benchmark passes ``--rate`` (BENCH_INVITE_RATE, 2,000/s) to
measure what the system itself can do."""

from __future__ import annotations

import subprocess
import time

from sqlalchemy import text

from bench import datagen, env as benv, pipeline, procs
from bench.provider_client import FakeProvider

SLUG = "bench-invite"


def invitation_counts(env: benv.BenchEnv, business_id: int) -> dict[str, int]:
    with env.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM message WHERE business_id = :b "
                                 "AND kind = 'invitation' GROUP BY status"), {"b": business_id}).all()
    return dict(rows)


def run(env: benv.BenchEnv, n: int, processes: int | None, threads: int | None, delay_ms: int = 100,
        rate: int = 2000) -> dict:
    default_p, default_t = pipeline.worker_defaults(env)
    processes, threads = processes or default_p, threads or default_t
    benv.wipe(env)
    biz = datagen.business(env.engine, SLUG)
    datagen.timed(f"{n:,} customers", datagen.customers, env.engine, biz, n)
    datagen.analyze(env.engine)
    fake = FakeProvider(delay_ms)
    worker = pipeline.start_portal_worker(env, processes, threads, fake.provider_env())
    try:
        time.sleep(3)  # let the worker processes boot: their start-up is not the CLI's cost
        start = time.perf_counter()
        cli = subprocess.run([str(procs.BIN / "portal"), "invite", SLUG, "--all", "--rate", str(rate)], cwd=procs.ROOT,
                             env=env.process_env(**fake.provider_env()), capture_output=True, text=True,
                             timeout=max(600, n / 50))
        queue_s = time.perf_counter() - start
        if cli.returncode != 0:
            raise RuntimeError(f"portal invite {SLUG} --all exited {cli.returncode}: "
                               f"{(cli.stderr or cli.stdout).strip()[-1500:]}")
        deadline = start + max(300.0, n / 20)
        counts: dict[str, int] = {}
        finished = False
        while time.perf_counter() < deadline:
            counts = invitation_counts(env, biz)
            if sum(counts.get(s, 0) for s in pipeline.TERMINAL) >= n:
                finished = True
                break
            if not worker.alive():
                raise RuntimeError(f"worker died:\n{worker.tail()}")
            time.sleep(0.5)
        deliver_s = time.perf_counter() - start
        received = fake.stats()
    finally:
        worker.stop()
        fake.stop()
    sent = counts.get("sent", 0) + counts.get("delivered", 0)
    return {
        "count": n, "queue_s": round(queue_s, 2), "deliver_s": round(deliver_s, 2), "finished": finished,
        "statuses": counts, "sent_rows": sent, "provider_unique": received["unique"],
        "provider_duplicated": received["duplicated"], "per_s": round(sent / deliver_s, 1) if deliver_s else None,
        "worker_processes": processes, "worker_threads": threads, "invite_rate_per_s": rate,
        "cli_output": cli.stdout.strip()[-300:],
    }


def rows(result: dict) -> list[tuple[str, object]]:
    return [
        ("customers invited", result["count"]),
        ("portal invite --rate", f"{result['invite_rate_per_s']}/s (production default INVITE_RATE_PER_S=5)"),
        ("portal invite --all, s", result["queue_s"]),
        ("until all delivered, s", result["deliver_s"]),
        ("delivered per second", result["per_s"]),
        ("rows sent / provider unique", f"{result['sent_rows']} / {result['provider_unique']}"),
        ("provider duplicates", result["provider_duplicated"]),
        ("finished (not timed out)", result["finished"]),
    ]

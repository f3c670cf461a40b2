"""``make drills``: python -m bench.drills [kill_worker redis_loss provider_errors postgres_restart] [--quick]

Prints sent / duplicated / lost per drill and writes bench/results/drills.json.
Uses the bench PostgreSQL database (BENCH_DATABASE_URL), a private redis-server
and, for the restart drill, a private PostgreSQL cluster: the shared Redis and
PostgreSQL are never restarted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DRILLS = ("kill_worker", "redis_loss", "provider_errors", "postgres_restart")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drills", description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", metavar="DRILL", help=f"run only these ({', '.join(DRILLS)})")
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    parser.add_argument("--messages", type=int, help="messages per drill (BENCH_DRILL_MESSAGES)")
    parser.add_argument("--results", type=Path, help="directory for drills.json (default bench/results)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("BENCH_DRILL_TIMEOUT", 240)),
                        help="seconds to wait for recovery per drill")
    args = parser.parse_args(argv)
    unknown = [d for d in args.only if d not in DRILLS]
    if unknown:
        parser.error(f"unknown drill {unknown[0]!r}; choose from {', '.join(DRILLS)}")
    n = args.messages or int(os.environ.get("BENCH_DRILL_MESSAGES") or (40 if args.quick else 200))

    from bench import env as benv
    from bench.drills.private_redis import PrivateRedis

    redis_server = None
    try:
        redis_server = PrivateRedis().start()
        env = benv.prepare(benv.database_url(), redis_server.url)
    except (benv.BenchSetupError, RuntimeError) as exc:
        if redis_server is not None:
            redis_server.destroy()
        benv.fail(exc)
    # Every drill's broker is this private Redis; this process enqueues onto it.
    os.environ["REDIS_URL"] = redis_server.url
    os.environ.pop("PORTAL_BROKER", None)
    from bench import report
    from bench.drills import scenarios
    from portal import redis_client

    redis_client.configure(redis_server.url)
    results: dict = {}
    failed = []
    print(f"drills: database {env.database_url}, private redis {redis_server.url}, {n} messages each, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}\n", flush=True)
    try:
        for name in args.only or DRILLS:
            benv.wipe(env, restart_identity=False)  # message ids stay unique across drills
            started = time.perf_counter()
            try:
                if name == "kill_worker":
                    result = scenarios.kill_worker(env.database_url, redis_server.url, n, args.timeout)
                elif name == "redis_loss":
                    result = scenarios.redis_loss(env.database_url, redis_server.url, n, args.timeout, redis_server)
                elif name == "provider_errors":
                    result = scenarios.provider_errors(env.database_url, redis_server.url, n, args.timeout)
                else:
                    result = scenarios.postgres_restart(redis_server.url, n, args.timeout)
            except Exception as exc:  # noqa: BLE001  report it, go on with the next drill
                failed.append(name)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"{name}: FAILED: {type(exc).__name__}: {exc}\n", flush=True)
                continue
            result["wall_s"] = round(time.perf_counter() - started, 1)
            result["quick"] = args.quick
            results[name] = result
            if result["lost"] or result["duplicated"] or result.get("timed_out"):
                failed.append(name)
            print(report.table(name, rows(result)) + "\n", flush=True)
    finally:
        redis_server.destroy()
    results["machine"] = report.machine()
    path = report.write("drills", results, args.results)
    print(f"results: {path}")
    if failed:
        print(f"drills: not clean: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def rows(result: dict) -> list[tuple[str, object]]:
    keys = ("sent", "duplicated", "lost", "recovered_s", "provider_requests", "provider_rejected", "rejected_by_status",
            "portal_recovered_s", "portal_probe_errors", "at_kill", "at_loss", "statuses", "wall_s")
    return [(k, result[k]) for k in keys if k in result]


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: python -m bench [notifications portal scheduler invitations] [--quick]

Prints a table per benchmark and writes bench/results/latest.json.
PostgreSQL: BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/bench);
Redis: BENCH_REDIS_URL (default redis://127.0.0.1:6379/9). Both are wiped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ALL = ("notifications", "portal", "scheduler", "invitations")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", metavar="BENCHMARK",
                        help=f"run only these ({', '.join(ALL)}); default all")
    parser.add_argument("--quick", action="store_true", help="small sizes: proves the harness, not the speed")
    parser.add_argument("--messages", type=int, help="notifications: N (BENCH_MESSAGES)")
    parser.add_argument("--customers", type=int, help="portal: customers (BENCH_CUSTOMERS)")
    parser.add_argument("--bookings", type=int, help="portal: bookings (BENCH_BOOKINGS)")
    parser.add_argument("--requests", type=int, help="portal: requests per target (BENCH_REQUESTS)")
    parser.add_argument("--duration-s", type=float, help="portal: time limit per target (BENCH_DURATION_S)")
    parser.add_argument("--concurrency", type=int, help="portal: concurrent clients (BENCH_CONCURRENCY)")
    parser.add_argument("--invitations", type=int, help="bulk invitations: customers (BENCH_INVITATIONS)")
    parser.add_argument("--processes", type=int, help="worker processes (default: the production setting)")
    parser.add_argument("--threads", type=str,
                        help="worker threads; a comma list (8,32,64) runs the notifications benchmark once each")
    parser.add_argument("--results", type=Path, help="directory for latest.json (default bench/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in ALL]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(ALL)}")
    from bench import env as benv
    from bench.sizes import resolve

    try:
        sizes = resolve(args.quick, {k: getattr(args, k, None) for k in (
            "messages", "customers", "bookings", "requests", "duration_s", "concurrency", "invitations")})
        env = benv.prepare()
    except (benv.BenchSetupError, ValueError) as exc:
        benv.fail(exc)
    # This process enqueues onto the real broker of the bench Redis.
    os.environ["REDIS_URL"] = env.redis_url
    os.environ.pop("PORTAL_BROKER", None)
    from portal import redis_client

    redis_client.configure(env.redis_url)
    from bench import report
    from bench.autoanalyze import AutoAnalyze

    chosen = args.only or list(ALL)
    results: dict = {}
    failures = []
    threads = [int(t) for t in args.threads.split(",")] if args.threads else [None]
    print(f"bench: database {env.database_url}, redis {env.redis_url}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}{' (quick sizes)' if args.quick else ''}\n",
          flush=True)
    analyzer = AutoAnalyze(env.engine)
    if analyzer.needed:
        print("bench: this PostgreSQL runs with autovacuum off; the benchmark ANALYZEs the tables it writes "
              f"every {analyzer.every_s:.0f} s instead, as autovacuum would in production\n", flush=True)
    with analyzer:
        for name in chosen:
            started = time.perf_counter()
            try:
                section, rows = run_one(name, env, sizes, args.processes, threads)
            except Exception as exc:  # noqa: BLE001  report and go on with the next benchmark
                failures.append(name)
                print(f"{name}: FAILED: {type(exc).__name__}: {exc}\n", flush=True)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            section["quick"] = args.quick
            section["wall_s"] = round(time.perf_counter() - started, 1)
            results[name] = section
            print(report.table(name, rows) + "\n", flush=True)
    results["machine"] = report.machine()
    results["machine"]["autovacuum_standin"] = analyzer.needed
    path = report.write("latest", results, args.results)
    print(f"results: {path}")
    if failures:
        print(f"bench: failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def run_one(name: str, env, sizes, processes, threads) -> tuple[dict, list]:
    if name == "notifications":
        from bench import notifications

        runs = [notifications.run(env, sizes.messages, processes, t, sizes.provider_delay_ms, sizes.producers)
                for t in threads]
        best = runs[0]
        rows = notifications.rows(best)
        if len(runs) > 1:
            best["sweep"] = [{k: r[k] for k in ("worker_processes", "worker_threads", "per_s", "baseline_per_s",
                                                "ratio")} for r in runs]
            rows += [(f"sweep {r['worker_processes']}x{r['worker_threads']}",
                      f"{r['per_s']} msg/s vs {r['baseline_per_s']} (ratio {r['ratio']})") for r in runs]
        return best, rows
    if name == "portal":
        from bench import dashboard

        result = dashboard.run(env, sizes)
        return result, dashboard.rows(result)
    if name == "scheduler":
        from bench import scheduler_scan

        result = scheduler_scan.run(env, sizes)
        return result, scheduler_scan.rows(result)
    if name == "invitations":
        from bench import invitations

        result = invitations.run(env, sizes.invitations, processes, threads[0], sizes.provider_delay_ms,
                                 sizes.invite_rate)
        return result, invitations.rows(result)
    raise ValueError(name)


if __name__ == "__main__":
    sys.exit(main())

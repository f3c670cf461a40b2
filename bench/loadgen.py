"""A closed-loop HTTP load generator: C concurrent clients, each sending its
next request as soon as the last one answered, until a request count or a
time limit is reached. Runs in its own process (so it does not share the
server's event loop) and prints one JSON line.

    python -m bench.loadgen http://127.0.0.1:8080/slug/ --concurrency 50 \\
        --requests 5000 --duration 30 --cookie portal_session=...

127.0.0.1 only: it is a benchmark tool, not a way to load someone's site.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from urllib.parse import urlparse

import aiohttp


def percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(pct / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


async def run(url: str, concurrency: int, requests: int, duration: float, cookies: dict[str, str],
              warmup: int = 0) -> dict:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen: only 127.0.0.1 targets are allowed")
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: Counter = Counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookies=cookies) as session:
        for _ in range(warmup):  # open connections, fill caches
            async with session.get(url, allow_redirects=False) as resp:
                await resp.read()
        issued = 0
        deadline = time.perf_counter() + duration

        async def client() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                start = time.perf_counter()
                try:
                    async with session.get(url, allow_redirects=False) as resp:
                        await resp.read()
                        statuses[resp.status] += 1
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append((time.perf_counter() - start) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    ok = statuses.get(200, 0)
    return {
        "url": url, "concurrency": concurrency, "requests": len(latencies) + sum(errors.values()),
        "ok": ok, "statuses": {str(k): v for k, v in statuses.items()}, "errors": dict(errors),
        "elapsed_s": round(elapsed, 3), "rps": round(ok / elapsed, 1) if elapsed else None,
        "p50_ms": _r(percentile(latencies, 50)), "p90_ms": _r(percentile(latencies, 90)),
        "p99_ms": _r(percentile(latencies, 99)), "max_ms": _r(latencies[-1] if latencies else None),
        "mean_ms": _r(statistics.fmean(latencies) if latencies else None),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP load generator (127.0.0.1 only)")
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=30.0, help="stop after this many seconds")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--cookie", action="append", default=[], help="name=value (repeatable)")
    args = parser.parse_args(argv)
    cookies = dict(c.split("=", 1) for c in args.cookie)
    result = asyncio.run(run(args.url, args.concurrency, args.requests, args.duration, cookies, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

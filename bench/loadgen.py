"""A closed-loop HTTP load generator: C concurrent clients, each sending its
next request as soon as the last one answered, until a request count or a
time limit is reached. Runs in its own process (so it does not share the
server's event loop) and prints one JSON line.

    python -m bench.loadgen http://127.0.0.1:8080/slug/ --concurrency 50 \\
        --requests 5000 --duration 30 --cookie portal_session=...

127.0.0.1 only: it is a benchmark tool, not a way to load someone's site.

Why not aiohttp's client: the generator shares the machine's two cores with
the server it measures, so what it spends is taken from the server. aiohttp's
client spent 0.25 ms of CPU a request, an eighth of the dashboard's whole
cost; this one sends a prebuilt keep-alive GET on a plain asyncio protocol
and reads just the status line and the body's length (about 0.03 ms, like
wrk, which is not on a fresh machine). It speaks only what our servers answer:
HTTP/1.1 with Content-Length or chunked bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from urllib.parse import urlparse


def percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(pct / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class BadResponse(Exception):
    """The server answered something this generator does not read (or closed mid-answer)."""


class Client(asyncio.Protocol):
    """One keep-alive connection: ``request()`` sends the prebuilt request and
    resolves with the status once the whole response has arrived."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.status = 0
        self.remaining: int | None = None  # body bytes still to come; None: reading headers
        self.chunked = False
        self.keep_alive = True
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(BadResponse("connection closed mid-response"))

    def request(self, raw: bytes, timeout: float) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.remaining, self.chunked = None, False
        # A timer handle, not asyncio.wait_for: that wraps each request in a task of its own.
        self.timer = loop.call_later(timeout, self._timed_out)
        self.transport.write(raw)
        return self.waiter

    def _timed_out(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(asyncio.TimeoutError())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            self._parse()
        except BadResponse as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            self.transport.close()

    def _parse(self) -> None:
        if self.remaining is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[:end + 4]
            parts = head[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise BadResponse(f"not an HTTP/1.x status line: {head[0][:80]!r}")
            self.status = int(parts[1])
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.keep_alive = headers.get("connection", "").lower() != "close"
            self.chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            if not self.chunked:
                if "content-length" not in headers:
                    raise BadResponse("response without Content-Length or chunked body")
                self.remaining = int(headers["content-length"])
            else:
                self.remaining = 0
        if self.chunked:
            self._parse_chunks()
        elif len(self.buffer) >= self.remaining:
            del self.buffer[:self.remaining]
            self._done()

    def _parse_chunks(self) -> None:
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
            if len(self.buffer) < end + 2 + size + 2:
                return
            del self.buffer[:end + 2 + size + 2]
            if size == 0:  # no trailers from our servers
                self._done()
                return

    def _done(self) -> None:
        self.timer.cancel()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.status)


def build_request(url: str, cookies: dict[str, str]) -> tuple[str, int, bytes]:
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen: only 127.0.0.1 targets are allowed")
    if parsed.scheme != "http":
        raise SystemExit("loadgen: http:// only")
    port = parsed.port or 80
    target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parsed.hostname}:{port}", "Accept: text/html", "User-Agent: bench-loadgen"]
    if cookies:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
    return parsed.hostname, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def run(url: str, concurrency: int, requests: int, duration: float, cookies: dict[str, str],
              warmup: int = 0, timeout: float = 30.0) -> dict:
    host, port, raw = build_request(url, cookies)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: Counter = Counter()

    async def connect() -> Client:
        _, client = await loop.create_connection(Client, host, port)
        return client

    async def one(client: Client) -> Client:
        """One request on ``client`` (a new connection if the server closed it): its status counted."""
        if client.closed:
            client = await connect()
        status = await client.request(raw, timeout)
        statuses[status] += 1
        if not client.keep_alive:
            client.transport.close()
            client.closed = True  # now: connection_lost comes a loop turn later
        return client

    clients = [await connect() for _ in range(concurrency)]
    for i in range(warmup):  # open connections, fill caches
        clients[i % concurrency] = await one(clients[i % concurrency])
    statuses.clear()
    issued = 0
    deadline = time.perf_counter() + duration

    async def worker(client: Client) -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            try:
                client = await one(client)
            except (OSError, BadResponse, asyncio.TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                if client.transport is not None:
                    client.transport.close()
                client.closed = True
                continue
            latencies.append((time.perf_counter() - start) * 1000)
        client.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
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

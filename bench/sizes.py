"""Benchmark sizes: full by default, ``--quick`` for a smoke run; each one can
be overridden by an environment variable (or the matching flag)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass
class Sizes:
    messages: int = 10_000          # BENCH_MESSAGES: notifications end to end
    customers: int = 10_000         # BENCH_CUSTOMERS: portal dataset
    bookings: int = 1_000_000       # BENCH_BOOKINGS: portal dataset
    requests: int = 20_000          # BENCH_REQUESTS: portal load, per target
    duration_s: float = 30.0        # BENCH_DURATION_S: portal load time limit, per target
    concurrency: int = 50           # BENCH_CONCURRENCY: portal clients
    scan_small: int = 10_000        # BENCH_SCAN_SMALL: scheduler due-scan
    scan_large: int = 1_000_000     # BENCH_SCAN_LARGE
    invitations: int = 100_000      # BENCH_INVITATIONS
    invite_rate: int = 2_000        # BENCH_INVITE_RATE: portal invite --rate (production default: 5/s)
    provider_delay_ms: int = 100    # BENCH_PROVIDER_DELAY_MS
    producers: int = 16             # BENCH_PRODUCERS: booking events written concurrently (threads)


QUICK = Sizes(messages=300, customers=500, bookings=20_000, requests=1_000, duration_s=10.0,
              scan_small=1_000, scan_large=10_000, invitations=300)


def env_name(name: str) -> str:
    return "BENCH_" + name.upper()


def resolve(quick: bool, overrides: dict | None = None) -> Sizes:
    sizes = Sizes(**vars(QUICK)) if quick else Sizes()
    for f in fields(Sizes):
        raw = os.environ.get(env_name(f.name))
        if raw:
            try:
                value = float(raw.replace("_", ""))
            except ValueError:
                raise ValueError(f"{env_name(f.name)} must be a number, got {raw!r}") from None
            setattr(sizes, f.name, type(getattr(sizes, f.name))(value))
        if overrides and overrides.get(f.name) is not None:
            setattr(sizes, f.name, overrides[f.name])
    return sizes

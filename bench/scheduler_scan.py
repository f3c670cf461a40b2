"""Scheduler: the due-scan at 10k and 1M bookings (``bench/scan.py``, issue 7's
``measure_scan``). Run here on the bench database, which it may fill and empty."""

from __future__ import annotations

from bench import env as benv


def run(env: benv.BenchEnv, sizes) -> dict:
    try:
        from bench.scan import measure_scan
    except ImportError as exc:
        raise RuntimeError(f"bench/scan.py (measure_scan, issue 7) is missing: {exc}") from None
    benv.wipe(env)
    result = dict(measure_scan(env.database_url, sizes=(sizes.scan_small, sizes.scan_large)))
    result["sizes"] = [sizes.scan_small, sizes.scan_large]
    if "scan_ms_10k" not in result or "scan_ms_1m" not in result:
        raise RuntimeError(f"measure_scan returned {sorted(result)}, expected scan_ms_10k and scan_ms_1m")
    benv.wipe(env)
    return result


def rows(result: dict) -> list[tuple[str, object]]:
    small, large = result["sizes"]
    extra = [(k, v) for k, v in result.items() if k not in ("scan_ms_10k", "scan_ms_1m", "sizes", "quick", "wall_s")
             and isinstance(v, (int, float, str))]
    return [(f"due-scan ms at {small:,} bookings", result["scan_ms_10k"]),
            (f"due-scan ms at {large:,} bookings", result["scan_ms_1m"]), *extra]

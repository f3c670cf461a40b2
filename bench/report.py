"""Tables on stdout and JSON results for tracking over time."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    load1, load5, _ = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": round(load1, 2),
        "load_avg_5m_at_end": round(load5, 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, rows: list[tuple[str, object]]) -> str:
    width = max((len(k) for k, _ in rows), default=10)
    lines = [title, "-" * max(len(title), width + 14)]
    lines += [f"  {k.ljust(width)}  {fmt(v)}" for k, v in rows]
    return "\n".join(lines)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if not value or not baseline:
        return None
    return round(value / baseline, 3)


def write(name: str, data: dict, results_dir: Path | None = None) -> Path:
    """Write ``results/<name>.json`` atomically; sections not run this time are kept."""
    directory = results_dir or RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    merged: dict = {}
    if path.exists():
        try:
            merged = json.loads(path.read_text())
        except ValueError:
            merged = {}
    merged.update(data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path

"""CPU seconds spent by each part of a benchmark, read from /proc.

Wall-clock rates move with whatever else the machine runs; the CPU each part
spends per message does not (much). Reported next to the rates, it says which
part a faster machine, or a faster piece of code, would help.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, str, float] | None:
    """(parent pid, command name, CPU seconds: user + system, own only) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICKS


def _table() -> dict[int, tuple[int, str, float]]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            row = _stat(int(entry.name))
            if row is not None:
                table[int(entry.name)] = row
    return table


def _tree(table: dict, root: int) -> set[int]:
    members, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, _, _) in table.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    return members


class Own(int):
    """A pid counted alone, without its children (the benchmark process starts the others)."""


class CpuMeter:
    """``parts``: name -> a root pid (that process and its children), an ``Own(pid)``,
    or a command name (every process called that, e.g. "postgres", "redis-server")."""

    def __init__(self, parts: dict[str, int | str]):
        self.parts = parts
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        table = _table()
        totals = {}
        for name, who in self.parts.items():
            if isinstance(who, Own):
                pids = {int(who)}
            elif isinstance(who, int):
                pids = _tree(table, who)
            else:
                pids = {p for p, row in table.items() if row[1] == who}
            totals[name] = sum(table[p][2] for p in pids if p in table)
        return totals

    def per_item_ms(self, items: int) -> dict[str, float]:
        """CPU milliseconds per item for each part since the meter started, and their total."""
        now = self._read()
        out = {name: round(1000 * max(0.0, now[name] - self.start[name]) / max(items, 1), 3) for name in self.parts}
        out["total"] = round(sum(out.values()), 3)
        return out

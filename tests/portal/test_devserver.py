"""``portal dev`` end to end: embedded SQLite + Redis, prints the URL, leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                todo.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _dev_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORTAL_BROKER")}
    env["PORTAL_VAR_DIR"] = str(tmp_path / "var")
    return env


def _start(tmp_path: Path, port: int, argv_prefix: list[str] | None = None) -> subprocess.Popen:
    argv = (argv_prefix or []) + [sys.executable, "-m", "portal", "dev", "--port", str(port)]
    return subprocess.Popen(argv, env=_dev_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_url(proc: subprocess.Popen, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Open: http" in line:
            return line.split("Open:", 1)[1].strip()
    pytest.fail("portal dev printed no URL:\n" + "".join(lines[-40:]))


def _assert_all_gone(pids: set[int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "processes left behind"


@pytest.mark.integration
def test_dev_serves_demo_and_stops_cleanly(tmp_path):
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        url = _wait_for_url(proc)
        assert url == f"http://127.0.0.1:{port}/pro-home-services/signin"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_dev/outbox", timeout=5) as resp:
            assert resp.status == 200
        assert (tmp_path / "var" / "portal.db").exists()
        children = _descendants(proc.pid)
        assert len(children) >= 4  # redis, web, worker (+ its process), scheduler
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        proc.stdout.close()
    _assert_all_gone(children | {proc.pid})


@pytest.mark.integration
def test_dev_stops_when_its_parent_is_killed(tmp_path):
    port = _free_port()
    # A shell stands in for `make`: kill it hard and portal dev must not linger.
    shell = subprocess.Popen(
        ["/bin/sh", "-c", f'"{sys.executable}" -m portal dev --port {port} & wait'],
        env=_dev_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_for_url(shell)
        everything = _descendants(shell.pid)
        shell.send_signal(signal.SIGKILL)
        shell.wait(10)
    finally:
        shell.stdout.close()
    _assert_all_gone(everything, timeout=40)


@pytest.mark.integration
def test_ctrl_c_stops_everything_in_order(tmp_path):
    """A terminal's Ctrl-C signals the whole process group. Only ``portal dev`` may act on it:
    Redis must outlive the worker, and the worker must get one SIGTERM (a second makes
    Dramatiq kill its processes mid-job)."""
    port = _free_port()
    argv = [sys.executable, "-m", "portal", "dev", "--port", str(port)]
    proc = subprocess.Popen(argv, env=_dev_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        _wait_for_url(proc)
        everything = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Killing worker process" not in rest
    assert "CRITICAL" not in rest and "Traceback" not in rest, rest
    _assert_all_gone(everything)

"""``portal web`` with several processes (WEB_PROCESSES): start, serve, stop, nothing left behind."""

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

from portal.settings import load_settings
from portal_web.serve import process_count

BASE_ENV = {"SECRET_KEY": "test-secret-key-0123456789", "PUBLIC_BASE_URL": "http://127.0.0.1:8080",
            "OPS_TOKEN": "test-ops-token-0123456789", "REDIS_URL": "redis://127.0.0.1:6379/0"}


def test_process_count_defaults_to_the_usable_cpus_and_one_in_dev_mode():
    settings = load_settings({**BASE_ENV, "DATABASE_URL": "sqlite://"})
    assert settings.web_processes == 0
    assert process_count(settings) == len(os.sched_getaffinity(0))
    assert process_count(settings.replace(web_processes=3)) == 3
    assert load_settings({**BASE_ENV, "PORTAL_DEV": "1"}).web_processes == 1
    assert load_settings({**BASE_ENV, "DATABASE_URL": "sqlite://", "WEB_PROCESSES": "4"}).web_processes == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def _wait_gone(pids, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def start_web(tmp_path):
    started: list[subprocess.Popen] = []

    def start(processes: int = 2) -> tuple[subprocess.Popen, int, set[int]]:
        port = _free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("PORTAL_DEV", "PORTAL_BROKER", "PROMETHEUS_MULTIPROC_DIR", "PORTAL_WEB_METRICS_DIR")}
        env.update(BASE_ENV, DATABASE_URL=f"sqlite:///{tmp_path / 'web.db'}", WEB_PROCESSES=str(processes),
                   TMPDIR=str(tmp_path))
        proc = subprocess.Popen([sys.executable, "-m", "portal", "web", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            children = _children(proc.pid)
            if len(children) == (processes if processes > 1 else 0):
                try:
                    if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                        break
                except OSError:
                    pass
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        else:
            pytest.fail("portal web did not start")
        return proc, port, _children(proc.pid)

    yield start
    for proc in started:  # never leave a server behind, whatever the test did
        for pid in _children(proc.pid) | {proc.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)
        proc.stderr.close()


def test_several_processes_serve_one_port_and_stop_on_sigterm(start_web, tmp_path):
    proc, port, children = start_web(2)
    # Wait until both processes have bound the port: SO_REUSEPORT spreads new connections.
    for _ in range(40):
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, '{"status": "ok"}')
    # /metrics adds up the request counters of every process.
    metrics = _get(f"http://127.0.0.1:{port}/metrics")[1]
    count = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("portal_request_duration_seconds_count") and "/healthz" in line)
    assert count >= 40
    metrics_dirs = list(tmp_path.glob("portal-web-metrics-*"))
    assert len(metrics_dirs) == 1

    proc.send_signal(signal.SIGTERM)  # the parent only, as a process manager would
    assert proc.wait(30) == 0
    assert _wait_gone(children)
    assert not metrics_dirs[0].exists()


def test_a_child_that_dies_stops_the_others(start_web):
    proc, _port, children = start_web(2)
    victim, other = sorted(children)
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(30) == 1
    assert _wait_gone([other])
    assert "exited" in proc.stderr.read()


def test_children_stop_when_the_parent_is_killed(start_web):
    proc, _port, children = start_web(2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _wait_gone(children)


def test_one_process_runs_in_place(start_web):
    proc, port, children = start_web(1)
    assert children == set()
    assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


async def test_a_serving_process_freezes_what_start_up_built_out_of_the_collectors_reach(aiohttp_client, settings):
    # A full collection walking every long-lived object stalled all requests of a process
    # for ~70 ms; the server process freezes them once its app has started.
    import gc

    from portal_web.serve import serving_app

    gc.unfreeze()
    try:
        client = await aiohttp_client(serving_app(settings))
        assert gc.get_freeze_count() > 0
        assert (await client.get("/healthz")).status == 200
    finally:
        gc.unfreeze()  # the test process goes on collecting as usual

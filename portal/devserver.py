"""``portal dev``: web, worker and scheduler on embedded defaults, in one command.

It owns every process it starts: on Ctrl-C, SIGTERM, the death of any child,
or its own parent going away (``make`` killed), it stops them all and the
embedded Redis, so nothing is left behind. The children and Redis run in
sessions of their own, so signals meant for the terminal's process group
reach ``portal dev`` alone and it stops them in order: web, worker and
scheduler first (each once, gracefully), Redis last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from portal.children import die_with_parent
from portal.devstack import EmbeddedRedis
from portal.settings import load_settings, var_dir

def _redis_dir() -> Path:
    # Unix socket paths are limited to ~107 bytes; a deep checkout falls back to /tmp.
    directory = var_dir() / "redis"
    if len(str(directory / "redis.sock")) > 100:
        directory = Path(tempfile.mkdtemp(prefix="portal-redis-"))
    return directory


def _wait_http(url: str, timeout: float, procs: list[subprocess.Popen]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def run_dev(port: int, host: str = "127.0.0.1") -> int:
    os.environ["PORTAL_DEV"] = "1"
    os.environ.setdefault("PUBLIC_BASE_URL", f"http://{host}:{port}")
    var_dir().mkdir(parents=True, exist_ok=True)
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis(_redis_dir()).start()
        os.environ["REDIS_URL"] = redis.url
    settings = load_settings(dev=True)
    env = dict(os.environ)
    procs: list[subprocess.Popen] = []
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    parent = os.getppid()
    try:
        from portal.cli import main as portal_main

        for step in (["migrate"], ["demo"]):
            code = portal_main(step)
            if code:
                return code
        python = sys.executable
        commands = {
            "web": [python, "-m", "portal", "web", "--port", str(port), "--host", host],
            "worker": [python, "-m", "portal", "worker", "--processes", "1", "--threads", "4"],
            "scheduler": [python, "-m", "portal", "scheduler"],
        }
        for name, argv in commands.items():
            # Own session: a terminal's Ctrl-C reaches only us, and each child gets one
            # SIGTERM from below (a second signal makes Dramatiq kill its workers mid-send).
            procs.append(subprocess.Popen(argv, env=env, preexec_fn=die_with_parent, start_new_session=True))
        url = f"{settings.public_base_url}/pro-home-services/signin"
        if _wait_http(f"http://{host}:{port}/healthz", 60, procs):
            print("\n  Customer Portal is running.", flush=True)
            print(f"  Open: {url}", flush=True)
            print(f"  Dev outbox (emails and texts): {settings.public_base_url}/_dev/outbox", flush=True)
            print(f"  Operator dashboard: {settings.public_base_url}/ops (token: {settings.ops_token})", flush=True)
            print("  Press Ctrl-C to stop.\n", flush=True)
        while not stopping:
            if any(p.poll() is not None for p in procs):
                print("portal dev: a process exited; stopping the others", file=sys.stderr)
                return 1
            if os.getppid() != parent:  # our parent died: don't become an orphan
                return 0
            time.sleep(0.3)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if redis is not None:
            redis.stop()

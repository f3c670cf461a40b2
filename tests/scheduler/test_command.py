"""``portal scheduler`` as a process: takes the lock, runs, and stops cleanly on SIGTERM."""

import os
import signal
import subprocess
import sys
import threading

from scheduler.leader import LOCK_NAME
from tests.scheduler.test_leader import wait_for


def test_portal_scheduler_stops_cleanly_on_sigterm(engine, database_url, redis_url, redis_client):
    env = {k: v for k, v in os.environ.items() if k != "PORTAL_BROKER"}
    env.update(PORTAL_DEV="1", DATABASE_URL=database_url, REDIS_URL=redis_url)
    proc = subprocess.Popen([sys.executable, "-m", "portal", "scheduler"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        def started_as_leader():
            return any("started (active)" in line for line in lines) or proc.poll() is not None

        wait_for(started_as_leader, timeout=60)
        assert proc.poll() is None, "".join(lines)
        assert redis_client.get(LOCK_NAME) is not None

        def scanned():
            return redis_client.hget("portal:scheduler:last", "scan") is not None

        wait_for(scanned, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()
    output = "".join(lines)
    assert "stopping" in output and "Traceback" not in output, output
    assert redis_client.get(LOCK_NAME) is None  # handed over at once, not left to expire

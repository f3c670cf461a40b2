"""A Dramatiq entry point for the kill -9 integration test.

    python -m dramatiq tests.messages.stalling_worker --processes 1 --threads 1

The real actors on the real Redis broker (REDIS_URL), with an outbox email
sender that stalls mid-send: it writes ``STALL_MARKER`` when a send begins,
then sleeps ``STALL_SECONDS`` before writing the outbox file, so the test can
kill the worker while a send is in progress.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from messages.providers.outbox import OutboxSender
from portal.settings import load_settings
from workers import broker  # noqa: F401  (the Redis broker, with the actors declared)
from workers import messaging


class StallingOutbox(OutboxSender):
    def send_email(self, email):
        Path(os.environ["STALL_MARKER"]).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("STALL_SECONDS", "120")))
        return super().send_email(email)


messaging.configure(email_sender=StallingOutbox(load_settings().outbox_dir))

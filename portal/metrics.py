"""Application metrics (prometheus-client), exported at ``/metrics``.

Dramatiq's own Prometheus middleware covers the workers' queues; these count
what only the application knows.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES = Counter("portal_messages_total", "Outbound messages by final status and channel", ["status", "channel"])
WEBHOOK_VERIFICATION_FAILURES = Counter(
    "portal_webhook_verification_failures_total", "Inbound webhooks rejected for a bad signature", ["source"]
)
SIGNINS = Counter("portal_signins_total", "Portal sign-ins", ["outcome"])
REQUEST_LATENCY = Histogram(
    "portal_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

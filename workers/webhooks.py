"""Outbound webhook delivery (see ``portal.webhooks_out``).

One attempt per actor run: the row is read, the signed body posted with a
timeout, and the outcome written to the row's delivery log. Network errors,
429 and 5xx are retried with exponential backoff up to ``WEBHOOK_MAX_ATTEMPTS``
(the actor re-enqueues itself with a delay), then the row is marked failed.
Other 4xx answers fail at once: resending the same body will not change them,
and so do 3xx: redirects are not followed, they could lead anywhere.

Unless ``WEBHOOK_ALLOW_PRIVATE``, the URL's host is resolved and checked just
before each post, and the address the connection reaches is checked again
(``portal.netguard``): it was checked when the business set it, but DNS can
change since. A private or internal address fails the row at once; a name that
does not resolve is retried like a network error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
import requests

from portal import netguard, webhooks_out
from portal.db import system_session
from portal.errors import UnresolvedHost, UnsafeUrl
from portal.models import Business, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 10.0
BACKOFF_MAX_S = 3600.0
RETRY_AFTER_MAX_S = 3600.0


@dataclass
class Config:
    session_factory: object = None
    timeout_s: float = 10.0
    max_attempts: int = 8
    allow_private: bool = False


_config = Config()


def configure(*, session_factory=None, settings=None) -> None:
    """Tests and ``portal worker`` start-up; otherwise built from the environment on first use."""
    if session_factory is not None:
        _config.session_factory = session_factory
    if settings is not None:
        _config.timeout_s = settings.webhook_timeout_s
        _config.max_attempts = settings.webhook_max_attempts
        _config.allow_private = settings.webhook_allow_private


def _factory():
    if _config.session_factory is None:
        from portal.db import worker_session_factory
        from portal.settings import load_settings

        settings = load_settings()
        configure(settings=settings)
        _config.session_factory = worker_session_factory(settings.database_url, settings.worker_threads)
    return _config.session_factory


def backoff_s(attempts: int) -> float:
    """Delay before attempt ``attempts + 1``: base, 2x base, 4x base... capped."""
    return min(BACKOFF_BASE_S * (2 ** max(attempts - 1, 0)), BACKOFF_MAX_S)


def _retry_after(resp: requests.Response | None) -> float | None:
    if resp is None:
        return None
    try:
        delay = float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None
    # "nan" or a negative number is no delay at all (nan broke the attempt): the backoff applies.
    return min(delay, RETRY_AFTER_MAX_S) if delay >= 0 else None


def _post(url: str, body: bytes, headers: dict) -> requests.Response:
    options = {"data": body, "headers": headers, "timeout": _config.timeout_s, "allow_redirects": False}
    if _config.allow_private:
        return requests.post(url, **options)
    netguard.check_url(url)  # a clear refusal up front; the session checks the address it reaches
    with netguard.guarded_session() as http:
        return http.post(url, **options)


def attempt(delivery_id: int) -> str:
    """Make one delivery attempt; returns the row's status afterwards (or "missing")."""
    factory = _factory()
    with system_session(factory) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return "missing"
        if delivery.status != "pending":
            return delivery.status  # already delivered or given up: a redelivered job does nothing
        business = session.get(Business, delivery.business_id)
        body = webhooks_out.body_for(delivery)
        url, secret = delivery.url, (business.webhook_secret or "")

    # No transaction is held open while we wait on the receiver.
    resp, error, refused = None, None, None
    try:
        resp = _post(url, body, webhooks_out.signed_headers(secret, body))
    except (requests.RequestException, UnresolvedHost) as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    except UnsafeUrl as exc:
        refused = f"refused, not sent: {exc}; not retried"[:1000]

    with system_session(factory) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery.status != "pending":
            return delivery.status
        delivery.attempts += 1
        delivery.last_status_code = resp.status_code if resp is not None else None
        delivery.last_error = error
        retry_in = None
        if refused is not None:
            delivery.status, delivery.next_attempt_at, delivery.last_error = "failed", None, refused
        elif resp is not None and 200 <= resp.status_code < 300:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", utcnow(), None
        elif resp is not None and resp.status_code != 429 and resp.status_code < 500:
            delivery.status, delivery.next_attempt_at = "failed", None
            delivery.last_error = f"HTTP {resp.status_code}: not retried"
        elif delivery.attempts >= _config.max_attempts:
            delivery.status, delivery.next_attempt_at = "failed", None
            delivery.last_error = (error or f"HTTP {resp.status_code}") + f" (gave up after {delivery.attempts} attempts)"
        else:
            retry_in = _retry_after(resp) or backoff_s(delivery.attempts)
            delivery.next_attempt_at = utcnow() + timedelta(seconds=retry_in)
            if error is None:
                delivery.last_error = f"HTTP {resp.status_code}: will retry"
        status = delivery.status
        session.commit()
    if retry_in is not None:
        log.info("webhook %s attempt failed; retrying in %.0fs", delivery_id, retry_in)
        webhooks_out.enqueue(delivery_id, delay_ms=int(retry_in * 1000))
    return status


@dramatiq.actor(queue_name="webhooks", max_retries=0)
def deliver_webhook(delivery_id: int) -> None:
    attempt(delivery_id)

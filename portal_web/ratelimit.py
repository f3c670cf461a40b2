"""Redis-backed, tenant-scoped fixed-window counters for sign-in link requests.

Keys are ``rl:{business_id}:ip:{ip}`` and ``rl:{business_id}:id:{sha256(identifier)}``
(an identifier is hashed so Redis never holds an email address or phone number).
"""

from __future__ import annotations

import hashlib
import logging

import redis.asyncio as aioredis

from portal.settings import Settings

log = logging.getLogger(__name__)


def client_ip(request, trusted_proxy_hops: int) -> str:
    """The client's address: the socket peer, or, behind ``trusted_proxy_hops`` proxies, the
    X-Forwarded-For entry the outermost trusted proxy added (entries left of it are client-controlled)."""
    if trusted_proxy_hops > 0:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if len(hops) >= trusted_proxy_hops:
            return hops[-trusted_proxy_hops][:64]
    return request.remote or "unknown"


def ip_key(business_id: int, ip: str) -> str:
    return f"rl:{business_id}:ip:{ip}"


def identifier_key(business_id: int, identifier: str) -> str:
    digest = hashlib.sha256(identifier.strip().lower().encode()).hexdigest()[:32]
    return f"rl:{business_id}:id:{digest}"


async def hit(redis: aioredis.Redis, key: str, limit: int, window_s: int) -> bool:
    """Count one request; True while the window's count is within ``limit``."""
    async with redis.pipeline(transaction=True) as pipe:
        # SET NX EX starts the window once; INCR never resets it (works on Redis 6.2 too).
        pipe.set(key, 0, ex=window_s, nx=True)
        pipe.incr(key)
        _, count = await pipe.execute()
    return int(count) <= limit


async def allow_signin_request(redis: aioredis.Redis, settings: Settings, business_id: int,
                               ip: str | None, identifier: str) -> bool:
    """Both counters are always incremented, so a flood of one identifier still counts against the IP."""
    try:
        by_ip = await hit(redis, ip_key(business_id, ip or "unknown"), settings.signin_rate_ip,
                          settings.signin_rate_window_s)
        by_id = await hit(redis, identifier_key(business_id, identifier), settings.signin_rate_identifier,
                          settings.signin_rate_window_s)
    except Exception:  # Redis down: the queue is down too; fail closed, send nothing
        log.warning("rate limiter unavailable; refusing sign-in link request", exc_info=True)
        return False
    return by_ip and by_id

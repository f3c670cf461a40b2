"""Operator sign-in for ``/ops``: the OPS_TOKEN, then a server-side operator session.

The operator session lives in Redis (``ops:session:{sha256(id)}``), apart from
customer sessions; its cookie is scoped to ``/ops``. Scripts may instead send
``Authorization: Bearer <OPS_TOKEN>`` (not ambient, so no CSRF token needed).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from portal.security import local_path_under
from portal_web.keys import REDIS, SETTINGS
from portal_web.ratelimit import client_ip

log = logging.getLogger(__name__)
COOKIE = "ops_session"
COOKIE_PATH = "/ops"
OPERATOR = web.RequestKey("operator", object)
# Brute force: this many wrong tokens from one address per window, then 429.
MAX_FAILURES = 10
FAILURE_WINDOW_S = 15 * 60


@dataclass(frozen=True)
class Operator:
    via: str  # "session" or "token"
    csrf: str = ""
    session_key: str = ""


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def session_key(raw: str) -> str:
    return f"ops:session:{_sha256(raw)}"


def token_ok(expected: str, given: str) -> bool:
    """Constant-time comparison; an unset OPS_TOKEN never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(_sha256(expected), _sha256(given))


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def load_operator(request: web.Request) -> Operator | None:
    settings = request.app[SETTINGS]
    given = bearer(request)
    if given is not None:  # an explicit credential wins over any cookie
        return Operator(via="token") if token_ok(settings.ops_token, given) else None
    raw = request.cookies.get(COOKIE)
    if not raw or not settings.ops_token:
        return None
    redis = request.app[REDIS]
    key = session_key(raw)
    data = await redis.get(key)
    if data is None:
        return None
    info = json.loads(data)
    if time.time() - info["created"] > settings.session_absolute_timeout_s:
        await redis.delete(key)
        return None
    await redis.expire(key, settings.session_idle_timeout_s)  # idle timeout slides
    return Operator(via="session", csrf=info["csrf"], session_key=key)


async def open_session(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[SETTINGS]
    raw = secrets.token_urlsafe(32)
    info = {"created": time.time(), "csrf": secrets.token_urlsafe(32)}
    await request.app[REDIS].set(session_key(raw), json.dumps(info), ex=settings.session_idle_timeout_s)
    response.set_cookie(COOKIE, raw, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=settings.https)


async def close_session(request: web.Request, response: web.StreamResponse) -> None:
    operator = request.get(OPERATOR)
    if operator is not None and operator.session_key:
        await request.app[REDIS].delete(operator.session_key)
    response.del_cookie(COOKIE, path=COOKIE_PATH)


def client_address(request: web.Request) -> str:
    # Behind a load balancer the peer is the balancer: one guesser would lock every operator out.
    return client_ip(request, request.app[SETTINGS].trusted_proxy_hops)


async def too_many_failures(request: web.Request) -> bool:
    count = await request.app[REDIS].get(f"ops:signin-fail:{client_address(request)}")
    return count is not None and int(count) >= MAX_FAILURES


async def count_failure(request: web.Request) -> None:
    key = f"ops:signin-fail:{client_address(request)}"
    async with request.app[REDIS].pipeline(transaction=True) as pipe:
        await pipe.incr(key).expire(key, FAILURE_WINDOW_S).execute()


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/ops/api/") or "application/json" in request.headers.get("Accept", "")


def safe_next(value: str | None) -> str:
    """Only ever send the operator back inside /ops."""
    if value and (local_path_under(value, "/ops/") or (value.split("?", 1)[0] == "/ops" and value.isprintable())):
        return value
    return "/ops"


def needs_redis(handler):
    """Redis (sessions, sign-in throttling, queues, dead letters) or the database down: a 503 that says which."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RedisError as exc:
            log.warning("ops: Redis unreachable on %s %s (%s)", request.method, request.path, exc)
            raise web.HTTPServiceUnavailable(
                text=f"Redis is unreachable ({type(exc).__name__}): operator sign-in, queues and dead letters "
                     "need it. Try again once /readyz answers 200.") from None
        except OperationalError as exc:
            log.warning("ops: database unreachable on %s %s (%s)", request.method, request.path,
                        str(exc.orig).splitlines()[0])
            raise web.HTTPServiceUnavailable(
                text="The database is unreachable: messages, throughput and outcomes need it. "
                     "Try again once /readyz answers 200.") from None

    return wrapped


def operator_required(handler):
    """Signed-in operators only: HTML gets the sign-in page, JSON a 401."""

    @needs_redis
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        operator = await load_operator(request)
        if operator is None:
            if wants_json(request) or bearer(request) is not None:
                return web.json_response({"error": "operator sign-in required"}, status=401,
                                         headers={"WWW-Authenticate": 'Bearer realm="ops"',
                                                  "Cache-Control": "no-store"})
            raise web.HTTPFound(f"/ops/signin?next={quote(request.path_qs, safe='/')}")
        request[OPERATOR] = operator
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapped


def check_csrf(request: web.Request, form) -> None:
    """POSTs from the operator's browser carry the session's CSRF token and come from our origin."""
    operator: Operator = request[OPERATOR]
    if operator.via == "token":
        return
    origin = request.headers.get("Origin")
    if origin and origin.split("://", 1)[-1] != request.host and origin != request.app[SETTINGS].public_base_url:
        raise web.HTTPForbidden(text="Cross-origin request refused")
    if not hmac.compare_digest(str(form.get("csrf", "")), operator.csrf):
        raise web.HTTPForbidden(text="The form expired or did not come from this dashboard; reload and try again")

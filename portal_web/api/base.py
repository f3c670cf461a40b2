"""Plumbing shared by the API handlers: authentication, body parsing, the
tenant transaction, and ``Idempotency-Key`` replay for POSTs."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Awaitable, Callable

from aiohttp import web
from babel.core import get_global
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.api_schemas import ExternalId, parse
from portal.errors import Conflict, ValidationError
from portal.models import Business, IdempotencyRecord, utcnow
from portal.security import constant_time_equals, hash_token
from portal_web.db import in_system, in_tenant
from portal_web.keys import SETTINGS

PREFIX = "/api/v1"
REALM = 'Bearer realm="api"'
IDEMPOTENCY_HEADER = "Idempotency-Key"
_external_id = TypeAdapter(ExternalId)


@dataclass
class Route:
    """One API operation: registered on the router and described in the OpenAPI document."""

    method: str
    path: str  # below PREFIX, aiohttp syntax: /customers/{external_id}
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    response: type[BaseModel] | None
    body: type[BaseModel] | None = None
    statuses: tuple[int, ...] = (200,)
    query: dict[str, str] = field(default_factory=dict)  # name -> description
    tag: str = "api"
    public: bool = False  # no API key needed (the OpenAPI document itself)
    replays: bool = True  # a POST honours Idempotency-Key (post_once)


class Unauthorized(Exception):
    pass


async def authenticate(request: web.Request) -> Business:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    digest = hash_token(token)

    def lookup(session: Session) -> Business | None:
        business = session.scalar(select(Business).where(Business.api_key_hash == digest))
        # The lookup is by hash (no secret-dependent early exit); compare once more in constant time.
        if business is None or not constant_time_equals(business.api_key_hash or "", digest):
            return None
        return business

    business = await in_system(request.app, lookup)
    if business is None:
        raise Unauthorized("invalid API key")
    return business


def endpoint(fn: Callable[[web.Request, Business], Awaitable[web.StreamResponse]]):
    """Authenticate, then call ``fn(request, business)``; a bad key gets a JSON 401."""

    @functools.wraps(fn)
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            business = await authenticate(request)
        except Unauthorized as exc:
            # RFC 6750: no error code when no credentials were sent at all.
            challenge = REALM if str(exc).startswith("missing") else f'{REALM}, error="invalid_token"'
            return web.json_response({"error": str(exc)}, status=401, headers={"WWW-Authenticate": challenge})
        return await fn(request, business)

    return handler


def region_of(business: Business) -> str | None:
    """The business's country, for reading national phone numbers."""
    return get_global("zone_territories").get(business.timezone)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


MAX_DEPTH = 32  # no request body nests more than a few levels


def _deeper_than(value: object, limit: int) -> bool:
    # A loop, not recursion: the body's depth must not decide the stack's.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


async def read_json(request: web.Request) -> tuple[object, bytes]:
    raw = await request.read()
    if not raw.strip():
        return {}, raw
    too_deep = ValidationError("request body nested too deeply", {"body": f"at most {MAX_DEPTH} levels of nesting"})
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("malformed JSON", {"body": str(exc)}) from None
    except RecursionError:
        raise too_deep from None
    if _deeper_than(data, MAX_DEPTH):
        raise too_deep
    return data, raw


async def read_body(request: web.Request, model: type[BaseModel], business: Business) -> tuple[BaseModel, object]:
    data, raw = await read_json(request)
    if request.method == "PUT" and not raw.strip():
        # The document marks every PUT's body required (openapi.build); ``{}`` is the empty change.
        raise ValidationError("request body required", {"body": "required"})
    return parse(model, data, region=region_of(business)), data


def query_limit(request: web.Request, maximum: int, default: int = 50) -> int:
    """``?limit=`` for a list: a whole number, clamped to 1..maximum."""
    try:
        return min(max(int(request.query.get("limit", str(default))), 1), maximum)
    except ValueError:
        raise ValidationError("invalid query", {"limit": "must be a whole number"}) from None


def external_id(request: web.Request) -> str:
    return external_id_value(request.match_info["external_id"], "external_id", "invalid id in the path")


def external_id_value(value: str, name: str, message: str = "invalid id") -> str:
    try:
        return _external_id.validate_python(value)
    except PydanticValidationError:
        raise ValidationError(message, {name: "1-100 characters, no spaces, slashes or NUL"}) from None


async def in_business(request: web.Request, business: Business, work: Callable[[Session], object]):
    """Run ``work`` in one transaction scoped to the business.

    A unique-constraint race (two PUTs creating the same id at once) is
    retried once: the second attempt finds the row and updates it.
    """
    for attempt in (1, 2):
        try:
            return await in_tenant(request.app, business.id, work)
        except IntegrityError:
            if attempt == 2:
                raise Conflict("the request clashes with a concurrent change; retry it") from None
    raise AssertionError("unreachable")


def request_hash(request: web.Request, data: object) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


async def post_once(request: web.Request, business: Business, data: object,
                    work: Callable[[Session], tuple[int, dict]]) -> web.Response:
    """Run a POST; with an ``Idempotency-Key`` the first response is stored and replayed.

    The record is written in the same transaction as the POST's effects, so
    either both exist or neither does. The same key with another request is 422.
    A key is remembered for ``IDEMPOTENCY_KEY_TTL``; after that it is new again
    (the purge deletes such records; one not purged yet is replaced here).
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        status, body = await in_business(request, business, work)
        return web.json_response(body, status=status)
    key = key.strip()
    if not 1 <= len(key) <= 200:
        raise ValidationError("invalid Idempotency-Key", {IDEMPOTENCY_HEADER: "1-200 characters"})
    digest = request_hash(request, data)
    ttl = timedelta(seconds=request.app[SETTINGS].idempotency_key_ttl_s)

    def once(session: Session) -> tuple[int, dict, bool]:
        record = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
        if record is not None and record.created_at <= utcnow() - ttl:
            session.delete(record)
            session.flush()
            record = None
        if record is not None:
            if record.request_hash != digest:
                raise ValidationError("Idempotency-Key was already used with a different request",
                                      {IDEMPOTENCY_HEADER: "reused with a different request"})
            return record.response_status, json.loads(record.response_body), True
        status, body = work(session)
        session.add(IdempotencyRecord(business_id=business.id, key=key, request_hash=digest,
                                      response_status=status, response_body=json.dumps(body)))
        session.flush()
        return status, body, False

    status, body, replayed = await in_business(request, business, once)
    resp = web.json_response(body, status=status)
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


def dump(model: type[BaseModel], values: dict) -> dict:
    """Build the response through its documented model, so the document stays true."""
    return model.model_validate(values).model_dump(mode="json")

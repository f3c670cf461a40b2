"""Dashboard pages, the JSON the page polls, and the dead-letter actions."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from portal import queues
from portal_web.db import in_system
from portal_web.forms import read_form
from portal_web.keys import REDIS, SETTINGS
from portal_web.ops import scheduler_state, stats
from portal_web.ops.auth import (
    OPERATOR, check_csrf, close_session, count_failure, load_operator, needs_redis, open_session, operator_required,
    safe_next, token_ok, too_many_failures, wants_json,
)
from portal_web.rendering import render

log = logging.getLogger(__name__)
NOTICES = {"retried": "The message is back on its queue.", "discarded": "The dead letter was discarded."}


def _window(request: web.Request, default: str) -> str:
    window = request.query.get("window", default)
    if window not in stats.WINDOWS:
        raise web.HTTPBadRequest(text=f"window must be one of {', '.join(stats.WINDOWS)}")
    return window


def _page(request: web.Request, template: str, context: dict, *, status: int = 200) -> web.Response:
    operator = request.get(OPERATOR)
    base = {"csrf": operator.csrf if operator else "", "signed_in": operator is not None}
    return render(request, template, {**base, **context}, status=status)


# -- sign-in --------------------------------------------------------------

@needs_redis
async def signin_form(request: web.Request) -> web.Response:
    nxt = safe_next(request.query.get("next"))
    if await load_operator(request) is not None:
        raise web.HTTPFound(nxt)
    return render(request, "ops/signin.html", {"next": nxt, "error": ""}, status=200)


@needs_redis
async def signin(request: web.Request) -> web.Response:
    form = await read_form(request)
    nxt = safe_next(form.get("next"))
    settings = request.app[SETTINGS]
    if await too_many_failures(request):
        return render(request, "ops/signin.html", {"next": nxt, "error": "Too many wrong tokens; wait a few minutes."},
                      status=429)
    if not settings.ops_token:
        return render(request, "ops/signin.html",
                      {"next": nxt, "error": "Operator sign-in is off: OPS_TOKEN is not set."}, status=403)
    if not token_ok(settings.ops_token, str(form.get("token", ""))):
        await count_failure(request)
        log.warning("wrong operator token from %s", request.remote)
        return render(request, "ops/signin.html", {"next": nxt, "error": "That token is not right."}, status=403)
    response = web.HTTPFound(nxt)
    await open_session(request, response)
    raise response


@operator_required
async def signout(request: web.Request) -> web.Response:
    check_csrf(request, await read_form(request))
    response = web.HTTPFound("/ops/signin")
    await close_session(request, response)
    raise response


# -- overview -------------------------------------------------------------

async def to_overview(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ops")


@operator_required
async def overview(request: web.Request) -> web.Response:
    return _page(request, "ops/overview.html", {"page": "overview", "windows": list(stats.WINDOWS)})


async def _queues(request: web.Request) -> dict:
    try:
        return await queues.queue_stats(request.app[REDIS], queues.known_queues())
    except RedisError as exc:
        return {"queues": [], "workers": [], "error": f"Redis unreachable ({type(exc).__name__})"}


@operator_required
async def api_overview(request: web.Request) -> web.Response:
    window = _window(request, "day")
    data = await _queues(request)
    try:
        data["outcomes"] = await in_system(request.app, lambda s: stats.outcomes(s, window))
    except OperationalError:  # the queues (Redis) still tell the operator something
        log.warning("ops: database unreachable; overview without outcomes")
        data["outcomes"] = {"window": window, "columns": list(stats.OUTCOMES), "channels": [], "businesses": [],
                            "error": "Database unreachable."}
    try:
        data["scheduler"] = await scheduler_state.read(request.app[REDIS])
    except RedisError as exc:
        data["scheduler"] = {"leader": None, "jobs": [], "late": True,
                             "error": f"Redis unreachable ({type(exc).__name__})"}
    try:
        data["webhooks"] = await in_system(request.app, stats.webhooks)
    except OperationalError:
        data["webhooks"] = {"pending": None, "failed_last_day": None, "recent_failures": [],
                            "error": "Database unreachable."}
    data["generated_at"] = datetime.now(timezone.utc).isoformat()
    return web.json_response(data)


@operator_required
async def api_queues(request: web.Request) -> web.Response:
    return web.json_response(await _queues(request))


@operator_required
async def api_throughput(request: web.Request) -> web.Response:
    window = _window(request, "hour")
    return web.json_response(await in_system(request.app, lambda s: stats.throughput(s, window)))


@operator_required
async def api_outcomes(request: web.Request) -> web.Response:
    window = _window(request, "day")
    return web.json_response(await in_system(request.app, lambda s: stats.outcomes(s, window)))


# -- message search -------------------------------------------------------

def _criteria(request: web.Request) -> dict:
    criteria = {name: request.query.get(name, "")[:200] for name in ("business", "customer", "recipient")}
    if any("\x00" in value for value in criteria.values()):  # PostgreSQL refuses NUL in any string
        raise web.HTTPBadRequest(text="Search terms cannot contain NUL characters.")
    return criteria


@operator_required
async def messages_page(request: web.Request) -> web.Response:
    criteria = _criteria(request)
    results = await in_system(request.app, lambda s: stats.search(s, **criteria))
    return _page(request, "ops/messages.html", {"page": "messages", "criteria": criteria, "results": results,
                                                "searched": any(criteria.values())})


@operator_required
async def api_messages(request: web.Request) -> web.Response:
    criteria = _criteria(request)
    return web.json_response({"messages": await in_system(request.app, lambda s: stats.search(s, **criteria))})


# -- dead letters ---------------------------------------------------------

def _queue_name(value: str | None) -> str:
    if value not in queues.known_queues():
        raise web.HTTPNotFound(text="No such queue")
    return value


async def _letters(request: web.Request, queue: str | None) -> list:
    names = [_queue_name(queue)] if queue else queues.known_queues()
    letters = []
    for name in names:
        letters.extend(await queues.dead_letters(request.app[REDIS], name))
    return sorted(letters, key=lambda letter: letter.failed_at, reverse=True)


@operator_required
async def dead_letters_page(request: web.Request) -> web.Response:
    queue = request.query.get("queue") or None
    letters = await _letters(request, queue)
    return _page(request, "ops/dead_letters.html", {
        "page": "dead_letters", "letters": letters, "queue": queue or "", "queues": queues.known_queues(),
        "notice": NOTICES.get(request.query.get("notice", ""), ""),
    })


@operator_required
async def api_dead_letters(request: web.Request) -> web.Response:
    letters = await _letters(request, request.query.get("queue") or None)
    return web.json_response({"dead_letters": [letter.as_json() for letter in letters]})


def _done(request: web.Request, queue: str, notice: str, body: dict) -> web.Response:
    if request[OPERATOR].via == "token" or wants_json(request):
        return web.json_response(body)
    raise web.HTTPSeeOther(f"/ops/dead-letters?queue={queue}&notice={notice}")


DELIVERY_ACTORS = ("deliver_message", "deliver_urgent_message")


def _message_row_id(letter: queues.DeadLetter) -> int | None:
    """Our Message row behind a dead delivery, if this is one."""
    if letter.actor in DELIVERY_ACTORS and letter.args and isinstance(letter.args[0], int):
        return letter.args[0]
    return None


@operator_required
async def retry(request: web.Request) -> web.Response:
    check_csrf(request, await read_form(request))
    queue = _queue_name(request.match_info["queue"])
    redis = request.app[REDIS]
    letter = await queues.get_dead_letter(redis, queue, request.match_info["id"])
    if letter is None:
        raise web.HTTPNotFound(text="That dead letter is gone (already retried, discarded or expired)")
    row_id = _message_row_id(letter)
    reset = False
    if row_id is not None:
        # Before the enqueue: a worker must find the row sendable again.
        reset = await in_system(request.app, lambda s: stats.reset_for_retry(s, row_id))
    new_id = await queues.retry_dead_letter(redis, queue, letter.id)
    if new_id is None:
        raise web.HTTPConflict(text="Someone else retried or discarded that dead letter first")
    log.info("operator retried dead letter %s on %s (message row %s reset: %s)", letter.id, queue, row_id, reset)
    return _done(request, queue, "retried", {"retried": letter.id, "new_id": new_id, "message_reset": reset})


@operator_required
async def discard(request: web.Request) -> web.Response:
    check_csrf(request, await read_form(request))
    queue = _queue_name(request.match_info["queue"])
    if not await queues.discard_dead_letter(request.app[REDIS], queue, request.match_info["id"]):
        raise web.HTTPNotFound(text="That dead letter is gone (already retried, discarded or expired)")
    log.info("operator discarded dead letter %s on %s", request.match_info["id"], queue)
    return _done(request, queue, "discarded", {"discarded": request.match_info["id"]})

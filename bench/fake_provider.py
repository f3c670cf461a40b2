"""A local stand-in for SendGrid and Twilio that answers after a delay.

    python -m bench.fake_provider --port 8025 --delay-ms 100

Speaks just enough of both APIs for the real SDKs (``POST /v3/mail/send`` ->
202 + ``X-Message-Id``; ``POST /2010-04-01/Accounts/{sid}/Messages.json`` ->
201 + a message resource) and counts what it *received*, keyed by our message
id (SendGrid ``custom_args``, Twilio ``StatusCallback``). A request counts when
its body has arrived, as at the real provider: a sender killed while waiting
for the answer has still sent the message.

Control (for drills): ``GET /_stats`` (``?detail=1`` adds the per-id counts),
``POST /_mode`` ``{"mode": "ok"|"503"|"429", "retry_after": 1, "delay_ms": 100}``,
``POST /_reset``.

With ``--events-url`` and ``--events-key-file`` (a PEM P-256 private key) it
also does what SendGrid does after accepting a mail: posts a signed Event
Webhook batch (``processed`` events carrying our custom_args) to the portal
every half second, retrying batches the portal did not take (it may be down).
That is how production learns that a send whose worker died did go out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import time
import re
import secrets
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

STATE = web.AppKey("state", dict)
EVENTS = web.AppKey("events", dict)
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
log = logging.getLogger("fake_provider")
DIGITS = re.compile(r"(\d+)")


def key_from_custom_args(args: dict) -> str | None:
    if not args:
        return None
    for name in sorted(args):
        if "message" in name.lower():
            return str(args[name])
    return str(next(iter(args.values())))


def sendgrid_key(payload: dict) -> str:
    for p in payload.get("personalizations") or []:
        key = key_from_custom_args(p.get("custom_args") or {})
        if key:
            return key
    return key_from_custom_args(payload.get("custom_args") or {}) or "?"


def twilio_key(callback: str) -> str:
    """Our message id from the StatusCallback URL (a query parameter or the last number)."""
    if not callback:
        return "?"
    url = urlparse(callback)
    for name, values in parse_qs(url.query).items():
        if "message" in name.lower() or name.lower() in ("m", "mid", "id"):
            return values[0]
    found = DIGITS.findall(url.path + "?" + url.query)
    return found[-1] if found else callback


def new_state(delay_ms: int) -> dict:
    return {"mode": "ok", "retry_after": 1, "delay_ms": delay_ms, "received": Counter(), "requests": 0,
            "rejected": 0, "rejected_by_status": Counter(), "first_at": None, "last_at": None}


async def _gate(state: dict, kind: str) -> web.Response | None:
    """The error answer for the current mode, or None to accept."""
    state["requests"] += 1
    mode = state["mode"]
    if mode == "ok":
        return None
    status = int(mode)
    state["rejected"] += 1
    state["rejected_by_status"][str(status)] += 1
    await asyncio.sleep(state["delay_ms"] / 1000)
    headers = {"Retry-After": str(state["retry_after"])} if status == 429 else {}
    if kind == "twilio":
        code = 20429 if status == 429 else 20500 + (status - 500)
        body = {"code": code, "message": "Too Many Requests" if status == 429 else "Service Unavailable",
                "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    else:
        body = {"errors": [{"message": "too many requests" if status == 429 else "service unavailable",
                            "field": None, "help": None}]}
    return web.json_response(body, status=status, headers=headers)


def _count(state: dict, key: str) -> None:
    state["received"][key] += 1
    now = asyncio.get_running_loop().time()
    state["first_at"] = state["first_at"] or now
    state["last_at"] = now


async def sendgrid_send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    payload = await request.json()
    error = await _gate(state, "sendgrid")
    if error is not None:
        return error
    key = sendgrid_key(payload)
    _count(state, key)
    await asyncio.sleep(state["delay_ms"] / 1000)
    x_message_id = secrets.token_urlsafe(16)[:22]
    events = request.app.get(EVENTS)
    if events is not None:  # queued even if the sender died meanwhile: the mail went out
        events["pending"].append(processed_event(payload, key, x_message_id))
    return web.Response(status=202, headers={"X-Message-Id": x_message_id})


def processed_event(payload: dict, key: str, x_message_id: str) -> dict:
    personalization = (payload.get("personalizations") or [{}])[0]
    email = ((personalization.get("to") or [{}])[0]).get("email", "")
    custom_args = {**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
    return {"event": "processed", "email": email, "timestamp": int(time.time()),
            "sg_event_id": secrets.token_urlsafe(16), "smtp-id": f"<{x_message_id}@fake.sendgrid.net>",
            "sg_message_id": f"{x_message_id}.fake-filter-1", **custom_args}


def sign(private_key: ec.EllipticCurvePrivateKey, payload: str, timestamp: str) -> str:
    signature = private_key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


async def post_events(app: web.Application):
    """Background task: flush pending events every 0.5 s; keep what the portal refused."""
    events = app[EVENTS]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        app[EVENTS]["task"] = asyncio.current_task()
        while True:
            await asyncio.sleep(0.5)
            batch, events["pending"] = events["pending"][:500], events["pending"][500:]
            if not batch:
                continue
            payload = json.dumps(batch)
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: sign(events["key"], payload, timestamp)}
            try:
                async with session.post(events["url"], data=payload, headers=headers) as resp:
                    ok = resp.status < 300
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                ok = False
            if ok:
                events["posted"] += len(batch)
            else:  # SendGrid retries failed batches for a day; we retry on the next tick
                events["failed_posts"] += 1
                events["pending"] = batch + events["pending"]


async def twilio_send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await request.post()
    error = await _gate(state, "twilio")
    if error is not None:
        return error
    _count(state, twilio_key(str(form.get("StatusCallback", ""))))
    await asyncio.sleep(state["delay_ms"] / 1000)
    sid = "SM" + secrets.token_hex(16)
    account = request.match_info["sid"]
    now = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return web.json_response({
        "sid": sid, "account_sid": account, "to": form.get("To"), "from": form.get("From"),
        "body": form.get("Body"), "status": "queued", "num_segments": "1", "direction": "outbound-api",
        "date_created": now, "date_updated": now, "date_sent": None, "error_code": None,
        "error_message": None, "price": None, "price_unit": "USD", "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json", "subresource_uris": {},
    }, status=201)


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    received: Counter = state["received"]
    body = {
        "mode": state["mode"], "requests": state["requests"], "rejected": state["rejected"],
        "rejected_by_status": dict(state["rejected_by_status"]),
        "accepted": sum(received.values()), "unique": len(received),
        "duplicated": sum(1 for c in received.values() if c > 1),
        "active_s": (state["last_at"] - state["first_at"]) if state["first_at"] else 0.0,
    }
    events = request.app.get(EVENTS)
    if events is not None:
        body["events_posted"] = events["posted"]
        body["events_pending"] = len(events["pending"])
        body["events_failed_posts"] = events["failed_posts"]
    if request.query.get("detail"):
        body["by_key"] = dict(received)
    return web.json_response(body)


async def set_mode(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await request.json()
    if data.get("mode", state["mode"]) not in ("ok", "503", "429", "500"):
        raise web.HTTPBadRequest(text="mode must be ok, 503, 429 or 500")
    for name in ("mode", "retry_after", "delay_ms"):
        if name in data:
            state[name] = data[name]
    return web.json_response({k: state[k] for k in ("mode", "retry_after", "delay_ms")})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE] = new_state(request.app[STATE]["delay_ms"])
    return web.json_response({"ok": True})


def make_app(delay_ms: int = 100, events_url: str | None = None, events_key=None) -> web.Application:
    app = web.Application(client_max_size=20 * 1024 * 1024)
    app[STATE] = new_state(delay_ms)
    if events_url and events_key is not None:
        app[EVENTS] = {"url": events_url, "key": events_key, "pending": [], "posted": 0, "failed_posts": 0}

        async def events_ctx(app):
            task = asyncio.create_task(post_events(app))
            yield
            task.cancel()

        app.cleanup_ctx.append(events_ctx)
    app.router.add_post("/v3/mail/send", sendgrid_send)
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", twilio_send)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_mode", set_mode)
    app.router.add_post("/_reset", reset)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--events-url", help="post signed SendGrid 'processed' events here")
    parser.add_argument("--events-key-file", help="PEM P-256 private key that signs them")
    args = parser.parse_args(argv)
    key = None
    if args.events_key_file:
        with open(args.events_key_file, "rb") as fh:
            key = serialization.load_pem_private_key(fh.read(), password=None)
    # A large backlog: hundreds of senders connect at once.
    web.run_app(make_app(args.delay_ms, args.events_url, key), host="127.0.0.1", port=args.port, backlog=2048,
                access_log=None, print=None)


if __name__ == "__main__":
    main()

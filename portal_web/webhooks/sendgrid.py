"""SendGrid's signed Event Webhook.

Verified with the SDK's ``EventWebhook`` (ECDSA P-256 over timestamp + raw body)
and ``SENDGRID_WEBHOOK_PUBLIC_KEY``; the signed timestamp must be within the
replay window. Each event is handled in its own transaction and de-duplicated by
``sg_event_id``, so SendGrid's retry of a batch only applies what is new.
"""

from __future__ import annotations

import binascii
import functools
import json
import logging
import time

from aiohttp import web
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sqlalchemy import select
from sqlalchemy.orm import Session

from messages.providers import feedback
from messages.providers.base import MESSAGE_ID_ARG
from messages.providers.sendgrid import NAME
from messages.registry import CRITICAL_CATEGORIES
from portal.db import scope_to, system_session
from portal.metrics import WEBHOOK_VERIFICATION_FAILURES
from portal.models import Message
from portal_web.db import run_db
from portal_web.keys import SESSIONS, SETTINGS

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300   # older signed timestamps are refused
CLOCK_SKEW_S = 10       # and so are ones from the future, beyond this much skew
BAD_ADDRESS_EVENTS = ("bounce", "dropped", "spamreport")
UNSUBSCRIBE_EVENTS = ("unsubscribe", "group_unsubscribe")
HANDLED = ("processed", "delivered", *BAD_ADDRESS_EVENTS, *UNSUBSCRIBE_EVENTS)
MAX_ID = 2**31 - 1  # message.id is a 32-bit integer on PostgreSQL
# The fields an event is read by, and how long each may be to fit where it is stored (0: not stored).
FIELD_LIMITS = {"event": 0, "sg_event_id": 0, MESSAGE_ID_ARG: 0, "sg_message_id": 100, "email": 254, "reason": 0,
                "response": 0, "type": 0}


@functools.lru_cache(maxsize=4)
def _verifier(public_key: str) -> EventWebhook:
    return EventWebhook(public_key)


def verify(public_key: str, payload: bytes, signature: str, timestamp: str, now: float | None = None) -> bool:
    if not (public_key and signature and timestamp and timestamp.isascii() and timestamp.isdigit()):
        return False
    now = time.time() if now is None else now
    if int(timestamp) < now - REPLAY_WINDOW_S or int(timestamp) > now + CLOCK_SKEW_S:
        return False
    try:
        text = payload.decode("utf-8")
        return _verifier(public_key).verify_signature(text, signature, timestamp)
    except (UnicodeDecodeError, binascii.Error, ValueError, TypeError):
        # ValueError also covers a malformed configured key: log it, it is ours to fix.
        log.warning("could not verify a SendGrid event batch", exc_info=True)
        return False


async def events(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    payload = await request.read()
    if not verify(settings.sendgrid_webhook_public_key, payload, request.headers.get(EventWebhookHeader.SIGNATURE, ""),
                  request.headers.get(EventWebhookHeader.TIMESTAMP, "")):
        WEBHOOK_VERIFICATION_FAILURES.labels("sendgrid").inc()
        log.warning("rejected a SendGrid event batch: bad, missing or stale signature")
        raise web.HTTPForbidden(text="Invalid or stale signature.")
    try:
        batch = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise web.HTTPBadRequest(text="The body is not JSON.")
    if not isinstance(batch, list) or not all(isinstance(event, dict) for event in batch):
        raise web.HTTPBadRequest(text="Expected a JSON array of event objects.")
    outcomes = await run_db(request.app, handle_batch, request.app[SESSIONS], batch)
    return web.json_response({"ok": True, "results": outcomes})


def handle_batch(factory, batch: list[dict]) -> list[str]:
    outcomes = []
    for event in batch:
        with system_session(factory) as session:
            outcomes.append(handle_event(session, event))
            session.commit()
    return outcomes


def find_message(session: Session, event: dict) -> Message | None:
    """Our message: by the id we put in custom_args, else by SendGrid's message id (the sg_message_id prefix).

    Locked, so events for one message in concurrent batches apply one after the other."""
    message = None
    ours = str(event.get(MESSAGE_ID_ARG) or "")
    if ours.isascii() and ours.isdigit() and len(ours) < 19 and int(ours) <= MAX_ID:  # isdigit() admits "²"
        message = session.get(Message, int(ours), with_for_update=True)
    if message is None:
        provider_id = str(event.get("sg_message_id") or "").split(".", 1)[0]
        if provider_id:
            message = session.scalar(select(Message).where(Message.provider == NAME, Message.provider_id == provider_id)
                                     .with_for_update())
    if message is None or message.channel != "email":
        return None
    return message


def malformed(event: dict) -> bool:
    """A NUL in a field we read (PostgreSQL refuses it in any string), or a value too long for its column."""
    for name, limit in FIELD_LIMITS.items():
        value = str(event.get(name) or "")
        if name == "sg_message_id":
            value = value.split(".", 1)[0]
        if "\x00" in value or (limit and len(value) > limit):
            return True
    return False


def handle_event(session: Session, event: dict) -> str:
    if malformed(event):
        return "malformed"  # not from SendGrid; a retry would not mend it, so no 4xx for the batch
    kind = str(event.get("event") or "")
    event_id = str(event.get("sg_event_id") or "")
    if kind not in HANDLED or not event_id:
        return "ignored"  # opens, clicks, deferrals: nothing of ours changes
    message = find_message(session, event)
    if message is None:
        return "unknown message"
    if not feedback.claim_event(session, "sendgrid", event_id):
        return "duplicate"
    scope_to(session, message.business_id)  # from here on, writes belong to this business only
    provider_id = str(event.get("sg_message_id") or "").split(".", 1)[0] or None
    address = str(event.get("email") or message.recipient)
    reason = str(event.get("reason") or event.get("response") or "")[:500]
    if kind in ("processed", "delivered"):
        status = "sent" if kind == "processed" else "delivered"
        changed = feedback.apply_status(session, message, status, f"sendgrid {kind}", provider=NAME,
                                        provider_id=provider_id)
        return status if changed else "unchanged"
    if kind == "bounce" and event.get("type") == "blocked":
        # A soft bounce (blocked by the receiving server): this message failed, the address may be fine.
        feedback.apply_status(session, message, "failed", f"sendgrid blocked: {reason}", provider=NAME,
                              provider_id=provider_id)
        return "failed"
    if kind in ("bounce", "dropped"):
        feedback.apply_status(session, message, "failed", f"sendgrid {kind}: {reason}", provider=NAME,
                              provider_id=provider_id)
        feedback.mark_email(session, message.business_id, address, _email_status(kind, reason), kind)
        return "failed"
    if kind == "spamreport":
        # It was delivered; the recipient called it spam. Keep the status, note it, stop writing.
        feedback.note(session, message, "spamreport", "recipient reported this email as spam")
        feedback.mark_email(session, message.business_id, address, "spam", "spamreport")
        return "suppressed"
    if kind in UNSUBSCRIBE_EVENTS:
        customer = message.customer
        if customer is None:
            return "ignored"
        if message.category in CRITICAL_CATEGORIES:  # sign-in links cannot be turned off
            feedback.note(session, message, kind)
            return "ignored"
        feedback.disable_preference(session, customer, message.category, "email", source=f"sendgrid_{kind}",
                                    wording=f"Unsubscribed from {message.category} emails through SendGrid ({kind}).")
        feedback.note(session, message, kind)
        return "unsubscribed"
    return "ignored"  # pragma: no cover - HANDLED lists every kind above


def _email_status(kind: str, reason: str) -> str | None:
    """What a bounce or drop says about the address (None: suppress it, but it is not broken)."""
    reason = reason.lower()
    if "spam" in reason:
        return "spam"
    if "unsubscribe" in reason:
        return None  # SendGrid's own unsubscribe list: the address works, the person said no
    if kind == "dropped" and reason.startswith("invalid"):
        return "invalid"
    return "bounced"

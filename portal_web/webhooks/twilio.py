"""Twilio webhooks: message status callbacks and inbound SMS.

Signatures are checked with the SDK's ``RequestValidator`` against the URL Twilio
was given -- ``PUBLIC_BASE_URL`` + path + query -- not the host this process sees
behind a proxy.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER, RequestValidator
from twilio.request_validator import get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from messages.providers import feedback
from messages.providers.twilio import NAME
from portal import phones
from portal.db import scope_to
from portal.metrics import WEBHOOK_VERIFICATION_FAILURES
from portal.models import Business, Customer, Message
from portal_web.db import in_system
from portal_web.forms import BODY_ERRORS
from portal_web.keys import SETTINGS

log = logging.getLogger(__name__)

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO", "AIDE"})
# Twilio's callback statuses -> ours. queued/accepted/sending still prove Twilio has the
# message, which is what an "unknown" (timed-out) send needs to hear.
STATUS_MAP = {"accepted": "sent", "queued": "sent", "sending": "sent", "sent": "sent", "delivered": "delivered",
              "undelivered": "failed", "failed": "failed", "canceled": "failed"}
MAX_ID = 2**31 - 1  # message.id is a 32-bit integer on PostgreSQL
GENERIC_HELP = {
    "en": "{name}: reply STOP to stop receiving texts, START to receive them again.{contact}",
    "fr": "{name} : répondez ARRET pour ne plus recevoir de textos, START pour les recevoir à nouveau.{contact}",
}


async def verified_form(request: web.Request) -> dict[str, str]:
    """The POSTed form if ``X-Twilio-Signature`` is genuine; 403 (counted) otherwise."""
    settings = request.app[SETTINGS]
    try:
        form = await request.post()
    except BODY_ERRORS:
        raise web.HTTPBadRequest(text="Malformed form body.") from None
    signature = request.headers.get(SIGNATURE_HEADER, "")
    url = settings.public_base_url + request.raw_path
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    if not (settings.twilio_auth_token and signature
            and RequestValidator(settings.twilio_auth_token).validate(url, form, signature, algorithm)):
        WEBHOOK_VERIFICATION_FAILURES.labels("twilio").inc()
        log.warning("rejected a Twilio webhook with a bad or missing signature for %s", request.path)
        raise web.HTTPForbidden(text="Invalid signature.")
    values = {key: str(value) for key, value in form.items()}
    if any("\x00" in key or "\x00" in value for key, value in values.items()):
        # Never from Twilio, and PostgreSQL refuses NUL in any string it would be compared with or stored as.
        raise web.HTTPBadRequest(text="Malformed form body.")
    return values


# -- status callbacks -------------------------------------------------------

async def status_callback(request: web.Request) -> web.Response:
    form = await verified_form(request)
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not status:
        raise web.HTTPBadRequest(text="MessageSid and MessageStatus are required.")
    if len(sid) > 64:  # Twilio's are 34 characters; message.provider_id holds 100
        raise web.HTTPBadRequest(text="MessageSid is not a Twilio message SID.")
    outcome = await in_system(request.app, lambda s: handle_status(s, request.query.get("mid"), form))
    return web.json_response({"ok": True, "result": outcome})


def find_message(session: Session, mid: str | None, sid: str) -> Message | None:
    """The message, locked: a callback racing another for it waits, then sees the other's status."""
    message = None
    if mid and mid.isascii() and mid.isdigit() and len(mid) < 19 and int(mid) <= MAX_ID:  # isdigit() admits "²"
        message = session.get(Message, int(mid), with_for_update=True)
    if message is None:
        message = session.scalar(select(Message).where(Message.provider_id == sid, Message.channel == "sms")
                                 .with_for_update())
    if message is None or message.channel != "sms":
        return None
    return message


def handle_status(session: Session, mid: str | None, form: dict[str, str]) -> str:
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    twilio_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    status = STATUS_MAP.get(twilio_status)
    if status is None:
        return "ignored"
    message = find_message(session, mid, sid)
    if message is None:
        return "unknown message"
    if not feedback.claim_event(session, "twilio_status", f"{sid}:{twilio_status}"):
        return "duplicate"
    scope_to(session, message.business_id)  # from here on, writes belong to this business only
    code = form.get("ErrorCode") or None
    detail = f"twilio {twilio_status}" + (f" (error {code})" if code else "")
    changed = feedback.apply_status(session, message, status, detail, provider=NAME, provider_id=sid)
    if status == "failed" and code and message.recipient:
        feedback.mark_phone(session, message.business_id, message.recipient, code)
    return status if changed else "unchanged"


# -- inbound SMS ------------------------------------------------------------

def keyword(body: str) -> str:
    """The message as a keyword: trimmed, upper case, accents and end punctuation dropped ("Arrêt." -> ARRET)."""
    text = unicodedata.normalize("NFKD", body or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"^[\s\W_]+|[\s\W_]+$", "", text).upper()


async def inbound(request: web.Request) -> web.Response:
    form = await verified_form(request)
    if not form.get("From"):
        raise web.HTTPBadRequest(text="From is required.")
    reply = await in_system(request.app, lambda s: handle_inbound(s, form))
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return web.Response(text=str(response), content_type="text/xml", charset="utf-8")


def handle_inbound(session: Session, form: dict[str, str]) -> str | None:
    """Apply a STOP/START keyword for every business that knows this number; the HELP text to reply."""
    phone, body = form["From"], form.get("Body", "")
    word = keyword(body)
    customers = feedback.customers_with(session, None, "sms", phone)
    if word in HELP_WORDS:
        return help_reply(session, customers)
    if (word not in STOP_WORDS and word not in START_WORDS) or not customers:
        return None  # nothing to change (Twilio itself confirms opt-outs and blocks later sends)
    sid = form.get("MessageSid") or form.get("SmsSid")
    if sid and not feedback.claim_event(session, "twilio_inbound", sid):
        return None  # a retried delivery of a keyword already applied
    wording = f"Replied {body.strip()!r} by SMS from {phone}"
    for customer in customers:
        if word in STOP_WORDS:
            feedback.opt_out_sms(session, customer, wording)
        else:
            feedback.opt_in_sms(session, customer, wording)
    return None


def help_reply(session: Session, customers: list[Customer]) -> str:
    customer = _most_recently_texted(session, customers)
    if customer is None:
        return "Reply STOP to stop receiving texts, START to receive them again."
    business: Business = customer.business
    if business.help_reply:
        return business.help_reply
    contact = phones.display(business.support_phone) if business.support_phone else business.support_email
    locale = "fr" if (customer.locale or business.default_locale or "en").startswith("fr") else "en"
    suffix = (f" Help: {contact}" if locale == "en" else f" Aide : {contact}") if contact else ""
    return GENERIC_HELP[locale].format(name=business.name, contact=suffix)


def _most_recently_texted(session: Session, customers: list[Customer]) -> Customer | None:
    """Several businesses may know the number: answer for the one that texted it last."""
    if not customers:
        return None
    ids = [c.id for c in customers]
    last = session.scalar(select(Message.customer_id).where(Message.customer_id.in_(ids), Message.channel == "sms")
                          .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))
    return next((c for c in customers if c.id == last), customers[0])

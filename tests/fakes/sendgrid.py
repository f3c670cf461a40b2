"""A fake of SendGrid's v3 mail/send API and its signed Event Webhook.

    POST /v3/mail/send   (JSON, "Authorization: Bearer <key>")
      -> 202, empty body, X-Message-Id header
      -> 400/401/413/429/5xx {"errors": [{"message": …, "field": …, "help": …}]}

It checks the request the way SendGrid does (personalizations, from, subject, content
order, string-only custom_args, reserved headers, attachments), so a malformed send from
our code fails here as it would in production. Event Webhook batches are signed with
ECDSA P-256 over ``timestamp + payload``, as SendGrid signs them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.server import Canned, FakeServer, SignedRequest, json_response

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RESERVED_HEADERS = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"}
STATUS_MESSAGES = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    413: "The JSON payload you have included in your request is too large.",
    429: "too many requests",
    500: "internal error",
    502: "bad gateway",
    503: "service unavailable",
}


def error(message: str, field: str | None = None, help_anchor: str | None = None) -> dict:
    return {"message": message, "field": field, "help": f"{HELP}#{help_anchor}" if help_anchor else None}


def sendgrid_keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair; the public half in SendGrid's "verification key" form (base64 DER)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_key, base64.b64encode(der).decode()


def sign_sendgrid_events(private_key: ec.EllipticCurvePrivateKey, events: list | str, *, url: str,
                         timestamp: int | str | None = None) -> SignedRequest:
    """An Event Webhook POST: ``events`` (a list, or a raw payload string) signed over timestamp + payload."""
    payload = events if isinstance(events, str) else json.dumps(events)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = private_key.sign((stamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API",
               SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp}
    return SignedRequest(url=url, body=payload.encode(), headers=headers)


def sendgrid_event(event: str, *, email: str, sg_message_id: str | None = None,
                   custom_args: dict[str, str] | None = None, categories: list[str] | None = None,
                   timestamp: int | None = None, **extra) -> dict:
    """One event as SendGrid posts it; custom_args appear as top-level keys."""
    x_message_id = (sg_message_id or secrets.token_urlsafe(16)[:22]).split(".")[0]
    body = {
        "email": email, "timestamp": timestamp or int(time.time()), "event": event,
        "smtp-id": f"<{x_message_id}@ismtpd0001p1iad2.sendgrid.net>",
        "sg_event_id": secrets.token_urlsafe(16)[:22],
        "sg_message_id": f"{x_message_id}.filterdrecv-5f8d9c7b4-2kqzl-1-65A0B1C2-3.0",
    }
    if categories:
        body["category"] = categories
    body.update({
        "delivered": {"response": "250 2.0.0 OK", "ip": "167.89.0.1", "tls": 1},
        "bounce": {"reason": "550 5.1.1 The email account that you tried to reach does not exist.",
                   "status": "5.1.1", "type": "bounce", "bounce_classification": "Invalid Address"},
        "dropped": {"reason": "Bounced Address", "status": "5.0.0"},
        "deferred": {"response": "400 try again later", "attempt": "1"},
        "group_unsubscribe": {"asm_group_id": 1},
    }.get(event, {}))
    body.update(custom_args or {})
    body.update(extra)
    return body


class FakeSendGrid(FakeServer):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key or "SG." + secrets.token_urlsafe(16) + "." + secrets.token_urlsafe(32)
        self.private_key, self.public_key = sendgrid_keypair()
        self.sent: list[dict] = []  # accepted sends: {"x_message_id": …, "body": request JSON}

    # -- scripting ---------------------------------------------------------
    def fail(self, status: int, *, retry_after: int | None = None, errors: list[dict] | None = None) -> None:
        """The next send gets SendGrid's error reply with this HTTP status."""
        headers = {}
        if status == 429:
            reset = int(time.time()) + (retry_after or 1)
            headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self.queue(Canned(status, {"errors": errors or [error(STATUS_MESSAGES.get(status, "error"))]}, headers))

    def hang(self) -> None:
        """Accept the next send but answer only after the client has timed out."""
        self.queue(Canned(202, hang=True))

    @property
    def sends(self) -> list:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v3/mail/send"]

    def configure(self, settings):
        return settings.replace(email_provider="sendgrid", sendgrid_api_key=self.api_key,
                                sendgrid_api_host=self.url, sendgrid_webhook_public_key=self.public_key)

    # -- event webhook -----------------------------------------------------
    def event_for(self, event: str, sent: dict | None = None, **extra) -> dict:
        """An event about an accepted send (the last one by default), with its custom_args."""
        sent = sent or self.sent[-1]
        body = sent["body"]
        personalization = body["personalizations"][0]
        custom_args = {**body.get("custom_args", {}), **personalization.get("custom_args", {})}
        return sendgrid_event(event, email=personalization["to"][0]["email"], sg_message_id=sent["x_message_id"],
                              custom_args=custom_args, categories=body.get("categories"), **extra)

    def events(self, url: str, events: list | str, *, timestamp: int | str | None = None) -> SignedRequest:
        return sign_sendgrid_events(self.private_key, events, url=url, timestamp=timestamp)

    # -- the API -----------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=30 * 1024 * 1024)
        app.router.add_post("/v3/mail/send", self._send)
        return app

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self._record(request, raw)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return json_response(401, {"errors": [error(STATUS_MESSAGES[401])]})
        canned = self._next_canned()
        if canned is not None and not canned.hang:
            return json_response(canned.status, canned.body, canned.headers)
        if len(raw) > 20 * 1024 * 1024:
            return json_response(413, {"errors": [error(STATUS_MESSAGES[413])]})
        try:
            body = json.loads(raw)
        except ValueError:
            return json_response(400, {"errors": [error("Bad Request", None, "-Request-Body-Parameters")]})
        problems = validate_mail(body)
        if problems:
            return json_response(400, {"errors": problems})
        x_message_id = secrets.token_urlsafe(16)[:22]
        self.sent.append({"x_message_id": x_message_id, "body": body})
        if canned is not None and canned.hang:
            await self._hold()
        return web.Response(status=202, headers={"X-Message-Id": x_message_id})


def validate_mail(body) -> list[dict]:
    """The checks SendGrid makes on a v3 mail/send body that our sender could get wrong."""
    if not isinstance(body, dict):
        return [error("Bad Request", None, "-Request-Body-Parameters")]
    problems = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problems.append(error("The personalizations field is required and must have at least one personalization.",
                              "personalizations", "-Personalizations-Errors"))
    else:
        for i, p in enumerate(personalizations):
            to = p.get("to") if isinstance(p, dict) else None
            if not isinstance(to, list) or not to:
                problems.append(error("The to array is required for all personalization objects, and must have at "
                                      "least one email object with a valid email address.",
                                      f"personalizations.{i}.to", "message.personalizations.to"))
                continue
            for j, rcpt in enumerate(to):
                if not EMAIL_RE.match(str((rcpt or {}).get("email", ""))):
                    problems.append(error("Does not contain a valid address.",
                                          f"personalizations.{i}.to.{j}.email", "message.personalizations.to"))
    sender = body.get("from")
    if not isinstance(sender, dict) or not EMAIL_RE.match(str(sender.get("email", ""))):
        problems.append(error("The from email does not contain a valid address.", "from.email", "message.from"))
    has_subject = bool(body.get("subject")) or (
        isinstance(personalizations, list) and personalizations
        and all(isinstance(p, dict) and p.get("subject") for p in personalizations))
    if not has_subject and not body.get("template_id"):
        problems.append(error("The subject is required. You can get around this requirement if you use a template "
                              "with a subject defined or if every personalization has a subject defined.",
                              "subject", "message.subject"))
    content = body.get("content")
    if not body.get("template_id"):
        if not isinstance(content, list) or not content:
            problems.append(error("Unless a valid template_id is provided, the content parameter is required. There "
                                  "must be at least one defined content block.", "content", "message.content"))
        else:
            types = [c.get("type") for c in content]
            if "text/html" in types and "text/plain" in types and types.index("text/html") < types.index("text/plain"):
                problems.append(error("If present, text/plain and text/html may only be provided in this order.",
                                      "content", "message.content"))
            for i, block in enumerate(content):
                if not block.get("value"):
                    problems.append(error("The content value must be a string at least one character in length.",
                                          f"content.{i}.value", "message.content.value"))
    for name, value in (body.get("custom_args") or {}).items():
        if not isinstance(value, str):
            problems.append(error(f"Invalid type. Expected: string, given: {type(value).__name__}.",
                                  f"custom_args.{name}", "message.custom_args"))
    for name, value in (body.get("headers") or {}).items():
        if name.lower() in RESERVED_HEADERS:
            problems.append(error(f"The header {name} is reserved and cannot be set.", "headers", "message.headers"))
        elif not isinstance(value, str):
            problems.append(error("Invalid type. Expected: string", f"headers.{name}", "message.headers"))
    categories = body.get("categories") or []
    if len(categories) > 10 or any(not isinstance(c, str) or len(c) > 255 for c in categories):
        problems.append(error("Too many categories, or a category is not a string of at most 255 characters.",
                              "categories", "message.categories"))
    for i, attachment in enumerate(body.get("attachments") or []):
        try:
            base64.b64decode(attachment.get("content", ""), validate=True)
        except ValueError:
            problems.append(error("The attachment content must be base64 encoded.",
                                  f"attachments.{i}.content", "message.attachments.content"))
        if not attachment.get("filename"):
            problems.append(error("The attachment filename parameter is required.",
                                  f"attachments.{i}.filename", "message.attachments.filename"))
    return problems

"""A fake of Twilio's Messages API, speaking its real request, response and error shapes.

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   (form-encoded, HTTP Basic auth)
      -> 201 {"sid": "SM…", "status": "queued", …}
      -> 4xx/5xx {"code": 21610, "message": …, "more_info": …, "status": 400}

Script the next replies with ``fail(code)``, ``fail_status(503)``, ``hang()`` or ``queue(Canned(...))``;
every request is kept in ``requests`` (``sends`` counts the Messages.json POSTs).
Status callbacks and inbound messages come back as ``SignedRequest``s signed with the
SDK's ``RequestValidator.compute_signature``.
"""

from __future__ import annotations

import base64
import re
import secrets
from email.utils import formatdate
from urllib.parse import urlencode

from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.fakes.server import Canned, FakeServer, SignedRequest, json_response

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# The real codes and messages (https://www.twilio.com/docs/api/errors).
ERRORS = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
    21211: (400, "Invalid 'To' Phone Number"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
}


def error_body(code: int, status: int | None = None, message: str | None = None) -> dict:
    default_status, default_message = ERRORS.get(code, (400, "Error"))
    return {"code": code, "message": message or default_message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status or default_status}


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def sign_twilio(auth_token: str, url: str, params: dict[str, str], *, headers: dict | None = None) -> SignedRequest:
    """Form-encode ``params`` and sign them for ``url`` exactly as Twilio does."""
    signature = RequestValidator(auth_token).compute_signature(url, params)
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
                   "User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": secrets.token_hex(16)}
    all_headers.update(headers or {})
    return SignedRequest(url=url, body=urlencode(params).encode(), headers=all_headers)


def twilio_status_callback(
    auth_token: str, url: str, *, message_sid: str, status: str, to: str, from_: str,
    account_sid: str = "AC" + "0" * 32, error_code: int | str | None = None,
) -> SignedRequest:
    """A message status callback (``MessageStatus`` sent/delivered/undelivered/failed…)."""
    params = {"SmsSid": message_sid, "SmsStatus": status, "MessageStatus": status, "To": to,
              "MessageSid": message_sid, "AccountSid": account_sid, "From": from_, "ApiVersion": API_VERSION}
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return sign_twilio(auth_token, url, params)


def inbound_sms(
    auth_token: str, url: str, *, from_: str, to: str, body: str,
    account_sid: str = "AC" + "0" * 32, message_sid: str | None = None,
) -> SignedRequest:
    """An incoming SMS as Twilio posts it to the number's messaging webhook."""
    sid = message_sid or new_sid("SM")
    params = {"ToCountry": "CA", "ToState": "QC", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "MONTREAL",
              "FromZip": "", "SmsSid": sid, "FromState": "QC", "SmsStatus": "received", "FromCity": "MONTREAL",
              "Body": body, "FromCountry": "CA", "To": to, "ToZip": "", "NumSegments": "1",
              "MessageSid": sid, "AccountSid": account_sid, "From": from_, "ApiVersion": API_VERSION}
    return sign_twilio(auth_token, url, params)


class FakeTwilio(FakeServer):
    def __init__(self, account_sid: str | None = None, auth_token: str | None = None,
                 from_number: str = "+15005550006") -> None:
        super().__init__()
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.from_number = from_number
        self.messages: dict[str, dict] = {}  # sid -> message resource, incl. "status_callback"

    # -- scripting ---------------------------------------------------------
    def fail(self, code: int, *, status: int | None = None, retry_after: int | None = None,
             message: str | None = None) -> None:
        """The next send gets Twilio's real error for ``code`` (20429 comes with HTTP 429)."""
        body = error_body(code, status, message)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.queue(Canned(body["status"], body, headers))

    def fail_status(self, status: int = 500) -> None:
        """A 5xx from Twilio's edge."""
        self.fail(20503 if status == 503 else 20500, status=status)

    def hang(self) -> None:
        """Accept the next message but answer only after the client has timed out."""
        self.queue(Canned(201, hang=True))

    @property
    def sends(self) -> list:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    @property
    def last_sid(self) -> str:
        return list(self.messages)[-1]

    def configure(self, settings):
        """``settings`` pointing the real SDK at this fake."""
        return settings.replace(sms_provider="twilio", twilio_api_base=self.url,
                                twilio_account_sid=self.account_sid, twilio_auth_token=self.auth_token,
                                twilio_from_number=self.from_number)

    # -- callbacks ---------------------------------------------------------
    def status_callback(self, sid: str, status: str, *, error_code: int | str | None = None,
                        url: str | None = None) -> SignedRequest:
        """The signed status callback Twilio would post for message ``sid``."""
        msg = self.messages[sid]
        target = url or msg["status_callback"]
        if not target:
            raise ValueError(f"message {sid} has no StatusCallback")
        msg["status"] = status
        return twilio_status_callback(self.auth_token, target, message_sid=sid, status=status, to=msg["to"],
                                      from_=msg["from"], account_sid=self.account_sid, error_code=error_code)

    def inbound(self, url: str, *, from_: str, body: str) -> SignedRequest:
        return inbound_sms(self.auth_token, url, from_=from_, to=self.from_number, body=body,
                           account_sid=self.account_sid)

    # -- the API -----------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{msid}.json", self._fetch)
        return app

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token and request.match_info["sid"] == user

    async def _create(self, request: web.Request) -> web.Response:
        raw = await request.read()
        rec = self._record(request, raw)
        if not self._authorised(request):
            return json_response(401, error_body(20003))
        canned = self._next_canned()
        if canned is not None and not canned.hang:
            return json_response(canned.status, canned.body, canned.headers)
        form = rec.form
        for name, code in (("To", 21604), ("From", 21603), ("Body", 21602)):
            if not form.get(name):
                return json_response(400, error_body(code))
        if not E164.match(form["To"]):
            return json_response(400, error_body(21211, message=f"The 'To' number {form['To']} is not a valid phone number."))
        resource = self._resource(form)
        self.messages[resource["sid"]] = resource
        if canned is not None and canned.hang:
            await self._hold()
        return json_response(201, {k: v for k, v in resource.items() if k != "status_callback"})

    async def _fetch(self, request: web.Request) -> web.Response:
        self._record(request, b"")
        if not self._authorised(request):
            return json_response(401, error_body(20003))
        msg = self.messages.get(request.match_info["msid"])
        if msg is None:
            return json_response(404, error_body(20404))
        return json_response(200, {k: v for k, v in msg.items() if k != "status_callback"})

    def _resource(self, form: dict[str, str]) -> dict:
        sid = new_sid("SM")
        now = formatdate(usegmt=True).replace("GMT", "+0000")
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": form["Body"],
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": form["From"], "messaging_service_sid": None,
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
            "status": "queued", "subresource_uris": {"media": f"{base}/Media.json"}, "to": form["To"],
            "uri": f"{base}.json", "status_callback": form.get("StatusCallback"),
        }

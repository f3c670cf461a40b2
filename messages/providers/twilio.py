"""SMS through Twilio's official SDK.

The SDK always builds ``https://api.twilio.com/...`` URLs; our http client rewrites
that prefix to ``TWILIO_API_BASE`` (tests point it at a local fake) and applies
``PROVIDER_TIMEOUT``. Every status callback carries our message id in its URL
(``/webhooks/twilio/status?mid=…``), so a send that timed out can still be reconciled.
"""

from __future__ import annotations

import threading

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from messages.providers.base import SendResult, Sms
from messages.providers.http import retry_after
from portal.errors import PermanentProviderError, TransientProviderError, UnknownDeliveryError

NAME = "twilio"
TWILIO_API = "https://api.twilio.com"
STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"

# What an error code (from the API or a status callback) says about the number itself.
PHONE_STATUS_BY_CODE = {
    21610: "opted_out",   # the recipient replied STOP
    21211: "invalid",     # not a valid phone number
    30005: "invalid",     # unknown destination handset
    21614: "not_mobile",  # not SMS-capable (landline)
    30006: "not_mobile",  # landline or unreachable carrier
}


def status_callback_url(public_base_url: str, message_id: int) -> str:
    return f"{public_base_url.rstrip('/')}{STATUS_PATH}?mid={int(message_id)}"


class RebasedHttpClient(TwilioHttpClient):
    """The SDK's own requests-based client, sent to another API base, with a timeout.

    It remembers the last response's headers per thread: ``TwilioRestException``
    drops them, and a 429 is only useful with its ``Retry-After``.
    """

    def __init__(self, api_base: str, timeout: float):
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self._local = threading.local()

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_API):
            url = self.api_base + url[len(TWILIO_API):]
        self._local.headers = None
        response = super().request(method, url, *args, **kwargs)
        self._local.headers = response.headers
        return response

    @property
    def last_headers(self):
        return getattr(self._local, "headers", None)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


class TwilioSmsSender:
    name = NAME

    def __init__(self, settings):
        self.from_number = settings.twilio_from_number
        self.public_base_url = settings.public_base_url
        self.http = RebasedHttpClient(settings.twilio_api_base, settings.provider_timeout_s)
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                             http_client=self.http, environment={})

    def send_sms(self, sms: Sms) -> SendResult:
        callback = sms.status_callback
        if callback is None and sms.message_id is not None:
            callback = status_callback_url(self.public_base_url, sms.message_id)
        try:
            created = self.client.messages.create(to=sms.to, from_=sms.sender or self.from_number, body=sms.body,
                                                  **({"status_callback": callback} if callback else {}))
        except TwilioRestException as exc:
            raise self._classify(exc) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise TransientProviderError(f"Twilio: could not connect ({exc})") from exc
        except requests.exceptions.Timeout as exc:
            raise UnknownDeliveryError(f"Twilio: no answer within the timeout; the message may have been sent ({exc})") from exc
        except (requests.exceptions.SSLError, requests.exceptions.ProxyError) as exc:
            # The TLS handshake or the proxy failed, almost always before the request went out. As
            # "unknown" it would wait forever for a callback Twilio never sends: retry it instead.
            raise TransientProviderError(f"Twilio: could not connect ({exc})") from exc
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                raise TransientProviderError(f"Twilio: could not connect ({exc})") from exc
            raise UnknownDeliveryError(f"Twilio: connection lost after sending; the message may have been sent ({exc})") from exc
        except (TwilioException, requests.exceptions.RequestException) as exc:
            # e.g. an unreadable 2xx body: Twilio probably accepted the message.
            raise UnknownDeliveryError(f"Twilio: unexpected reply ({exc!r})") from exc
        return SendResult(NAME, created.sid)

    def _classify(self, exc: TwilioRestException):
        code = exc.code or exc.status
        message = f"Twilio {exc.status} error {exc.code}: {exc.msg}"
        if exc.status == 429 or exc.code == 20429 or exc.status >= 500:
            return TransientProviderError(message, code=code, retry_after=retry_after(self.http.last_headers))
        if exc.status in (401, 403):
            # 20003 and the like: our credentials, not the message. Retried with backoff, then
            # dead-lettered for /ops to retry once they are fixed (failing for good would lose it).
            return TransientProviderError(f"{message} (check TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN)", code=code)
        return PermanentProviderError(message, code=code)

    def close(self) -> None:
        self.http.close()


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the TCP connection was never made (refused, DNS): the request did not go out."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
    return isinstance(reason, (NewConnectionError, NameResolutionError, ConnectionRefusedError))

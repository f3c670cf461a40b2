"""Email through SendGrid's official SDK (v3 mail/send).

Our message id travels in ``custom_args`` (``portal_message_id``), which SendGrid
echoes in every Event Webhook event; the response's ``X-Message-Id`` is the
provider id (events carry it as the prefix of ``sg_message_id``).
"""

from __future__ import annotations

import base64
import http.client
import socket
import urllib.error

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment, Category, CustomArg, Disposition, FileContent, FileName, FileType, From, Header, Mail, ReplyTo, To,
)

from messages.providers.base import MESSAGE_ID_ARG, Email, SendResult
from messages.providers.http import retry_after
from portal.errors import PermanentProviderError, TransientProviderError, UnknownDeliveryError

NAME = "sendgrid"
EVENTS_PATH = "/webhooks/sendgrid/events"


def build_mail(email: Email) -> Mail:
    mail = Mail(from_email=From(email.sender, email.sender_name), to_emails=To(email.to), subject=email.subject,
                plain_text_content=email.text, html_content=email.html or None)
    if email.reply_to:
        mail.reply_to = ReplyTo(email.reply_to)
    for name, value in email.headers.items():
        mail.header = Header(name, value)
    for category in email.categories[:10]:  # SendGrid refuses more than 10
        mail.category = Category(category)
    custom_args = {k: str(v) for k, v in email.custom_args.items()}  # SendGrid accepts strings only
    if email.message_id is not None:
        custom_args.setdefault(MESSAGE_ID_ARG, str(email.message_id))
    for key, value in custom_args.items():
        mail.custom_arg = CustomArg(key, value)
    for filename, content_type, data in email.attachments:
        mail.attachment = Attachment(FileContent(base64.b64encode(data).decode()), FileName(filename),
                                     FileType(content_type), Disposition("attachment"))
    return mail


class SendGridEmailSender:
    name = NAME

    def __init__(self, settings):
        self.api = SendGridAPIClient(settings.sendgrid_api_key, host=settings.sendgrid_api_host.rstrip("/"))
        self.api.client.timeout = settings.provider_timeout_s  # propagated to every request it builds

    def send_email(self, email: Email) -> SendResult:
        try:
            body = build_mail(email).get()
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # The SDK's helpers refuse it (e.g. a recipient with no address): SendGrid would too.
            raise PermanentProviderError(f"SendGrid: cannot build this email ({exc!r})", code="invalid") from exc
        try:
            response = self.api.send(body)
        except HTTPError as exc:
            raise _classify(exc) from exc
        except urllib.error.URLError as exc:
            # Raised while connecting or writing the request: it did not go out whole.
            raise TransientProviderError(f"SendGrid: could not connect ({exc.reason})") from exc
        except (TimeoutError, socket.timeout, http.client.HTTPException, ConnectionError) as exc:
            # Raised while waiting for the answer: SendGrid may have accepted the mail.
            raise UnknownDeliveryError(f"SendGrid: no answer; the email may have been sent ({exc!r})") from exc
        provider_id = (response.headers.get("X-Message-Id") or "") if response.headers else ""
        return SendResult(NAME, provider_id)

    def close(self) -> None:
        pass  # urllib opens a connection per request


def _classify(exc: HTTPError):
    status = int(exc.status_code)
    detail = _first_error(exc)
    message = f"SendGrid {status}: {detail}"
    if status == 429 or status >= 500:
        return TransientProviderError(message, code=status, retry_after=retry_after(exc.headers))
    if status in (401, 403):
        # Our key is wrong or lacks a permission, not the email: retried with backoff, then
        # dead-lettered for /ops to retry once the key is fixed (failing for good would lose it).
        return TransientProviderError(f"{message} (check SENDGRID_API_KEY)", code=status)
    return PermanentProviderError(message, code=status)


def _first_error(exc: HTTPError) -> str:
    try:
        errors = exc.to_dict.get("errors") or []
        first = errors[0]
        field = f" ({first['field']})" if first.get("field") else ""
        return f"{first.get('message')}{field}"
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return str(getattr(exc, "reason", "") or "error")

"""The provider Protocol: SendGrid, Twilio and the dev outbox all look like this.

Senders raise ``portal.errors`` provider errors:
- ``TransientProviderError`` (429/20429, 5xx, connection refused before sending, and 401/403:
  our credentials, not the message): retry, honouring ``retry_after`` seconds when the provider
  gave one, then the dead-letter queue;
- ``PermanentProviderError`` (21211, 21610, 21614, SendGrid 400): fail now, ``code`` says why;
- ``UnknownDeliveryError`` (timeout after the request went out): don't resend, reconcile from callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# The custom_args key (SendGrid) that carries our Message id; events echo it back as a top-level key.
MESSAGE_ID_ARG = "portal_message_id"


@dataclass
class Email:
    to: str
    subject: str
    text: str
    html: str | None
    sender: str
    sender_name: str | None = None
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    custom_args: dict[str, str] = field(default_factory=dict)  # carries our message id
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # (filename, content type, data)
    # Optional: our Message id. SendGrid puts it in custom_args (MESSAGE_ID_ARG) when not already there.
    message_id: int | None = None


@dataclass
class Sms:
    to: str
    body: str
    sender: str
    status_callback: str | None = None  # carries our message id
    # Optional: our Message id. Twilio builds the StatusCallback URL from it when status_callback is None.
    message_id: int | None = None


@dataclass
class SendResult:
    provider: str
    provider_id: str


class EmailSender(Protocol):
    name: str

    def send_email(self, email: Email) -> SendResult: ...


class SmsSender(Protocol):
    name: str

    def send_sms(self, sms: Sms) -> SendResult: ...

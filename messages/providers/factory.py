"""Pick the configured senders (EMAIL_PROVIDER / SMS_PROVIDER).

Each call builds a new sender; a worker may keep one per process and ``close()`` it at exit.
"""

from __future__ import annotations

from messages.providers.base import EmailSender, SmsSender
from portal.errors import SettingsError


def email_sender(settings) -> EmailSender:
    if settings.email_provider == "sendgrid":
        from messages.providers.sendgrid import SendGridEmailSender

        return SendGridEmailSender(settings)
    if settings.email_provider == "outbox":
        from messages.providers.outbox import OutboxSender

        return OutboxSender(settings.outbox_dir)
    raise SettingsError(f"EMAIL_PROVIDER must be outbox or sendgrid, got {settings.email_provider!r}")


def sms_sender(settings) -> SmsSender:
    if settings.sms_provider == "twilio":
        from messages.providers.twilio import TwilioSmsSender

        return TwilioSmsSender(settings)
    if settings.sms_provider == "outbox":
        from messages.providers.outbox import OutboxSender

        return OutboxSender(settings.outbox_dir)
    raise SettingsError(f"SMS_PROVIDER must be outbox or twilio, got {settings.sms_provider!r}")

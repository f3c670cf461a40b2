"""The dev "outbox" provider: each email or SMS becomes a file under OUTBOX_DIR
(listed at ``/_dev/outbox``). Its provider id is the outbox file's name."""

from __future__ import annotations

from email.utils import formataddr
from pathlib import Path

from messages.outbox_files import write_outbox
from messages.providers.base import MESSAGE_ID_ARG, Email, SendResult, Sms

NAME = "outbox"


class OutboxSender:
    name = NAME

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def send_email(self, email: Email) -> SendResult:
        sender = formataddr((email.sender_name, email.sender)) if email.sender_name else email.sender
        headers = dict(email.headers)
        if email.reply_to:
            headers.setdefault("Reply-To", email.reply_to)
        name = write_outbox(
            self.directory, channel="email", to=email.to, text=email.text, subject=email.subject, html=email.html,
            message_id=email.message_id if email.message_id is not None else email.custom_args.get(MESSAGE_ID_ARG),
            sender=sender, headers=headers, attachments=email.attachments,
        )
        return SendResult(NAME, name)

    def send_sms(self, sms: Sms) -> SendResult:
        name = write_outbox(self.directory, channel="sms", to=sms.to, text=sms.body, sender=sms.sender,
                            message_id=sms.message_id)
        return SendResult(NAME, name)

    def close(self) -> None:
        pass

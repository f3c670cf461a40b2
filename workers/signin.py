"""Sign-in link requests, handled off the web request.

The web handler only validates the form, counts the request against the rate
limits and enqueues ``request_signin_link``; it never looks the customer up.
So its response is the same, byte for byte and in timing, whether or not the
email or phone belongs to a customer. This actor does the lookup and, for a
known customer, queues the ``signin_link`` notice (the token is minted when
the message is sent, so only its hash is ever stored).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dramatiq
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import phones
from portal.db import tenant_session
from portal.errors import ValidationError
from portal.models import Customer, Message
from portal.outbox import queue_notice
from workers.messaging import URGENT_PRIORITY

log = logging.getLogger(__name__)


@dataclass
class Config:
    session_factory: object = None


_config = Config()


def configure(*, session_factory=None) -> None:
    """Tests and worker start-up; otherwise built from the environment on first use."""
    if session_factory is not None:
        _config.session_factory = session_factory


def _factory():
    if _config.session_factory is None:
        from portal.db import worker_session_factory
        from portal.settings import load_settings

        settings = load_settings()
        _config.session_factory = worker_session_factory(settings.database_url, settings.worker_threads)
    return _config.session_factory


def parse_identifier(raw: str | None) -> tuple[str, str]:
    """("email", lower-cased address) or ("phone", E.164); ValidationError otherwise."""
    value = (raw or "").strip()
    if not value or len(value) > 254:
        raise ValidationError("Enter your email address or mobile phone number.", {"identifier": "required"})
    if "@" in value:
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError:
            raise ValidationError("Enter a valid email address.", {"identifier": "email"}) from None
        return "email", value.lower()
    number = phones.e164(value)
    if number is None:
        raise ValidationError("Enter a valid phone number.", {"identifier": "phone"})
    return "phone", number


def find_customer(session: Session, kind: str, value: str) -> Customer | None:
    """The customer with this email (any case) or phone, in the session's business."""
    column = func.lower(Customer.email) if kind == "email" else Customer.phone
    return session.scalar(select(Customer).where(column == value).order_by(Customer.id).limit(1))


def send_signin_link(session: Session, kind: str, value: str, locale: str, request_id: str,
                     return_to: str | None = None) -> list[Message]:
    """Queue a sign-in link to the channel the customer typed; nothing for an unknown one.

    ``return_to``: the portal page the link leads to once used (checked again when composed)."""
    customer = find_customer(session, kind, value)
    if customer is None:
        return []
    channel = "email" if kind == "email" else "sms"
    params = {"purpose": "signin", "locale": locale}
    if return_to:
        params["next"] = return_to
    messages = queue_notice(session, kind="signin_link", customer=customer, key=f"signin:{request_id}",
                            params=params, channels=[channel])
    for message in messages:
        # The language of the page the link was asked from (/signin or /connexion).
        if message.status == "queued":
            message.locale = locale
    return messages


@dramatiq.actor(queue_name="urgent", max_retries=3, min_backoff=1000, max_backoff=10_000, priority=URGENT_PRIORITY)
def request_signin_link(business_id: int, identifier: str, locale: str, request_id: str,
                        return_to: str | None = None) -> None:
    try:
        kind, value = parse_identifier(identifier)
    except ValidationError:
        return
    with tenant_session(_factory(), business_id) as session:
        send_signin_link(session, kind, value, locale, request_id, return_to if isinstance(return_to, str) else None)
        session.commit()


def reset() -> None:
    """Forget the configured session factory (tests)."""
    _config.session_factory = None

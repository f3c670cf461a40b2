"""Message delivery: ``deliver_message(message_id)`` on the "messages" queue, and
``deliver_urgent_message`` on the "urgent" queue for kinds a customer is waiting for
(sign-in links), served first.

One attempt per run, in three steps, with no transaction open while the
provider is called:

1. In one transaction: load the row (anything but queued, or sending with an
   expired lease, is done already: a redelivered job does nothing); check it
   still makes sense (booking cancelled or changed, preferences, consent,
   suppressions -> skipped with the reason); quiet hours (wait: ``not_before``
   plus a delayed re-enqueue; or skip when the window opens after the
   appointment); render (a sign-in link's token is minted here); then claim
   the row with one guarded UPDATE (status sending, a lease, attempts + 1) and
   commit. Of two workers holding the same job, one claims, the other stops.
2. Call the provider.
3. Record the outcome:
   - sent: provider id, status sent (a status callback that got there first is
     not overwritten);
   - ``TransientProviderError`` (429, 5xx, connection refused): back to queued and
     retried by Dramatiq (``Retry`` with a delay: the provider's Retry-After, else
     exponential backoff) until ``max_attempts``; then the row is failed and the
     job raises ``DeliveryFailed`` so Dramatiq puts it in the dead-letter queue;
   - ``PermanentProviderError``: failed at once, no retry, the contact marked
     (21610 STOP -> suppression + phone opted out, 21211 invalid, 21614 not
     mobile, SendGrid 400 -> email invalid);
   - ``UnknownDeliveryError`` (timeout after the request went out): status
     unknown, never re-sent; the provider's status callback settles it.

A worker killed mid-send leaves the row "sending": the redelivered job waits
for the lease (``SENDING_LEASE``) to end, and only re-sends if no status
callback has settled the row by then.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import dramatiq
from jinja2 import TemplateError
from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.orm import joinedload

from messages import compose, quiet_hours, registry
from messages.types import Skip
from portal import events
from portal.db import system_session
from portal.errors import PermanentProviderError, ProviderError, TransientProviderError, UnknownDeliveryError
from portal.metrics import MESSAGES
from portal.models import Booking, Business, Customer, Message, utcnow
from portal.outbox import add_history, enqueue, record_status

log = logging.getLogger(__name__)

# A retried job arriving a little before ``not_before`` (clocks, rounding) is not held back again.
NOT_BEFORE_SLACK = timedelta(seconds=2)
# The lease of an urgent send (a sign-in link, waited for and good for minutes only): after a
# worker crash it is tried again after about a minute, not SENDING_LEASE; a second link is harmless.
URGENT_LEASE_S = 60


class DeliveryFailed(Exception):
    """Retries exhausted; the row is failed and Dramatiq dead-letters the job with this error."""


@dataclass
class Config:
    settings: object = None
    session_factory: object = None
    email_sender: object = None
    sms_sender: object = None
    max_attempts: int = 6
    backoff_base_s: float = 30.0
    backoff_max_s: float = 3600.0
    max_delay_s: float = 12 * 3600  # longest a job waits in the broker (quiet hours, leases)


_config = Config()


def configure(settings=None, *, email_sender=None, sms_sender=None, session_factory=None,
              max_attempts: int | None = None, backoff_base_s: float | None = None) -> None:
    """Set what the actor uses; anything not given is built from the environment on first use."""
    if settings is not None:
        _config.settings = settings
    if email_sender is not None:
        _config.email_sender = email_sender
    if sms_sender is not None:
        _config.sms_sender = sms_sender
    if session_factory is not None:
        _config.session_factory = session_factory
    if max_attempts is not None:
        _config.max_attempts = max_attempts
    if backoff_base_s is not None:
        _config.backoff_base_s = backoff_base_s


def reset() -> None:
    """Forget everything configured (tests)."""
    global _config
    _config = Config()


def _settings():
    if _config.settings is None:
        from portal.settings import load_settings

        _config.settings = load_settings()
    return _config.settings


def _factory():
    if _config.session_factory is None:
        from portal.db import worker_session_factory

        _config.session_factory = worker_session_factory(_settings().database_url, _settings().worker_threads)
    return _config.session_factory


def _sender(channel: str):
    from messages.providers import factory

    if channel == "email":
        if _config.email_sender is None:
            _config.email_sender = factory.email_sender(_settings())
        return _config.email_sender
    if _config.sms_sender is None:
        _config.sms_sender = factory.sms_sender(_settings())
    return _config.sms_sender


def backoff_s(attempts: int, retry_after: float | None = None) -> float:
    """Delay before the next attempt: the provider's Retry-After if it gave one, else exponential."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), _config.backoff_max_s)
    return min(_config.backoff_base_s * (2 ** max(attempts - 1, 0)), _config.backoff_max_s)


def _retry_when(retries: int, exc: BaseException) -> bool:
    if isinstance(exc, DeliveryFailed):
        return False  # -> dead-letter queue
    if isinstance(exc, dramatiq.Retry):
        return retries < _config.max_attempts + 2  # the row's attempt count is the real bound
    return retries < 5  # database down and the like: Dramatiq's own backoff


def _later(message_id: int, seconds: float, kind: str) -> None:
    seconds = max(1.0, min(seconds, _config.max_delay_s))
    enqueue(message_id, delay_ms=int(seconds * 1000), urgent=registry.is_urgent(kind))


def _live(session, business_id: int, customer_id: int | None, message_id: int, kind: str, channel: str,
          status: str) -> None:
    # An open portal page shows the new status (same event as the delivery webhooks send).
    if customer_id is not None:
        events.emit(session, business_id, customer_id, "message_status",
                    {"message_id": message_id, "kind": kind, "channel": channel, "status": status})


def _finish(session, message: Message, status: str, detail: str | None) -> str:
    record_status(session, message, status, detail)
    message.lease_until = None
    _live(session, message.business_id, message.customer_id, message.id, message.kind, message.channel, status)
    session.commit()
    MESSAGES.labels(status=status, channel=message.channel).inc()
    return status


def lease_s(settings, urgent: bool) -> float:
    """How long a claimed send is left to its worker before another may try it.

    It must outlast a live worker's provider call (``PROVIDER_TIMEOUT``): never under three of them.
    """
    if not urgent:
        return settings.sending_lease_s
    return min(settings.sending_lease_s, max(URGENT_LEASE_S, 3 * settings.provider_timeout_s))


def _local(moment: datetime, tz) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _quiet_hours(session, message: Message, now: datetime) -> tuple[str, datetime] | None:
    """("wait", until) or ("skip", until) when quiet hours hold this SMS back; None to send now."""
    customer = session.get(Customer, message.customer_id)
    business = session.get(Business, message.business_id)
    opens = quiet_hours.next_open(now, quiet_hours.zone(customer.timezone, business.timezone), business)
    if opens is None:
        return None
    booking = session.get(Booking, message.booking_id) if message.booking_id else None
    if booking is not None and opens >= booking.starts_at:
        return "skip", opens
    return "wait", opens


# The statements of every send, built once: constructing them costs as much as running them.
_LOAD = (
    select(Message, Booking)
    .outerjoin(Booking, Booking.id == Message.booking_id)
    .options(joinedload(Message.customer), joinedload(Booking.service), joinedload(Booking.provider))
    .where(Message.id == bindparam("message_id"))
)
# Core statements on the table (not the ORM entity) skip the ORM's bulk
# machinery, which costs more than these one-row statements themselves.
_MESSAGE = Message.__table__
_M = _MESSAGE.c
_CLAIM = (
    update(_MESSAGE)
    .where(_M.id == bindparam("message_id"),
           or_(_M.status == "queued",
               and_(_M.status == "sending",
                    or_(_M.lease_until.is_(None), _M.lease_until <= bindparam("now")))))
    .values(status="sending", lease_until=bindparam("lease_until"), attempts=_M.attempts + 1,
            updated_at=bindparam("now"), locale=bindparam("locale"), recipient=bindparam("recipient"))
    .returning(_M.attempts)
)
_WAS_SENDING = _M.status == "sending"
_SENT = (
    update(_MESSAGE)
    .where(_M.id == bindparam("message_id"))
    .values(provider=bindparam("provider"), provider_id=bindparam("provider_id"), sent_at=bindparam("now"),
            lease_until=None, not_before=None, updated_at=bindparam("now"),
            status=case((_WAS_SENDING, "sent"), else_=_M.status),
            status_reason=case((_WAS_SENDING, bindparam("detail")), else_=_M.status_reason))
    .returning(_M.status, _M.business_id, _M.customer_id, _M.kind, _M.channel)
)


def _load(session, message_id: int) -> tuple[Message | None, Booking | None]:
    """The message with its customer, business and booking (service, provider) in one query.

    Everything the checks and the templates read later comes from the session's
    identity map instead of a query each: this is the hot path of every send. The
    caller keeps the booking referenced: the identity map holds rows weakly.
    """
    row = session.execute(_LOAD, {"message_id": message_id}).first()
    return (row[0], row[1]) if row else (None, None)


def deliver(message_id: int) -> str:
    """One delivery attempt; returns the row's status afterwards (tests read it)."""
    settings = _settings()
    factory = _factory()
    now = utcnow()

    # 1. Check, render and claim, in one transaction.
    with system_session(factory) as session:
        message, _booking = _load(session, message_id)
        if message is None:
            return "missing"
        if message.status == "sending" and message.lease_until is not None and message.lease_until > now:
            # Another worker holds it, or died holding it: look again when the lease ends.
            _later(message_id, (message.lease_until - now).total_seconds() + 1, message.kind)
            return "sending"
        if message.status not in ("queued", "sending"):
            return message.status  # sent, failed, skipped...: a redelivered job does nothing

        reason = compose.stale_reason(session, message, now)
        if reason:
            return _finish(session, message, "skipped", reason)

        mtype = registry.get(message.kind)
        if message.channel == "sms" and not mtype.urgent:
            held = _quiet_hours(session, message, now)
            if held is not None:
                action, opens = held
                tz = quiet_hours.zone(message.customer.timezone, message.customer.business.timezone)
                if action == "skip":
                    return _finish(session, message, "skipped",
                                   f"quiet hours until {_local(opens, tz)}, after the appointment")
                if message.not_before != opens:
                    message.not_before = opens
                    record_status(session, message, "queued", f"quiet hours: waiting until {_local(opens, tz)}")
                session.commit()
                _later(message_id, (opens - now).total_seconds(), message.kind)
                return "queued"
        if message.not_before is not None and message.not_before > now + NOT_BEFORE_SLACK:
            session.rollback()
            _later(message_id, (message.not_before - now).total_seconds(), message.kind)
            return "queued"

        try:
            outgoing, _rendered = compose.compose(session, message, settings)
        except Skip as exc:
            session.rollback()
            message = session.get(Message, message_id)
            return _finish(session, message, "skipped", str(exc))
        except (TemplateError, LookupError, ValueError) as exc:
            log.exception("message %s could not be rendered", message_id)
            session.rollback()
            message = session.get(Message, message_id)
            return _finish(session, message, "failed", f"could not render: {type(exc).__name__}: {exc}"[:1000])

        # compose() set the row's locale and recipient: the claim writes them, no separate flush.
        with session.no_autoflush:
            attempt = session.execute(_CLAIM, {
                "message_id": message_id, "now": now, "locale": message.locale, "recipient": message.recipient,
                "lease_until": now + timedelta(seconds=lease_s(settings, mtype.urgent)),
            }).scalar()
        if attempt is None:
            session.rollback()  # another worker got there first (and the token minted above is dropped)
            return "claimed elsewhere"
        channel, business_id = message.channel, message.business_id
        session.expunge(message)  # its changes are in the claim; nothing left to flush
        add_history(session, business_id, message_id, "sending", f"attempt {attempt}")
        session.commit()

    # 2. The provider, with no transaction open.
    sender = _sender(channel)
    result, error = None, None
    try:
        result = sender.send_email(outgoing) if channel == "email" else sender.send_sms(outgoing)
    except (TransientProviderError, PermanentProviderError, UnknownDeliveryError) as exc:
        error = exc
    except ProviderError as exc:
        error = TransientProviderError(str(exc), code=exc.code, retry_after=exc.retry_after)
    except Exception as exc:  # an adapter bug or an unwrapped network error: retry, bounded
        log.exception("provider %s raised unexpectedly for message %s", getattr(sender, "name", "?"), message_id)
        error = TransientProviderError(f"{type(exc).__name__}: {exc}")

    # 3. Record the outcome.
    with system_session(factory) as session:
        if result is not None:
            return _record_sent(session, message_id, result)
        message = session.get(Message, message_id)
        provider = getattr(sender, "name", None)
        detail = f"{type(error).__name__}: {error}" + (f" (code {error.code})" if error.code is not None else "")
        detail = detail[:1000]
        if isinstance(error, PermanentProviderError):
            message.provider = provider
            mark_contact(session, message, error.code)
            return _finish(session, message, "failed", detail)
        if isinstance(error, UnknownDeliveryError):
            message.provider = message.provider or provider
            if message.status != "sending":
                session.commit()  # its callback got here before our wait timed out: that status stands
                return message.status
            return _finish(session, message, "unknown", f"{detail}; not re-sent, waiting for the provider's callback")
        if message.status != "sending":
            session.commit()  # a callback settled it meanwhile
            return message.status
        if attempt >= _config.max_attempts:
            _finish(session, message, "failed", f"gave up after {attempt} attempts: {detail}")
            raise DeliveryFailed(f"message {message_id}: gave up after {attempt} attempts: {detail}")
        delay = backoff_s(attempt, error.retry_after)
        message.not_before = utcnow() + timedelta(seconds=delay)
        message.lease_until = None
        record_status(session, message, "queued", f"attempt {attempt} failed: {detail}; retrying in {delay:.0f}s")
        session.commit()
    raise dramatiq.Retry(f"message {message_id}: {detail}", delay=int(delay * 1000))


def _record_sent(session, message_id: int, result) -> str:
    """The provider took it: one UPDATE and one history row.

    A delivery callback that got here first has already moved the row on
    (delivered, bounced...): its later status stays, the send is still logged.
    """
    now = utcnow()
    detail = f"{result.provider} {result.provider_id}"
    row = session.execute(_SENT, {"message_id": message_id, "provider": result.provider,
                                  "provider_id": result.provider_id, "now": now, "detail": detail}).first()
    if row is None:  # the row was deleted while the provider had it (a purge): nothing to record
        session.rollback()
        return "missing"
    status, business_id, customer_id, kind, channel = row
    add_history(session, business_id, message_id, "sent", detail)
    if status == "sent":
        _live(session, business_id, customer_id, message_id, kind, channel, status)
    session.commit()
    MESSAGES.labels(status="sent", channel=channel).inc()
    return status


def mark_contact(session, message: Message, code) -> None:
    """Remember what a permanent error taught us about the address, so we stop using it.

    Same trace as the webhooks leave (``messages.providers.feedback``): 21610 suppresses
    the number (reason "stop") and opts it out; 21211 / 21614 mark it invalid / not
    mobile; a SendGrid 400 marks the address invalid.
    """
    from messages.providers import feedback

    if not message.recipient:
        return
    if message.channel == "sms":
        feedback.mark_phone(session, message.business_id, message.recipient, code)
    elif message.channel == "email" and str(code) == "400":
        feedback.mark_email(session, message.business_id, message.recipient, "invalid", "invalid")


# Priority orders the jobs a worker process has fetched (lower first): an urgent one
# waits for a free thread, not behind the messages fetched before it.
URGENT_PRIORITY, NORMAL_PRIORITY = 0, 10


@dramatiq.actor(queue_name="messages", max_retries=20, retry_when=_retry_when, time_limit=120_000,
                priority=NORMAL_PRIORITY)
def deliver_message(message_id: int) -> None:
    deliver(message_id)


@dramatiq.actor(queue_name="urgent", max_retries=20, retry_when=_retry_when, time_limit=120_000,
                priority=URGENT_PRIORITY)
def deliver_urgent_message(message_id: int) -> None:
    """The same delivery for urgent kinds (sign-in links), on a queue of their own."""
    deliver(message_id)

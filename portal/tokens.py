"""Magic-link tokens: random, hashed at rest, bound to business, customer and purpose,
short-lived and single-use (consumed atomically)."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import update
from sqlalchemy.orm import Session

from portal.models import Customer, MagicLinkToken, utcnow
from portal.security import hash_token, local_path_under, new_token

PURPOSES = ("signin", "invitation")
MAX_RETURN_PATH = 500
# Pages a sign-in must never return to: the sign-in pages themselves and other links.
NO_RETURN = ("link/", "signin", "connexion", "signout")


def mint(session: Session, customer: Customer, purpose: str, ttl_s: int) -> str:
    """Create a token row (hash only) and return the raw token for the link."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    raw = new_token(32)  # 256 bits
    session.add(MagicLinkToken(
        business_id=customer.business_id, customer_id=customer.id, purpose=purpose,
        token_hash=hash_token(raw), expires_at=utcnow() + timedelta(seconds=ttl_s),
    ))
    session.flush()
    return raw


def link_path(business_slug: str, raw_token: str, return_to: str | None = None) -> str:
    """The link's path; with ``return_to`` (checked by ``safe_return_path``), where it
    leads once used: the page the customer was sent to sign in from."""
    return f"/{business_slug}/link/{raw_token}" + next_query(safe_return_path(business_slug, return_to))


def next_query(return_to: str | None) -> str:
    """``?next=<return_to>``, or "" without one; "/" is left as is (shorter links in a text message)."""
    return "?" + urlencode({"next": return_to}, safe="/") if return_to else ""


def safe_return_path(business_slug: str, value: str | None) -> str | None:
    """``value`` if it is a page of this business's portal to return to after sign-in, else None.

    Only a local path under ``/{slug}/`` (so never another site or business), printable
    ASCII (browsers send paths percent-encoded), without ``//``, ``\\``, ``..`` or a fragment,
    and not a sign-in or link page.
    """
    if not value or len(value) > MAX_RETURN_PATH or not value.isascii() or "#" in value:
        return None
    prefix = f"/{business_slug}/"
    if not local_path_under(value, prefix) or value.split("?", 1)[0][len(prefix):].startswith(NO_RETURN):
        return None
    return value


def peek(session: Session, business_id: int, raw_token: str, now: datetime | None = None) -> MagicLinkToken | None:
    """The token if it is valid for this business right now; does not use it up."""
    from sqlalchemy import select

    now = now or utcnow()
    token = session.scalar(select(MagicLinkToken).where(
        MagicLinkToken.token_hash == hash_token(raw_token), MagicLinkToken.business_id == business_id))
    if token is None or token.used_at is not None or token.expires_at <= now:
        return None
    return token


def owner(session: Session, business_id: int, raw_token: str) -> Customer | None:
    """The customer a token of this business was minted for, used or expired alike
    (to answer a stale link in that customer's language), or None."""
    from sqlalchemy import select

    return session.scalar(select(Customer).join(MagicLinkToken, MagicLinkToken.customer_id == Customer.id).where(
        MagicLinkToken.token_hash == hash_token(raw_token), MagicLinkToken.business_id == business_id))


def consume(session: Session, business_id: int, raw_token: str, now: datetime | None = None) -> MagicLinkToken | None:
    """Use the token up; of two simultaneous calls exactly one gets it (a guarded UPDATE)."""
    now = now or utcnow()
    token_hash = hash_token(raw_token)
    result = session.execute(
        update(MagicLinkToken)
        .where(MagicLinkToken.token_hash == token_hash, MagicLinkToken.business_id == business_id,
               MagicLinkToken.used_at.is_(None), MagicLinkToken.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    from sqlalchemy import select

    return session.scalar(select(MagicLinkToken).where(MagicLinkToken.token_hash == token_hash))

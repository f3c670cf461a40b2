"""Creating businesses and their API keys."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.errors import Conflict, ValidationError
from portal.models import Business
from portal.security import new_api_key, new_token

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
# Slugs that would shadow the app's own top-level routes.
RESERVED_SLUGS = {"api", "ops", "webhooks", "static", "_dev", "healthz", "readyz", "metrics", "unsubscribe", "embed"}


def validate_slug(slug: str) -> str:
    if not SLUG_RE.match(slug or ""):
        raise ValidationError(
            "slug must be lowercase letters, digits and dashes (1-64 characters)", {"slug": "invalid"}
        )
    if slug in RESERVED_SLUGS:
        raise ValidationError(f"slug {slug!r} is reserved", {"slug": "reserved"})
    return slug


def create_business(session: Session, slug: str, name: str, **fields) -> tuple[Business, str]:
    """Create a business; returns it with its API key (shown once, stored hashed)."""
    validate_slug(slug)
    if not name or not name.strip():
        raise ValidationError("name must not be empty", {"name": "required"})
    if session.scalar(select(Business.id).where(Business.slug == slug)) is not None:
        raise Conflict(f"a business with slug {slug!r} already exists")
    key, key_hash, prefix = new_api_key()
    business = Business(
        slug=slug, name=name.strip(), api_key_hash=key_hash, api_key_prefix=prefix,
        webhook_secret=new_token(24), **fields,
    )
    session.add(business)
    session.flush()
    return business, key


def rotate_api_key(session: Session, business: Business) -> str:
    key, key_hash, prefix = new_api_key()
    business.api_key_hash = key_hash
    business.api_key_prefix = prefix
    session.flush()
    return key

"""Links put in messages: portal pages and one-click unsubscribe tokens.

An unsubscribe token names (business, customer, category, channel) and is signed
with ``SECRET_KEY`` (HMAC-SHA256), so the unsubscribe endpoint needs no session
and stores nothing: ``{public_base_url}/unsubscribe/{token}``. Tokens do not
expire: an old newsletter's link must still work (RFC 8058).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from messages.registry import CATEGORIES, CHANNELS

_VERSION = "u1"
_TOKEN_RE = re.compile(r"^u1\.(\d{1,12})\.(\d{1,12})\.([a-z_]{1,30})\.(email|sms)\.([A-Za-z0-9_-]{20,64})$")


@dataclass(frozen=True)
class UnsubscribeTarget:
    business_id: int
    customer_id: int
    category: str
    channel: str


def _sign(secret_key: str, payload: str) -> str:
    digest = hmac.new(secret_key.encode(), f"unsubscribe:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def unsubscribe_token(secret_key: str, business_id: int, customer_id: int, category: str, channel: str) -> str:
    if category not in CATEGORIES or channel not in CHANNELS:
        raise ValueError(f"cannot unsubscribe from {category!r} on {channel!r}")
    payload = f"{_VERSION}.{int(business_id)}.{int(customer_id)}.{category}.{channel}"
    return f"{payload}.{_sign(secret_key, payload)}"


def make_unsubscribe_token(settings, message) -> str:
    """The token for a Message row (its business, customer, category and channel)."""
    return unsubscribe_token(settings.secret_key, message.business_id, message.customer_id,
                             message.category, message.channel)


def parse_unsubscribe_token(settings, token: str) -> UnsubscribeTarget | None:
    """The target of a genuine token, or None for anything forged, truncated or malformed."""
    match = _TOKEN_RE.match(token or "")
    if not match:
        return None
    bid, cid, category, channel, sig = match.groups()
    payload = token[: -len(sig) - 1]
    if not hmac.compare_digest(sig, _sign(settings.secret_key, payload)):
        return None
    if category not in CATEGORIES:
        return None
    return UnsubscribeTarget(int(bid), int(cid), category, channel)


def unsubscribe_url(settings, message) -> str:
    return f"{settings.public_base_url}/unsubscribe/{make_unsubscribe_token(settings, message)}"


def portal_url(settings, slug: str, path: str = "") -> str:
    return f"{settings.public_base_url}/{slug}{path}"

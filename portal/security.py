"""Random tokens, stored only as hashes; redirect targets that stay on this site."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "cpk_"


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token (256 bits by default; never fewer than 128)."""
    return secrets.token_urlsafe(max(nbytes, 16))


def hash_token(token: str) -> str:
    # Tokens are high-entropy random values, so a fast hash is the right tool
    # here (unlike passwords): it is what lets us look a token up by its hash.
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """Returns (key shown once, its hash, a short prefix for display)."""
    key = API_KEY_PREFIX + new_token(32)
    return key, hash_token(key), key[:10]


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def local_path_under(value: str, prefix: str) -> bool:
    """Whether ``value``, a path and optional query taken from a request (``?next=``), is a
    page of this site under ``prefix`` that a redirect may send a browser to: printable,
    with no ``//``, ``\\`` or ``..`` in its path that could lead to another host or tree."""
    path = value.split("?", 1)[0]
    return path.startswith(prefix) and value.isprintable() and not any(bad in path for bad in ("//", "\\", ".."))

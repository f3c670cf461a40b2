"""CSRF defence for every portal POST: an Origin (or Referer) check plus a token.

- Signed-in forms carry the session's own token (``PortalSession.csrf_token``);
  ``login_required`` checks it on every unsafe method.
- Forms shown before sign-in (asking for a link, continuing from a link) carry
  an HMAC of ``SECRET_KEY`` over what the form acts on (the business, or the
  link's token hash). They need no cookie, so they work from an email client,
  a plain HTTP client and the embedded sign-in iframe alike; the Origin check
  is what stops a cross-site page from posting them (login CSRF).

The token travels in the form field ``csrf_token`` or the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from aiohttp import web

from portal.errors import Forbidden
from portal.security import hash_token
from portal_web.forms import FORM_TYPES, read_form
from portal_web.keys import SETTINGS

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class CsrfError(Forbidden):
    """A POST without a valid token, or from another site."""


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[" and the like: no origin, so never an allowed one
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(request: web.Request) -> set[str]:
    origins = {f"{request.scheme}://{request.host}".lower()}
    public = _origin_of(request.app[SETTINGS].public_base_url)
    if public:
        origins.add(public)
    return origins


def check_origin(request: web.Request) -> None:
    """Refuse a request whose Origin (or, failing that, Referer) is another site.

    Browsers send Origin on every cross-site POST. A page served with
    ``Referrer-Policy: no-referrer`` (the link page) makes Chromium send
    ``Origin: null``; then the browser-set ``Sec-Fetch-Site`` header, which a
    page cannot forge, must say ``same-origin``. A client sending none of these
    headers is not a browser being tricked, and still needs the token.
    """
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if origin is not None and origin != "null":
        if _origin_of(origin) not in allowed_origins(request):
            raise CsrfError("This form was sent from another site.")
        return
    if fetch_site is not None:
        if fetch_site not in ("same-origin", "none"):
            raise CsrfError("This form was sent from another site.")
        return
    if origin == "null":  # a sandboxed frame or an opaque origin, with no Sec-Fetch-Site to vouch for it
        raise CsrfError("This form was sent from another site.")
    referer = request.headers.get("Referer")
    if referer and _origin_of(referer) not in allowed_origins(request):
        raise CsrfError("This form was sent from another site.")


def signed_token(secret_key: str, purpose: str, *parts: object) -> str:
    message = "\x1f".join([purpose, *(str(p) for p in parts)]).encode()
    return hmac.new(secret_key.encode(), b"csrf\x1f" + message, hashlib.sha256).hexdigest()


def signin_form_token(request: web.Request, business_id: int) -> str:
    return signed_token(request.app[SETTINGS].secret_key, "signin", business_id)


def link_form_token(request: web.Request, business_id: int, raw_token: str) -> str:
    return signed_token(request.app[SETTINGS].secret_key, "link", business_id, hash_token(raw_token))


async def submitted_token(request: web.Request) -> str:
    form = None
    if request.content_type in FORM_TYPES:
        # Read (400 if unreadable) even when the header carries the token: aiohttp caches
        # the form, so a handler's own request.post() never meets a malformed body.
        form = await read_form(request)
    header = request.headers.get(HEADER)
    if header:
        return header
    value = form.get(FIELD) if form is not None else None
    return value if isinstance(value, str) else ""


async def verify(request: web.Request, expected: str | None) -> None:
    """Origin check, then the submitted token against ``expected``; raises CsrfError (403)."""
    check_origin(request)
    given = await submitted_token(request)
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfError("This form has expired or was not sent from this site. Reload the page and try again.")

"""Reading a posted form without letting a malformed body become a 500.

``request.post()`` raises whatever its decoders raise: UnicodeDecodeError for
bytes that are not UTF-8, LookupError for an unknown ``charset``, ValueError
for a multipart type without a boundary, aiohttp's own errors for broken
multipart parts or a body that fails its Content-Encoding. All of those are
the client's doing: a 400.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDictProxy

BODY_ERRORS = (ValueError, LookupError, HttpProcessingError, RequestPayloadError)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_form(request: web.Request) -> MultiDictProxy:
    """``request.post()`` (aiohttp caches it), or 400 when the body is not a readable form."""
    try:
        return await request.post()
    except BODY_ERRORS:
        raise web.HTTPBadRequest(text="The form could not be read. Reload the page and try again.") from None

"""Error pages, security headers and request latency (Prometheus)."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from portal.errors import PortalError, ValidationError
from portal.metrics import REQUEST_LATENCY
from portal_web.rendering import render

log = logging.getLogger(__name__)

TITLES = {400: "Bad request", 403: "Forbidden", 404: "Page not found", 405: "Method not allowed",
          409: "Conflict", 413: "Request too large", 422: "Unprocessable request", 429: "Too many requests",
          500: "Something went wrong"}


def wants_json(request: web.Request) -> bool:
    return (request.path.startswith(("/api/", "/webhooks/", "/ops/api/"))
            or "application/json" in request.headers.get("Accept", "")
            or (request.path.startswith("/ops/") and _is_script(request)))


def _is_script(request: web.Request) -> bool:
    """An operator's script: it sends ``Authorization: Bearer $OPS_TOKEN``, a browser never does."""
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


def error_response(request: web.Request, status: int, message: str, fields: dict | None = None) -> web.Response:
    if wants_json(request):
        body = {"error": message}
        if fields:
            body["fields"] = fields
        return web.json_response(body, status=status)
    from portal_web.keys import BUSINESS

    if request.get(BUSINESS) is not None:
        # A portal page: the business's branded shell, in the page's language.
        from portal_web.shell import render_portal

        return render_portal(request, "portal/error.html", {"status": status, "title": TITLES.get(status, "Error"),
                                                            "message": message}, status=status)
    if status == 404 and not request.path.startswith("/ops"):
        # Customers' 404 (a link from an email); operators get the plain page with the reason.
        return render(request, "portal/notfound.html", {"message": message}, status=404)
    return render(request, "error.html", {"status": status, "title": TITLES.get(status, "Error"),
                                          "message": message}, status=status)


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json" or exc.headers.get("X-Keep-Body"):
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else TITLES.get(exc.status, exc.reason)
        resp = error_response(request, exc.status, message)
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        return resp
    except RequestPayloadError:
        # The body could not be read as sent (a broken Content-Encoding, cut short): the client's fault.
        return error_response(request, 400, "The request body could not be read.")
    except ValidationError as exc:
        return error_response(request, exc.status, str(exc), exc.fields)
    except PortalError as exc:
        return error_response(request, exc.status, str(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, TITLES[500])


def content_security_policy(request: web.Request) -> str:
    """Portal pages may be framed only by their business's embed origins; everything else by no one."""
    from portal_web.branding import embed_origins
    from portal_web.keys import BUSINESS

    business = request.get(BUSINESS)
    ancestors = (" ".join(embed_origins(business)) if business is not None else "") or "'none'"
    return ("default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
            f"frame-ancestors {ancestors}; base-uri 'none'; form-action 'self'")


@web.middleware
async def security_headers(request: web.Request, handler):
    resp = await handler(request)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Content-Security-Policy", content_security_policy(request))
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp


def route_label(request: web.Request) -> str:
    """The matched route's pattern (``/{slug}/signin``), never the raw path: labels stay few."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "(unmatched)"


@web.middleware
async def request_latency(request: web.Request, handler):
    started = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        REQUEST_LATENCY.labels(request.method, route_label(request), str(status)).observe(
            time.perf_counter() - started)


def stack() -> list:
    return [request_latency, security_headers, errors]

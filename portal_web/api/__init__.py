"""The booking-system JSON API under ``/api/v1`` (see README, "Booking-system API")."""

from __future__ import annotations

from aiohttp import web

from portal_web.api.base import PREFIX, Route
from portal_web.api.openapi import build
from portal_web.api.deliveries import ROUTES as DELIVERY_ROUTES
from portal_web.api.resources import ROUTES

DOC_KEY = web.AppKey("api_openapi", dict)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOC_KEY])


def routes() -> list[Route]:
    return [*ROUTES, *DELIVERY_ROUTES, Route("GET", "/openapi.json", openapi_json, "This document", None, public=True, tag="meta")]


def setup(app: web.Application) -> None:
    table = routes()
    app[DOC_KEY] = build(table)
    for route in table:
        app.router.add_route(route.method, PREFIX + route.path, route.handler)

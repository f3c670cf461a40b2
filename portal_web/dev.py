"""``/_dev/outbox``: what the outbox email/SMS providers wrote, in dev mode only."""

from __future__ import annotations

from aiohttp import web

from messages.outbox_files import list_outbox, read_outbox_item
from portal_web.keys import SETTINGS
from portal_web.rendering import render


async def outbox_index(request: web.Request) -> web.Response:
    items = list_outbox(request.app[SETTINGS].outbox_dir)
    return render(request, "dev/outbox.html", {"items": items})


async def outbox_item(request: web.Request) -> web.Response:
    item = read_outbox_item(request.app[SETTINGS].outbox_dir, request.match_info["name"])
    if item is None:
        raise web.HTTPNotFound(text="No such message in the outbox")
    if request.query.get("part") == "html" and item.get("html"):
        return web.Response(text=item["html"], content_type="text/html")
    return render(request, "dev/outbox_item.html", {"item": item})


async def outbox_json(request: web.Request) -> web.Response:
    return web.json_response(list_outbox(request.app[SETTINGS].outbox_dir))


def setup(app: web.Application) -> None:
    app.router.add_get("/_dev/outbox", outbox_index, name="dev_outbox")
    app.router.add_get("/_dev/outbox.json", outbox_json, name="dev_outbox_json")
    app.router.add_get("/_dev/outbox/{name}", outbox_item, name="dev_outbox_item")

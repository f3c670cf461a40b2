"""ops (see the issue that owns it)."""

from aiohttp import web


def setup(app: web.Application) -> None:
    pass

"""The portal benchmark's baseline: a bare aiohttp handler, served the way
``portal web`` serves the app (one process, ``web.run_app``)."""

from __future__ import annotations

import argparse

from aiohttp import web

BODY = "<!doctype html><title>ok</title><p>ok</p>"


async def handler(request: web.Request) -> web.Response:
    return web.Response(text=BODY, content_type="text/html")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

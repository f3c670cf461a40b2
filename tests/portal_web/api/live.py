"""The aiohttp app served on a real socket from a thread of its own, for clients that
speak plain blocking HTTP (Schemathesis calls through requests; it has no aiohttp transport).

The app may share the test's rolled-back connection: the client blocks on each request, so the
test thread and the app's DB thread never use it at the same time."""

from __future__ import annotations

import asyncio
import threading
from typing import Callable

from aiohttp import web


class LiveServer:
    def __init__(self, make_app: Callable[[], web.Application]):
        self._make_app = make_app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-api", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _start(self) -> str:
        # Built in the server's loop: the app's cleanup contexts (DB executor, Redis client) belong to it.
        self._runner = web.AppRunner(self._make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LiveServer:
        self._thread.start()
        try:
            self.url = self._run(self._start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._runner is not None:
                self._run(self._runner.cleanup())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

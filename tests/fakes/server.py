"""The machinery shared by the fakes: a background aiohttp server, canned responses,
a record of every request, and signed requests to post back to the portal."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import requests
from aiohttp import web


@dataclass
class Canned:
    """One scripted reply. ``hang`` holds the reply until the client has given up."""

    status: int = 200
    body: dict | list | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class SignedRequest:
    """A provider callback, signed the way the provider signs it.

    ``url`` is the public URL the provider signed; ``path`` is what to request on
    the portal (tests post it with the aiohttp test client)."""

    url: str
    body: bytes
    headers: dict[str, str]

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    async def send(self, client):
        """Post with an aiohttp ``TestClient`` (or any client whose ``post`` takes a path)."""
        return await client.post(self.path, data=self.body, headers=self.headers)

    def post(self, base_url: str, timeout: float = 10) -> requests.Response:
        """Post to a running server (another thread or process), as a proxy in front of it would."""
        with requests.Session() as http:
            return http.post(base_url.rstrip("/") + self.path, data=self.body, headers=self.headers, timeout=timeout)


def closed_port_url() -> str:
    """A local URL nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeServer:
    """An aiohttp app served from a background thread on 127.0.0.1, port 0."""

    hang_limit_s = 30.0  # a hung reply is released at the latest after this, or at stop()

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._canned: deque[Canned] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self.url = ""

    # -- scripting ---------------------------------------------------------
    def queue(self, *replies: Canned) -> None:
        with self._lock:
            self._canned.extend(replies)

    def _next_canned(self) -> Canned | None:
        with self._lock:
            return self._canned.popleft() if self._canned else None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._canned)

    def _record(self, request: web.Request, body: bytes) -> Recorded:
        rec = Recorded(request.method, request.path, request.query_string, dict(request.headers), body)
        with self._lock:
            self.requests.append(rec)
        return rec

    async def _hold(self) -> None:
        try:
            await asyncio.wait_for(self._release.wait(), self.hang_limit_s)
        except asyncio.TimeoutError:
            pass

    # -- lifecycle ---------------------------------------------------------
    def make_app(self) -> web.Application:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> "FakeServer":
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._release = asyncio.Event()
                self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                host, port = self._runner.addresses[0][:2]
                self.url = f"http://{host}:{port}"
            except BaseException as exc:  # surface start-up errors in the test thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._release.set)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def json_response(status: int, body, headers: dict[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers, content_type="text/plain")
    return web.json_response(body, status=status, headers=headers)

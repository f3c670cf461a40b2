"""The load generator reads what our servers answer: Content-Length and chunked
bodies, kept-alive and closed connections, and counts timeouts as errors.
Nothing here asserts how fast anything is."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bench import loadgen


@pytest.fixture
async def server(aiohttp_server):
    async def plain(request):
        return web.Response(text="x" * 5000)

    async def chunked(request):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"a" * 10, b"b" * 3000, b"c"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def closing(request):
        return web.Response(text="bye", headers={"Connection": "close"})

    async def missing(request):
        return web.Response(status=404, text="no")

    async def slow(request):
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    for path, handler in (("/plain", plain), ("/chunked", chunked), ("/closing", closing),
                          ("/missing", missing), ("/slow", slow)):
        app.router.add_get(path, handler)
    return await aiohttp_server(app, host="127.0.0.1", port=0)


@pytest.mark.parametrize("path", ["/plain", "/chunked", "/closing"])
async def test_every_request_is_read_to_its_end(server, path):
    result = await loadgen.run(f"http://127.0.0.1:{server.port}{path}", 4, 60, 30, {}, warmup=3)
    assert (result["ok"], result["requests"], result["errors"]) == (60, 60, {})
    assert result["statuses"] == {"200": 60}


async def test_other_statuses_are_counted_but_not_ok(server):
    result = await loadgen.run(f"http://127.0.0.1:{server.port}/missing", 2, 10, 30, {})
    assert (result["ok"], result["statuses"], result["errors"]) == (0, {"404": 10}, {})


async def test_a_request_that_times_out_is_an_error(server):
    result = await loadgen.run(f"http://127.0.0.1:{server.port}/slow", 1, 1, 30, {}, timeout=0.2)
    assert result["ok"] == 0 and result["errors"] == {"TimeoutError": 1}


def test_the_cookie_is_sent():
    host, port, raw = loadgen.build_request("http://127.0.0.1:8080/pro/?lang=fr", {"portal_session": "abc"})
    assert (host, port) == ("127.0.0.1", 8080)
    assert raw.startswith(b"GET /pro/?lang=fr HTTP/1.1\r\n") and b"\r\nCookie: portal_session=abc\r\n" in raw

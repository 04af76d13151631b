"""idle_shutdown_s: the idle clock counts only time with no request in flight, from the end of the last one."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from medlens.serve.idle import watch_idle


async def test_a_request_in_flight_is_never_idle_time(aiohttp_client):
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(text="done")

    async def quick(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/quick", quick)
    watch = watch_idle(app)
    client = await aiohttp_client(app)
    stopper = asyncio.create_task(watch.wait_until_idle(0.5))
    pending = asyncio.create_task(client.get("/slow"))
    await asyncio.sleep(0.8)  # longer than the idle time, but a request is running
    assert watch.in_flight == 1 and watch.idle_for() == 0 and not stopper.done()
    gate.set()
    assert (await pending).status == 200
    ended = time.monotonic()
    assert (await client.get("/quick")).status == 200
    await asyncio.wait_for(stopper, 5)
    assert time.monotonic() - ended >= 0.5  # counted from the end of the last request, not from the start
    assert watch.in_flight == 0

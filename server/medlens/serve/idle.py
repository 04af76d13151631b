"""Stop the server after `idle_shutdown_s` without requests (a server the browser's native host
started must not linger for days after the browser closed). A request in flight is never idle
time, however long it runs; any request, health checks included, counts as use."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class IdleWatch:
    """Counts requests in flight and remembers when the last one ended."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.last_activity = time.monotonic()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1
            self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        return 0.0 if self.in_flight else time.monotonic() - self.last_activity

    async def wait_until_idle(self, idle_s: float) -> None:
        """Return once no request has been in flight for idle_s seconds."""
        while (left := idle_s - self.idle_for()) > 0:
            await asyncio.sleep(min(left, max(0.05, idle_s / 4)))


def watch_idle(app: web.Application) -> IdleWatch:
    """Attach an IdleWatch to an app that has not started yet (its middleware runs first)."""
    watch = IdleWatch()
    app.middlewares.insert(0, watch.middleware)
    return watch

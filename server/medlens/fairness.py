"""Taking turns between requests wherever work waits: download slots, decode threads, the model.

A page scan queues hundreds of images at once; a right-click queues one. Served first in, first
out, the one waits for all the hundreds at every stage. So each stage that makes work wait keys
its waiters by the request they belong to and wakes them one request at a time, round-robin:
the lone image waits for at most one turn of each other request.

A request is whatever called `start_request()` (the HTTP routes do, on admission); the mark is a
context variable, so every task the request starts afterwards carries it. Work that never calls it
shares one lane, which is plain first in, first out, as is everything when `fair=False` (the
`queue_order=fifo` setting, kept to measure the difference).
"""

from __future__ import annotations

import asyncio
import collections
from contextvars import ContextVar

QUEUE_ORDERS = ("fair", "fifo")

_current_request: ContextVar[object | None] = ContextVar("medlens_request", default=None)


def start_request() -> None:
    """Work this task (and every task it starts from now on) waits for is one request's: each
    stage gives it its turn, however much work other requests have waiting."""
    _current_request.set(object())


def current_request() -> object | None:
    """The request the running task works for (None outside any)."""
    return _current_request.get()


class FairSemaphore:
    """`asyncio.Semaphore` whose waiters are woken one request at a time, in turn."""

    def __init__(self, value: int, *, fair: bool = True) -> None:
        self._free = max(1, int(value))
        self.fair = fair
        self._lanes: dict[object | None, collections.deque[asyncio.Future[None]]] = {}

    @property
    def waiting(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    async def acquire(self) -> None:
        if self._free > 0 and not self._lanes:
            self._free -= 1
            return
        key = current_request() if self.fair else None
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lanes.setdefault(key, collections.deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # granted as the caller left: hand the slot on
            else:
                lane = self._lanes.get(key)
                if lane is not None and turn in lane:
                    lane.remove(turn)
                    if not lane:
                        del self._lanes[key]
            raise

    def release(self) -> None:
        while self._lanes:
            key = next(iter(self._lanes))
            lane = self._lanes.pop(key)
            turn = lane.popleft()
            if lane:
                self._lanes[key] = lane  # back of the line: the next request has its turn
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

"""Do each piece of work once: a bounded LRU of finished outcomes and single-flight for running ones.

A page often shows the same image twice (a thumbnail and its lightbox, the same logo in header and
footer), the extension rescans pages as they change, and two tabs may scan one site. The outcome
of an image is keyed by its URL and by the sha256 of its bytes (the same picture under two URLs,
or uploaded again), always together with the threshold it was labelled with. While an outcome is
being computed, everyone asking for the same key awaits the same task; when the last of them goes
away, the task is cancelled so an abandoned request costs nothing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most `max_entries` values; the least recently used one goes first. 0 disables it."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(0, int(max_entries))
        self._data: OrderedDict[K, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        try:
            value = self._data[key]
        except KeyError:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        if self.max_entries == 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


@dataclass(eq=False)
class _Call(Generic[V]):
    task: asyncio.Task[V]
    waiters: int = 0


class SingleFlight(Generic[K, V]):
    """Concurrent `run(key, factory)` calls with one key share one task running `factory()`."""

    def __init__(self) -> None:
        self._calls: dict[K, _Call[V]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    async def run(self, key: K, factory: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """The value, and whether this caller joined a call that was already running."""
        call = self._calls.get(key)
        joined = call is not None
        if call is None:
            task: asyncio.Task[V] = asyncio.ensure_future(factory())
            call = self._calls[key] = _Call(task)
            task.add_done_callback(lambda t, k=key, c=call: self._done(k, c, t))
        call.waiters += 1
        try:
            return await asyncio.shield(call.task), joined
        finally:
            call.waiters -= 1
            if call.waiters == 0 and not call.task.done():
                call.task.cancel()  # nobody wants it any more

    def _done(self, key: K, call: _Call[V], task: asyncio.Task[V]) -> None:
        if self._calls.get(key) is call:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved, so an error whose waiters all left is not logged as lost

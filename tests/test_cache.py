"""LRU result cache and single-flight: each piece of work once, abandoned work cancelled."""

from __future__ import annotations

import asyncio

import pytest

from medlens.pipeline.cache import LRUCache, SingleFlight


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (3, 1)


def test_lru_of_size_zero_keeps_nothing() -> None:
    cache: LRUCache[str, int] = LRUCache(0)
    cache.put("a", 1)
    assert len(cache) == 0 and cache.get("a") is None


def test_put_refreshes_an_existing_key() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.get("a") == 10 and "b" not in cache


async def test_concurrent_calls_share_one_run() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    runs = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return 42

    calls = [asyncio.ensure_future(flights.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(*calls)
    assert runs == 1
    assert sorted(answers) == [(42, False)] + [(42, True)] * 4
    assert len(flights) == 0  # forgotten once done: the next call runs again
    assert await flights.run("k", work) == (42, False) and runs == 2


async def test_errors_reach_every_waiter() -> None:
    flights: SingleFlight[str, int] = SingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("nope")

    results = await asyncio.gather(flights.run("k", boom), flights.run("k", boom), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)


async def test_work_goes_on_while_someone_waits_and_stops_when_nobody_does() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    started, finished, cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work() -> int:
        started.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finished.set()
        return 1

    a = asyncio.ensure_future(flights.run("k", work))
    b = asyncio.ensure_future(flights.run("k", work))
    await started.wait()
    a.cancel()
    assert await b == (1, True)  # one waiter left: the work went on
    assert finished.is_set()

    c = asyncio.ensure_future(flights.run("j", work))
    started.clear()
    await started.wait()
    c.cancel()
    with pytest.raises(asyncio.CancelledError):
        await c
    await asyncio.wait_for(cancelled.wait(), 1)  # the last waiter left: the work was cancelled
    assert len(flights) == 0

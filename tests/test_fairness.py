"""FairSemaphore: waiters are woken one request at a time, in turn; cancelled waiters give up
their place (or their slot, if it was just granted); fair=False is first in, first out."""

from __future__ import annotations

import asyncio

import pytest

from medlens.fairness import FairSemaphore, current_request, start_request


async def _serve_order(fair: bool) -> list[str]:
    """Requests a (5 waiters), b (3) and c (1) queue on a full one-slot semaphore, in that order."""
    gate = FairSemaphore(1, fair=fair)
    order: list[str] = []
    await gate.acquire()

    async def request(name: str, n: int) -> None:
        start_request()

        async def one(i: int) -> None:
            async with gate:
                order.append(f"{name}{i}")
                await asyncio.sleep(0)

        await asyncio.gather(*(one(i) for i in range(n)))

    tasks = []
    for name, n in (("a", 5), ("b", 3), ("c", 1)):
        tasks.append(asyncio.ensure_future(request(name, n)))
        await asyncio.sleep(0.01)
    assert gate.waiting == 9
    gate.release()
    await asyncio.gather(*tasks)
    return order


async def test_requests_take_turns() -> None:
    assert await _serve_order(True) == ["a0", "b0", "c0", "a1", "b1", "a2", "b2", "a3", "a4"]


async def test_fifo_serves_in_arrival_order() -> None:
    assert await _serve_order(False) == ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "c0"]


async def test_a_cancelled_waiter_leaves_and_a_granted_one_passes_its_slot_on() -> None:
    gate = FairSemaphore(1)
    await gate.acquire()
    leaver = asyncio.ensure_future(gate.acquire())
    stayer = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0.01)
    leaver.cancel()
    await asyncio.gather(leaver, return_exceptions=True)
    assert gate.waiting == 1
    gate.release()
    await asyncio.wait_for(stayer, 1)  # the slot went past the one who left
    granted_then_cancelled = asyncio.ensure_future(gate.acquire())
    last = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0.01)
    gate.release()  # granted to the first waiter...
    granted_then_cancelled.cancel()  # ...which leaves before it runs
    await asyncio.gather(granted_then_cancelled, return_exceptions=True)
    await asyncio.wait_for(last, 1)


async def test_the_request_mark_reaches_the_tasks_a_request_starts() -> None:
    start_request()
    mine = current_request()

    async def child() -> object | None:
        return current_request()

    assert mine is not None and await asyncio.ensure_future(child()) is mine


@pytest.mark.parametrize("value", [0, -3])
async def test_at_least_one_slot(value: int) -> None:
    gate = FairSemaphore(value)
    await asyncio.wait_for(gate.acquire(), 1)

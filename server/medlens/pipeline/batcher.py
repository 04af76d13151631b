"""`MicroBatcher`: one model thread fed with batches gathered from every request at once.

A CNN on one image at a time wastes most of its time on per-call overhead; on 16 images it does
several times the work in about the same time. So requests never call the model: they hand
decoded images to the batcher and await a future. A collector task on the event loop takes up to
`max_batch` waiting images (waiting at most `max_wait_ms` for more once it has one) and runs the
model on them in its own single thread, so the event loop never runs the model and ONNX Runtime sees one
caller.

Requests take turns (`queue_order="fair"`): each request has its own lane and a batch takes one
image from each lane in turn, so a right-click on one image rides in the next batch instead of
waiting behind a page scan of hundreds; while such a small request waits beside big ones, a batch
is one turn of each request rather than a full max_batch, since on a CPU a batch's time grows
with its size. A request is what `medlens.fairness.start_request()`
marks (the routes call it on admission); work that never calls it shares one lane, which is plain
first in, first out, as is `queue_order="fifo"` for everything.

The queue is bounded (`queue_max`): a request that arrives when it is full is refused up front
(`check_capacity` raises queue_full, 503 + Retry-After) instead of piling up work nobody will
wait for; images of requests already admitted wait for room (back-pressure) rather than failing
half-way. A caller that goes away (client disconnected, request cancelled) takes its images out
of the queue, so they cost no model time.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from PIL import Image

from medlens.errors import MedLensError, plain_reason
from medlens.fairness import QUEUE_ORDERS, current_request
from medlens.model.classifier import Prediction

log = logging.getLogger(__name__)

ClassifyFn = Callable[[Sequence[Image.Image], "float | None"], list[Prediction]]


@dataclass(eq=False)
class _Job:
    image: Image.Image
    threshold: float | None
    future: asyncio.Future[Prediction]
    request: object | None = None
    queued: bool = True


@dataclass
class BatchStats:
    """Counters for health and benchmarks: how full the batches really are."""

    batches: int = 0
    images: int = 0
    cancelled: int = 0
    largest: int = 0
    model_seconds: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


class MicroBatcher:
    """Shared by all requests; use `async with MicroBatcher(...)` or `start()` / `close()`."""

    def __init__(
        self, classify: ClassifyFn, *, max_batch: int, max_wait_ms: float, queue_max: int, queue_order: str = "fair"
    ) -> None:
        if queue_order not in QUEUE_ORDERS:
            raise MedLensError("invalid_request", f"queue_order must be one of {', '.join(QUEUE_ORDERS)}, not {queue_order!r}")
        self._classify = classify
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.queue_max = max(1, int(queue_max))
        self.fair = queue_order == "fair"
        self.stats = BatchStats()
        # One lane of waiting images per request; dict order is the order lanes get their turn.
        self._lanes: dict[object | None, collections.deque[_Job]] = {}
        self._depth = 0
        self._slots: asyncio.Semaphore | None = None
        self._wakeup: asyncio.Event | None = None
        self._collector: asyncio.Task[None] | None = None
        self._model_thread: ThreadPoolExecutor | None = None
        self._closed = False

    @classmethod
    def for_classifier(cls, classifier: Any, settings: Any) -> "MicroBatcher":
        """A batcher over `classifier.classify` with the batching settings."""
        return cls(
            classifier.classify,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            queue_max=settings.queue_max,
            queue_order=settings.queue_order,
        )

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> "MicroBatcher":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._collector is not None:
            return
        self._slots = asyncio.Semaphore(self.queue_max)
        self._wakeup = asyncio.Event()
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medlens-model")
        self._collector = asyncio.create_task(self._collect(), name="medlens-batcher")

    async def close(self) -> None:
        """Stop taking work, fail what is still queued, and wait for the batch in the model."""
        self._closed = True
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
            self._collector = None
        lanes, self._lanes, self._depth = self._lanes, {}, 0
        for lane in lanes.values():
            for job in lane:
                if not job.future.done():
                    job.future.set_exception(MedLensError("model_error", "the server is shutting down"))
        if self._model_thread is not None:
            pool, self._model_thread = self._model_thread, None
            await asyncio.to_thread(pool.shutdown, wait=True)

    # ------------------------------------------------------------ queue

    @property
    def depth(self) -> int:
        """Images waiting for the model (not counting the batch it is running)."""
        return self._depth

    @property
    def full(self) -> bool:
        return self._depth >= self.queue_max

    def check_capacity(self, retry_after_s: int = 1) -> None:
        """Refuse new work with queue_full when the queue is at `queue_max`."""
        if self.full:
            raise QueueFull(retry_after_s, self.queue_max)

    async def classify(self, image: Image.Image, threshold: float | None = None) -> Prediction:
        """The model's answer for one image, computed in a shared batch."""
        if self._closed or self._collector is None or self._slots is None or self._wakeup is None:
            raise MedLensError("model_error", "the model is not running")
        await self._slots.acquire()
        request = current_request() if self.fair else None
        job = _Job(image, threshold, asyncio.get_running_loop().create_future(), request)
        self._lanes.setdefault(request, collections.deque()).append(job)
        self._depth += 1
        self._wakeup.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            if job.queued:  # still waiting: leave the queue so it costs no model time
                lane = self._lanes[job.request]
                lane.remove(job)
                if not lane:
                    del self._lanes[job.request]
                self._depth -= 1
                job.queued = False
                self._slots.release()
                self.stats.cancelled += 1
            job.future.cancel()
            raise

    def _batch_size(self) -> int:
        """max_batch, except when a request with little work waits beside others: then one turn
        of every request, so the right-click's batch runs in a fraction of a full batch's time
        (many small requests still fill whole batches: one turn each is already max_batch)."""
        short = max(1, self.max_batch // 4)
        if not self.fair or len(self._lanes) < 2 or min(len(lane) for lane in self._lanes.values()) > short:
            return self.max_batch
        return min(self.max_batch, max(len(self._lanes), short))

    def _take(self) -> list[_Job]:
        assert self._slots is not None
        batch: list[_Job] = []
        size = self._batch_size()
        while self._lanes and len(batch) < size:
            request = next(iter(self._lanes))
            lane = self._lanes.pop(request)
            job = lane.popleft()
            if lane:
                self._lanes[request] = lane  # back of the line: the next lane has its turn
            self._depth -= 1
            job.queued = False
            self._slots.release()
            if job.future.done():
                continue
            batch.append(job)
        return batch

    async def _collect(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._depth:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._depth < self.max_batch and self.max_wait > 0:
                deadline = loop.time() + self.max_wait
                while self._depth < self.max_batch:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
            batch = self._take()
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        groups: dict[float | None, list[_Job]] = {}
        for job in batch:
            groups.setdefault(job.threshold, []).append(job)
        for threshold, jobs in groups.items():
            started = loop.time()
            try:
                predictions = await loop.run_in_executor(
                    self._model_thread, self._classify, [j.image for j in jobs], threshold
                )
                if len(predictions) != len(jobs):
                    raise MedLensError("model_error", f"model answered {len(predictions)} of {len(jobs)} images")
            except asyncio.CancelledError:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(MedLensError("model_error", "the server is shutting down"))
                raise
            except MedLensError as exc:
                self._fail(jobs, exc)
                continue
            except Exception as exc:  # the model must not take the collector down with it
                log.exception("model failed on a batch of %d images", len(jobs))
                self._fail(jobs, MedLensError("model_error", f"the model failed: {type(exc).__name__}: {plain_reason(exc)}"))
                continue
            finally:
                self.stats.model_seconds += loop.time() - started
            self.stats.batches += 1
            self.stats.images += len(jobs)
            self.stats.largest = max(self.stats.largest, len(jobs))
            for job, prediction in zip(jobs, predictions):
                if not job.future.done():
                    job.future.set_result(prediction)

    @staticmethod
    def _fail(jobs: list[_Job], exc: MedLensError) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(exc)


class QueueFull(MedLensError):
    """queue_full with the Retry-After the client should honour."""

    retry_after_s: int

    def __init__(self, retry_after_s: int, queue_max: int) -> None:
        super().__init__("queue_full", f"the model queue is full ({queue_max} images waiting); retry in {retry_after_s}s")
        self.retry_after_s = retry_after_s

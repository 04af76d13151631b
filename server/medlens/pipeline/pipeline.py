"""From a URL, uploaded bytes, a PDF or a page to Results: ingestion, cache and batcher wired once.

Shared by the HTTP routes and `medlens classify`, so both answer alike. Nothing here knows about
HTTP. The event loop only orchestrates: hashing and decoding run in a thread pool, the model in
the batcher's thread, PDF parsing in warm child processes (`PdfWorkers`).

Item-level failures never raise out of the per-item methods: they come back as Results with
`status: "error"` (or `"skipped"`), so one bad URL never sinks the others. Whole-request failures
(a page that cannot be fetched, an encrypted PDF) raise MedLensError.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Hashable, Sequence, TypeVar

from medlens.errors import MedLensError, unexpected_error
from medlens.fairness import FairSemaphore
from medlens.ingest.decode import decode_image
from medlens.ingest.fetch import Fetcher, check_url, decode_data_url
from medlens.ingest.page import fetch_page
from medlens.ingest.pdf import PdfImage
from medlens.ingest.pdf_workers import PdfWorkers
from medlens.pipeline.batcher import MicroBatcher
from medlens.pipeline.cache import LRUCache, SingleFlight
from medlens.pipeline.results import Outcome, jpeg_data_url, pdf_source, result
from medlens.pipeline.sizing import MODEL_SIDE, shrink_for_model
from medlens.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def decode_threads(settings: Settings) -> int:
    return settings.decode_workers if settings.decode_workers > 0 else min(4, os.cpu_count() or 1)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Pipeline:
    """Classifies images from anywhere; owns the decode threads, the PDF workers and the result cache.

    `batcher` and `fetcher` are started and closed by whoever made them (the app's cleanup
    contexts, or the CLI); `close()` stops the decode threads and the PDF workers.
    """

    def __init__(self, settings: Settings, batcher: MicroBatcher, fetcher: Fetcher, *, default_threshold: float) -> None:
        self.settings = settings
        self.batcher = batcher
        self.fetcher = fetcher
        self.default_threshold = default_threshold
        self.cache: LRUCache[Hashable, Outcome] = LRUCache(settings.cache_entries)
        self._flights: SingleFlight[Hashable, tuple[Outcome, bool]] = SingleFlight()
        self._pool = ThreadPoolExecutor(max_workers=decode_threads(settings), thread_name_prefix="medlens-decode")
        # The pool's own queue is first in, first out: requests take turns before it instead.
        self._decode_turns = FairSemaphore(decode_threads(settings), fair=settings.queue_order == "fair")
        self.pdf_workers = PdfWorkers(settings)

    async def __aenter__(self) -> "Pipeline":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.pdf_workers.close()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    async def _off_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async with self._decode_turns:
            return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def _threshold_key(self, threshold: float | None) -> float:
        return self.default_threshold if threshold is None else float(threshold)

    # ------------------------------------------------------------ bytes

    async def outcome_of_bytes(self, data: bytes, threshold: float | None = None) -> tuple[Outcome, bool]:
        """Decode and classify image bytes once per (content, threshold); (outcome, from cache/shared)."""
        digest = await self._off_loop(_sha256, data) if len(data) > 64 * 1024 else _sha256(data)
        key = ("sha256", digest, self._threshold_key(threshold))
        hit = self.cache.get(key)
        if hit is not None:
            return hit, True
        (outcome, _), joined = await self._flights.run(key, partial(self._compute_bytes, data, threshold, key))
        return outcome, joined

    async def _compute_bytes(self, data: bytes, threshold: float | None, key: Hashable) -> tuple[Outcome, bool]:
        try:
            decoded = await self._off_loop(decode_image, data, self.settings, target_side=MODEL_SIDE)
            prediction = await self.batcher.classify(decoded.image, threshold)
            outcome = Outcome(prediction, None, decoded.width, decoded.height)
        except MedLensError as exc:
            outcome = Outcome(error=exc)
        if outcome.final:
            self.cache.put(key, outcome)
        return outcome, False

    async def classify_bytes(self, source: str, data: bytes, threshold: float | None = None) -> dict[str, Any]:
        """The Result for one uploaded or local image."""
        return await self._guarded(source, self.outcome_of_bytes(data, threshold))

    # ------------------------------------------------------------ URLs

    async def outcome_of_url(
        self, url: str, *, referer: str | None = None, threshold: float | None = None
    ) -> tuple[Outcome, bool]:
        """Fetch (or reuse) and classify one image URL; raises MedLensError for fetch failures."""
        if not isinstance(url, str):
            raise MedLensError("invalid_url", "each URL must be a string")
        if url.lstrip()[:5].lower() == "data:":
            # Decoded here, never fetched; base64 of a large one is real work, so off the loop.
            data = await self._off_loop(decode_data_url, url.strip(), self.settings.max_image_bytes)
            return await self.outcome_of_bytes(data, threshold)
        key = ("url", str(check_url(url)), self._threshold_key(threshold))
        hit = self.cache.get(key)
        if hit is not None:
            return hit, True
        (outcome, known_bytes), joined = await self._flights.run(
            key, partial(self._compute_url, url, referer, threshold, key)
        )
        return outcome, joined or known_bytes

    async def _compute_url(
        self, url: str, referer: str | None, threshold: float | None, key: Hashable
    ) -> tuple[Outcome, bool]:
        fetched = await self.fetcher.fetch(url, referer=referer)
        outcome, known_bytes = await self.outcome_of_bytes(fetched.data, threshold)
        if outcome.final:
            self.cache.put(key, outcome)
        return outcome, known_bytes

    async def classify_url(self, url: str, *, referer: str | None = None, threshold: float | None = None) -> dict[str, Any]:
        source = url if isinstance(url, str) else repr(url)
        return await self._guarded(source, self.outcome_of_url(url, referer=referer, threshold=threshold))

    async def classify_urls(
        self, urls: Sequence[str], *, page_url: str | None = None, threshold: float | None = None
    ) -> list[dict[str, Any]]:
        """Results in input order; duplicates are fetched and classified once."""
        return list(await asyncio.gather(*(self.classify_url(u, referer=page_url, threshold=threshold) for u in urls)))

    # ------------------------------------------------------------ pages and PDFs

    async def classify_page(self, url: str, *, threshold: float | None = None) -> dict[str, Any]:
        """Fetch a page, list its images and classify them with the page as Referer."""
        scan = await fetch_page(self.fetcher, url, self.settings)
        results = await self.classify_urls(scan.urls, page_url=scan.page_url, threshold=threshold)
        return {"page_url": scan.page_url, "images_found": len(scan.urls), "truncated": scan.truncated, "results": results}

    async def classify_pdf(self, data: bytes, name: str, *, threshold: float | None = None) -> dict[str, Any]:
        """Every image of a PDF, each with page, index, bbox and a JPEG thumbnail."""
        extraction = await self.pdf_workers.extract(data)
        results = await asyncio.gather(*(self._classify_pdf_image(name, item, threshold) for item in extraction.images))
        return {
            "pages": extraction.pages,
            "images": len(extraction.images),
            "truncated": extraction.truncated,
            "repaired": extraction.repaired,
            "results": list(results),
        }

    async def _classify_pdf_image(self, name: str, item: PdfImage, threshold: float | None) -> dict[str, Any]:
        extra = {
            "page": item.page,
            "index": item.index,
            "bbox": item.bbox,
            "thumbnail": jpeg_data_url(item.thumbnail),
        }

        async def outcome() -> tuple[Outcome, bool]:
            small = await self._off_loop(shrink_for_model, item.image)
            prediction = await self.batcher.classify(small, threshold)
            return Outcome(prediction, None, item.width, item.height), False

        return await self._guarded(pdf_source(name, item.page, item.index), outcome(), **extra)

    # ------------------------------------------------------------ one item never fails the rest

    async def _guarded(self, source: str, work: Any, **extra: Any) -> dict[str, Any]:
        try:
            outcome, cached = await work
        except MedLensError as exc:
            outcome, cached = Outcome(error=exc), False
        except Exception as exc:  # a bug must cost one item, not the request
            log.exception("unexpected failure on %s", source[:200])
            outcome, cached = Outcome(error=unexpected_error(exc)), False
        return result(source, outcome, cached=cached, **extra)

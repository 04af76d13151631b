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
from contextvars import ContextVar
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Hashable, Sequence, TypeVar

from medlens.errors import MedLensError, unexpected_error
from medlens.fairness import FairSemaphore
from medlens.ingest.decode import PixelBudget, decode_image, sniff_format
from medlens.ingest.fetch import Fetcher, check_url
from medlens.ingest.items import Item, Loaded, no_images
from medlens.ingest.load import Extractor, check_image_bytes, data_url_bytes, decode_threads, kind_of, read_cap, source_bytes
from medlens.ingest.media_worker import media_workers
from medlens.ingest.page import check_html, fetch_page, page_images
from medlens.ingest.pdf import make_thumbnail
from medlens.ingest.pdf_workers import PdfWorkers
from medlens.ingest.sources import is_data_url, is_url
from medlens.pipeline.batcher import MicroBatcher
from medlens.pipeline.cache import LRUCache, SingleFlight
from medlens.pipeline.results import (
    Outcome, container_result, error_result, item_source, jpeg_data_url, pdf_source, result, upload_source,
)
from medlens.pipeline.sizing import MODEL_SIDE, shrink_for_model
from medlens.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


# What a URL given to `medlens classify` may be: an image or other file, or a page to scan.
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/pdf,image/*;q=0.9,video/*;q=0.8,*/*;q=0.5"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flatten(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one Result: itself, or the images of a container (plus a video's summary)."""
    items = answer.get("items")
    if items is None:
        return [answer]
    if not items:  # a container with no image: its own row says so (no_images)
        return [{key: value for key, value in answer.items() if key != "items"}]
    rows = [{**row, "repaired": True} for row in items] if answer.get("repaired") else list(items)
    if answer.get("kind") == "video":
        rows.append({**{key: value for key, value in answer.items() if key != "items"}, "role": "summary"})
    return rows


_request_pixels: ContextVar[PixelBudget | None] = ContextVar("medlens_request_pixels", default=None)


def start_pixel_budget(settings: Settings) -> None:
    """Images decoded by this task and every task it starts from now on (one HTTP request's) share
    one `max_request_pixels` budget; work outside any request (the CLI) has none."""
    _request_pixels.set(PixelBudget(settings.max_request_pixels))


class Pipeline:
    """Classifies images from anywhere; owns the decode threads, the PDF workers and the result cache.

    `batcher` and `fetcher` are started and closed by whoever made them (the app's cleanup
    contexts, or the CLI); `close()` stops the decode threads and the PDF workers.
    """

    def __init__(
        self, settings: Settings, batcher: MicroBatcher, fetcher: Fetcher, *, default_threshold: float,
        thumbnails: bool = True,
    ) -> None:
        self.settings = settings
        self.thumbnails = thumbnails  # container images get one for the page's cards (the CLI prints none)
        self.batcher = batcher
        self.fetcher = fetcher
        self.default_threshold = default_threshold
        self.cache: LRUCache[Hashable, Outcome] = LRUCache(settings.cache_entries)
        self._flights: SingleFlight[Hashable, tuple[Outcome, bool]] = SingleFlight()
        self._pool = ThreadPoolExecutor(max_workers=decode_threads(settings), thread_name_prefix="medlens-decode")
        # The pool's own queue is first in, first out: requests take turns before it instead.
        self._decode_turns = FairSemaphore(decode_threads(settings), fair=settings.queue_order == "fair")
        self.pdf_workers = PdfWorkers(settings)
        self.media_workers = media_workers(settings)
        self.extractor = Extractor(settings, self.pdf_workers, self._off_loop, self.media_workers)

    async def __aenter__(self) -> "Pipeline":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.pdf_workers.close()
        await self.media_workers.close()
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
            decoded = await self._off_loop(
                decode_image, data, self.settings, target_side=MODEL_SIDE, budget=_request_pixels.get()
            )
            prediction = await self.batcher.classify(decoded.image, threshold)
            outcome = Outcome(prediction, None, decoded.width, decoded.height)
        except MedLensError as exc:
            outcome = Outcome(error=exc)
        if outcome.final:
            self.cache.put(key, outcome)
        return outcome, False

    async def classify_bytes(
        self, source: str, data: bytes, threshold: float | None = None, *, name: str = ""
    ) -> dict[str, Any]:
        """The Result for one uploaded, local or downloaded file: an image, or a container (PDF,
        archive, document, video, multi-frame image) whose images are its `items`."""
        return (await self._bytes_answer(source, data, threshold, name))[0]

    async def _bytes_answer(
        self, source: str, data: bytes, threshold: float | None, name: str
    ) -> tuple[dict[str, Any], Outcome | None]:
        """The Result, and the Outcome when the bytes were one plain image (cacheable by URL)."""
        kind = kind_of(data, name or source)
        if kind == "image":
            try:
                check_image_bytes(data, self.settings)
                outcome, cached = await self.outcome_of_bytes(data, threshold)
            except MedLensError as exc:
                outcome, cached = Outcome(error=exc), False
            return result(source, outcome, cached=cached), outcome
        try:
            loaded = await self.extractor.extract(data, name or source, kind=kind)
        except MedLensError as exc:
            return error_result(source, exc), None
        return await self._container_answer(source, loaded, threshold), None

    async def _container_answer(self, source: str, loaded: Loaded, threshold: float | None) -> dict[str, Any]:
        items = await asyncio.gather(*(self._classify_item(item_source(source, item.place), item, threshold)
                                       for item in loaded.items))
        return container_result(source, loaded, list(items), no_images(loaded))

    async def _classify_item(
        self, source: str, item: Item, threshold: float | None, **extra: Any
    ) -> dict[str, Any]:
        """One image of a container, with its place (and a thumbnail: the page shows it on its card)."""
        fields = {**item.place.fields(), **extra}
        if item.thumbnail is None and item.image is not None and self.thumbnails:
            item.thumbnail = await self._off_loop(make_thumbnail, item.image, self.settings.thumbnail_side)
        if item.thumbnail is not None:
            fields["thumbnail"] = jpeg_data_url(item.thumbnail)
        if item.dicom_modality is not None:
            fields["dicom_modality"] = item.dicom_modality
        if item.error is not None:
            return error_result(source, item.error, **fields)
        image = item.image
        assert image is not None

        async def outcome() -> tuple[Outcome, bool]:
            small = await self._off_loop(shrink_for_model, image)
            prediction = await self.batcher.classify(small, threshold)
            return Outcome(prediction, None, item.width, item.height), False

        return await self._guarded(source, outcome(), **fields)

    # ------------------------------------------------------------ URLs

    async def classify_url(self, url: str, *, referer: str | None = None, threshold: float | None = None) -> dict[str, Any]:
        """The Result for one URL (or `data:` URL): an image, or a container with its `items`.
        A plain image's outcome is cached under its URL too, so a page rescan costs no download."""
        source = url if isinstance(url, str) else repr(url)
        try:
            if not isinstance(url, str):
                raise MedLensError("invalid_url", "each URL must be a string")
            if is_data_url(url):
                # Decoded here, never fetched; base64 of a large one is real work, so off the loop.
                return await self.classify_bytes(source, await self._off_loop(data_url_bytes, url, self.settings), threshold)
            key = ("url", str(check_url(url)), self._threshold_key(threshold))
            hit = self.cache.get(key)
            if hit is not None:
                return result(source, hit, cached=True)
            (answer, outcome), joined = await self._flights.run(key, partial(self._url_answer, url, referer, threshold))
        except MedLensError as exc:
            return error_result(source, exc)
        if outcome is not None and outcome.final:
            self.cache.put(key, outcome)
        return {**answer, "cached": answer["cached"] or joined} if outcome is not None else answer

    async def _url_answer(self, url: str, referer: str | None, threshold: float | None) -> tuple[dict[str, Any], Outcome | None]:
        # The extension's image URLs: the image cap (a container behind a URL goes through classify_source).
        fetched = await self.fetcher.fetch(url, referer=referer)
        return await self._bytes_answer(url, fetched.data, threshold, fetched.final_url)

    async def classify_urls(
        self, urls: Sequence[str], *, page_url: str | None = None, threshold: float | None = None
    ) -> list[dict[str, Any]]:
        """Results in input order; duplicates are fetched and classified once."""
        return list(await asyncio.gather(*(self.classify_url(u, referer=page_url, threshold=threshold) for u in urls)))

    # ------------------------------------------------------------ pages and PDFs

    async def classify_page(self, url: str, *, threshold: float | None = None) -> dict[str, Any]:
        """Fetch a page, list its images and classify them with the page as Referer."""
        scan = await fetch_page(self.fetcher, url, self.settings, off_loop=self._off_loop)
        results = await self.classify_urls(scan.urls, page_url=scan.page_url, threshold=threshold)
        return {"page_url": scan.page_url, "images_found": len(scan.urls), "truncated": scan.truncated, "results": results}

    async def classify_pdf(self, data: bytes, name: str, *, threshold: float | None = None) -> dict[str, Any]:
        """Every image of a PDF, each with page, index, bbox and a JPEG thumbnail."""
        loaded = await self.extractor.extract(data, name, kind="pdf")
        results = await asyncio.gather(*(
            self._classify_item(pdf_source(name, item.place.page or 0, item.place.index or 0), item, threshold)
            for item in loaded.items
        ))
        return {
            "pages": loaded.pages,
            "images": len(loaded.items),
            "truncated": loaded.truncated,
            "repaired": loaded.repaired,
            "results": list(results),
        }

    async def classify_video(
        self, name: str, *, data: bytes | None = None, url: str | None = None, threshold: float | None = None
    ) -> dict[str, Any]:
        """A video's sampled frames (each with its time and a thumbnail) and its own summary."""
        if url is not None:
            fetched = await self.fetcher.fetch(url, max_bytes=self.settings.max_file_bytes, accept="video/*,*/*;q=0.5")
            data, name = fetched.data, url
        assert data is not None
        if kind_of(data, name) != "video":
            raise MedLensError("unsupported_format", "not a video MedLens reads (MP4, WebM, MOV, AVI, MKV)")
        loaded = await self.extractor.extract(data, name, kind="video")
        source = url or upload_source(name)
        answer = await self._container_answer(source, loaded, threshold)
        items = answer.pop("items")
        return {"kind": "video", "duration_s": loaded.duration_s, "frames": len(items), "truncated": loaded.truncated,
                "summary": answer, "results": items}

    # ------------------------------------------------------------ any input, as `medlens classify` takes it

    async def classify_source(self, source: str, *, threshold: float | None = None) -> list[dict[str, Any]]:
        """The rows of one source (a file, URL or `data:` URL): a page URL is scanned for its
        images, from the one download; anything else is read once and classified by its kind."""
        try:
            if is_url(source) and not is_data_url(source):
                fetched = await self.fetcher.fetch(source, max_bytes=read_cap(self.settings), accept=PAGE_ACCEPT)
                if sniff_format(fetched.data) == "HTML":
                    return await self._page_rows(fetched.data, fetched.content_type, fetched.final_url, threshold)
                return flatten(await self.classify_bytes(source, fetched.data, threshold, name=fetched.final_url))
            data = await source_bytes(source, self.settings, self._fetch, self._off_loop)
        except MedLensError as exc:
            return [error_result(source, exc)]
        return flatten(await self.classify_bytes(source, data, threshold, name=source))

    async def _page_rows(self, html: bytes, content_type: str, page_url: str, threshold: float | None) -> list[dict[str, Any]]:
        if len(html) > self.settings.max_html_bytes:
            raise MedLensError("too_large", f"page is {len(html)} bytes, over the limit of {self.settings.max_html_bytes}")
        check_html(html, content_type)
        found = await self._off_loop(page_images, html, page_url, self.settings, content_type)
        urls = found.urls[: self.settings.max_page_images]
        answers = await self.classify_urls(urls, page_url=page_url, threshold=threshold)
        return [row for answer in answers for row in flatten(answer)]

    async def _fetch(self, url: str, cap: int) -> bytes:
        return (await self.fetcher.fetch(url, max_bytes=cap)).data

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

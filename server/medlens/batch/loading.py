"""Sources -> image rows, for one batch worker: read or download, decode, expand PDFs.

A `Loader` owns one event loop (in its own thread), one Fetcher, one pool of decode threads and
one pool of warm PDF extraction processes (`PdfWorkers`, as the server) for its whole life,
shared by every call: connections to a host are reused across calls, the
per-host cap holds across everything the worker has in flight, and a caller thread can classify
one batch while the loop fetches and decodes the next. Every failure becomes an error row for its
source; nothing raises.

This is the load side of both engines and of Ray's load tasks: it imports neither the model nor
the web layer (tests/test_batch.py checks), so a load worker stays small.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Sequence

from PIL import Image

from medlens.batch.fetching import crawler_settings, fetch_with_retries
from medlens.errors import MedLensError
from medlens.ingest.fetch import Fetcher
from medlens.ingest.items import no_images
from medlens.ingest.load import Extractor, decode_threads, source_bytes
from medlens.ingest.media_worker import media_workers
from medlens.ingest.pdf_workers import PdfWorkers
from medlens.pipeline.results import SKIP_CODES
from medlens.pipeline.sizing import MODEL_SIDE, shrink_for_model
from medlens.settings import Settings

log = logging.getLogger(__name__)

Row = dict[str, Any]
PENDING = "pending"            # has an image, not classified yet
ALREADY_DONE = "already_done"  # in the output folder from an earlier run: counted, not written


def new_row(source: str, **values: Any) -> Row:
    row: Row = {
        "source": source, "page": None, "index": None, "label": None, "probability": None, "modality": None,
        "status": PENDING, "error_code": None, "error": None, "sha256": None, "width": None, "height": None,
        "image": None, "source_rows": 1, "member": None, "frame": None, "time_s": None, "dicom_modality": None,
        "role": None, "pick": "each", "group": None,
    }
    row.update(values)
    return row


def error_row(source: str, exc: MedLensError, **values: Any) -> Row:
    status = "skipped" if exc.code in SKIP_CODES else "error"
    return new_row(source, status=status, error_code=exc.code, error=exc.message, **values)


def done_row(source: str) -> Row:
    return new_row(source, status=ALREADY_DONE)


class Loader:
    """Loads batches of sources for one worker (see the module docstring). Thread-safe; close() it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = crawler_settings(settings)
        self._loop = asyncio.new_event_loop()
        self._decode_pool = ThreadPoolExecutor(decode_threads(settings), thread_name_prefix="medlens-batch-decode")
        self._loop.set_default_executor(self._decode_pool)
        self._thread = threading.Thread(target=self._loop.run_forever, name="medlens-batch-loader", daemon=True)
        self._thread.start()
        self._fetcher = Fetcher(self.settings)
        self._pdf_workers = PdfWorkers(self.settings)  # started lazily, by the first PDF
        self._media_workers = media_workers(self.settings)  # started by the first video or e-book
        self._extractor = Extractor(self.settings, self._pdf_workers, asyncio.to_thread, self._media_workers)
        self._run(self._fetcher.start()).result()

    def _run(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def submit(self, sources: Sequence[str]) -> Future[list[Row]]:
        """Start loading `sources`; the future's rows are in source order (a PDF's together)."""
        return self._run(self._load_all(list(sources)))

    def load(self, sources: Sequence[str]) -> list[Row]:
        return self.submit(sources).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._fetcher.close()).result()
        self._run(self._pdf_workers.close()).result()
        self._run(self._media_workers.close()).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._decode_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _load_all(self, sources: list[str]) -> list[Row]:
        per_source = await asyncio.gather(*(self._load_guarded(s) for s in sources))
        return [row for rows in per_source for row in rows]

    async def _load_guarded(self, source: str) -> list[Row]:
        try:
            rows = await self._load_one(source)
        except MedLensError as exc:
            rows = [error_row(source, exc)]
        except Exception as exc:  # a bug costs one source, not the job
            log.exception("unexpected failure on %s", source[:200])
            rows = [error_row(source, MedLensError("internal", f"{type(exc).__name__}: {exc}"))]
        for row in rows:
            row["source_rows"] = len(rows)
        return rows

    async def _load_one(self, source: str) -> list[Row]:
        data = await source_bytes(source, self.settings, self._fetch, asyncio.to_thread)
        loaded = await self._extractor.extract(data, source, target_side=MODEL_SIDE)
        if not loaded.items:
            # Still one row, so the source is accounted for (and skipped on --resume).
            return [error_row(source, no_images(loaded), pick=loaded.pick)]
        rows = []
        for item in loaded.items:
            place = {key: value for key, value in item.place.fields().items() if key != "bbox"}
            if item.error is not None:
                rows.append(error_row(source, item.error, sha256=item.sha256, pick=loaded.pick, group=item.group, **place))
                continue
            assert item.image is not None
            small = await asyncio.to_thread(shrink_for_model, item.image)
            rows.append(new_row(source, sha256=item.sha256, width=item.width, height=item.height, image=small,
                                dicom_modality=item.dicom_modality, pick=loaded.pick, group=item.group, **place))
        return rows

    async def _fetch(self, url: str, cap: int) -> bytes:
        return await fetch_with_retries(self._fetcher, url, max_bytes=cap, settings=self.settings)


def image_to_cells(image: Image.Image) -> dict[str, Any]:
    """An RGB image as Arrow-friendly cells (bytes and size), to cross Ray's object store."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return {"image": rgb.tobytes(), "image_width": rgb.width, "image_height": rgb.height}


def image_from_cells(row: Row) -> Image.Image:
    return Image.frombytes("RGB", (row["image_width"], row["image_height"]), row["image"])

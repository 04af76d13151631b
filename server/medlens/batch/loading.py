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
import hashlib
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Sequence

from PIL import Image

from medlens.batch.fetching import crawler_settings, fetch_with_retries
from medlens.batch.inputs import is_url
from medlens.errors import MedLensError
from medlens.ingest.decode import decode_image, sniff_format
from medlens.ingest.fetch import Fetcher
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
        "image": None, "source_rows": 1,
    }
    row.update(values)
    return row


def error_row(source: str, exc: MedLensError, **values: Any) -> Row:
    status = "skipped" if exc.code in SKIP_CODES else "error"
    return new_row(source, status=status, error_code=exc.code, error=exc.message, **values)


def done_row(source: str) -> Row:
    return new_row(source, status=ALREADY_DONE)


def decode_threads(settings: Settings) -> int:
    return settings.decode_workers if settings.decode_workers > 0 else min(4, os.cpu_count() or 1)


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
        settings = self.settings
        cap = max(settings.max_image_bytes, settings.max_pdf_bytes)
        if is_url(source):
            data = await fetch_with_retries(self._fetcher, source, max_bytes=cap, settings=settings)
        else:
            data = await asyncio.to_thread(read_file, source, cap)
        digest = hashlib.sha256(data).hexdigest()
        if sniff_format(data) == "PDF":
            return await self._load_pdf(source, data)
        if len(data) > settings.max_image_bytes:
            raise MedLensError("too_large", f"image is {len(data)} bytes, over the limit of {settings.max_image_bytes}")
        try:
            decoded = await asyncio.to_thread(decode_image, data, settings, target_side=MODEL_SIDE)
        except MedLensError as exc:
            return [error_row(source, exc, sha256=digest)]
        return [new_row(source, sha256=digest, width=decoded.width, height=decoded.height, image=decoded.image)]

    async def _load_pdf(self, source: str, data: bytes) -> list[Row]:
        extraction = await self._pdf_workers.extract(data)
        if not extraction.images:
            # Still one row, so the PDF is accounted for (and skipped on --resume).
            return [new_row(source, status="skipped", error_code="no_images",
                            error=f"PDF has no images on its {extraction.pages} page(s)")]
        rows = []
        for item in extraction.images:
            small = await asyncio.to_thread(shrink_for_model, item.image)
            rows.append(new_row(
                source, page=item.page, index=item.index, width=item.width, height=item.height, image=small,
                # the embedded image's own content hash (its decoded RGB pixels), not the PDF's
                sha256=hashlib.sha256(item.image.tobytes()).hexdigest(),
            ))
        return rows


def read_file(source: str, cap: int) -> bytes:
    try:
        with open(source, "rb") as fh:
            data = fh.read(cap + 1)
    except FileNotFoundError:
        raise MedLensError("not_found", f"no such file: {source}") from None
    except IsADirectoryError:
        raise MedLensError("not_found", f"{source} is a folder with no images or PDFs") from None
    except OSError as exc:
        raise MedLensError("not_found", f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > cap:
        raise MedLensError("too_large", f"{source} is over the size limit of {cap} bytes")
    return data


def image_to_cells(image: Image.Image) -> dict[str, Any]:
    """An RGB image as Arrow-friendly cells (bytes and size), to cross Ray's object store."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return {"image": rgb.tobytes(), "image_width": rgb.width, "image_height": rgb.height}


def image_from_cells(row: Row) -> Image.Image:
    return Image.frombytes("RGB", (row["image_width"], row["image_height"]), row["image"])

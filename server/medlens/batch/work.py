"""The work of one batch, shared by both engines: sources -> image rows -> classified rows.

`load_sources` reads or downloads each source (the server's Fetcher: SSRF guard, byte cap,
timeouts), decodes it like the server does (`decode_image` at the model's size) or expands a PDF
into its images (`extract_pdf_images_limited`, in a killable child process). Every failure
becomes an error row for that source; nothing raises. `classify_rows` runs the Classifier on the
rows that hold an image. Rows are plain dicts with the columns of `output.WORK_SCHEMA`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Sequence

from PIL import Image

from medlens.batch.inputs import is_url
from medlens.errors import MedLensError
from medlens.ingest.decode import decode_image, sniff_format
from medlens.ingest.fetch import Fetcher
from medlens.ingest.pdf import extract_pdf_images_limited
from medlens.model.classifier import Classifier
from medlens.pipeline.pipeline import MODEL_SIDE, shrink_for_model
from medlens.pipeline.results import SKIP_CODES
from medlens.settings import Settings

log = logging.getLogger(__name__)

Row = dict[str, Any]
PENDING = "pending"  # has an image, not classified yet
# Concurrent sources within one batch (downloads, decodes, PDF children).
LOAD_CONCURRENCY = 8


def model_name(classifier: Classifier) -> str:
    info = classifier.info
    return f"{info['backbone']}/{info['head_sha256']}"


def _row(source: str, **values: Any) -> Row:
    row: Row = {
        "source": source, "page": None, "index": None, "label": None, "probability": None, "modality": None,
        "status": PENDING, "error_code": None, "error": None, "sha256": None, "width": None, "height": None,
        "image": None, "image_width": None, "image_height": None, "source_rows": 1,
    }
    row.update(values)
    return row


def error_row(source: str, exc: MedLensError, **values: Any) -> Row:
    status = "skipped" if exc.code in SKIP_CODES else "error"
    return _row(source, status=status, error_code=exc.code, error=exc.message, **values)


def _image_values(image: Image.Image) -> dict[str, Any]:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return {"image": rgb.tobytes(), "image_width": rgb.width, "image_height": rgb.height}


def load_sources(sources: Sequence[str], settings: Settings) -> list[Row]:
    """Rows for `sources`: one per image (a PDF gives one per embedded image), errors included."""
    return asyncio.run(_load_all(list(sources), settings))


async def _load_all(sources: list[str], settings: Settings) -> list[Row]:
    slots = asyncio.Semaphore(LOAD_CONCURRENCY)
    async with Fetcher(settings) as fetcher:

        async def one(source: str) -> list[Row]:
            async with slots:
                try:
                    rows = await _load_one(source, settings, fetcher)
                except MedLensError as exc:
                    rows = [error_row(source, exc)]
                except Exception as exc:  # a bug costs one source, not the job
                    log.exception("unexpected failure on %s", source[:200])
                    rows = [error_row(source, MedLensError("internal", f"{type(exc).__name__}: {exc}"))]
            for row in rows:
                row["source_rows"] = len(rows)
            return rows

        per_source = await asyncio.gather(*(one(s) for s in sources))
    return [row for rows in per_source for row in rows]


async def _load_one(source: str, settings: Settings, fetcher: Fetcher) -> list[Row]:
    cap = max(settings.max_image_bytes, settings.max_pdf_bytes)
    if is_url(source):
        data = (await fetcher.fetch(source, max_bytes=cap)).data
    else:
        data = await asyncio.to_thread(_read_file, source, cap)
    digest = hashlib.sha256(data).hexdigest()
    if sniff_format(data) == "PDF":
        return await _load_pdf(source, data, settings)
    if len(data) > settings.max_image_bytes:
        raise MedLensError("too_large", f"image is {len(data)} bytes, over the limit of {settings.max_image_bytes}")
    try:
        decoded = await asyncio.to_thread(decode_image, data, settings, target_side=MODEL_SIDE)
    except MedLensError as exc:
        return [error_row(source, exc, sha256=digest)]
    return [_row(source, sha256=digest, width=decoded.width, height=decoded.height, **_image_values(decoded.image))]


def _read_file(source: str, cap: int) -> bytes:
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


async def _load_pdf(source: str, data: bytes, settings: Settings) -> list[Row]:
    extraction = await extract_pdf_images_limited(data, settings)
    if not extraction.images:
        # Still one row, so the PDF is accounted for (and skipped on --resume).
        return [_row(source, status="skipped", error_code="no_images",
                     error=f"PDF has no images on its {extraction.pages} page(s)")]
    rows = []
    for item in extraction.images:
        small = await asyncio.to_thread(shrink_for_model, item.image)
        pixels = _image_values(small)
        rows.append(_row(
            source, page=item.page, index=item.index, width=item.width, height=item.height,
            # the embedded image's own content hash (its decoded RGB pixels), not the PDF's
            sha256=hashlib.sha256(item.image.tobytes()).hexdigest(), **pixels,
        ))
    return rows


def classify_rows(
    classifier: Classifier, rows: list[Row], *, batch_size: int, threshold: float | None = None
) -> list[Row]:
    """Fill label/probability/modality of the pending rows (in forward passes of `batch_size`)."""
    pending = [row for row in rows if row["status"] == PENDING]
    for start in range(0, len(pending), max(1, batch_size)):
        chunk = pending[start:start + max(1, batch_size)]
        images = [Image.frombytes("RGB", (r["image_width"], r["image_height"]), r["image"]) for r in chunk]
        try:
            predictions = classifier.classify(images, threshold)
        except Exception as exc:  # the model failing on a batch costs that batch, loudly
            log.exception("model failed on a batch of %d images", len(chunk))
            err = exc if isinstance(exc, MedLensError) else MedLensError("model_error", f"{type(exc).__name__}: {exc}")
            for row in chunk:
                row.update(status="error", error_code=err.code, error=err.message)
            continue
        for row, pred in zip(chunk, predictions):
            row.update(status="ok", label=pred.label, probability=pred.probability, modality=pred.modality)
    for row in rows:
        row["image"] = None
    return rows

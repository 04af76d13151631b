"""Source -> loaded images (each with its place) or typed errors: the one path every caller takes.

`medlens classify`, `medlens batch` (both engines) and every server route get their bytes and
their images here, so one input gives the same images, places and error codes everywhere:

- `read_local` / `source_bytes`: a file is read once (with the codes a file can fail with, the
  same everywhere: not_found, read_failed, too_large), a `data:` URL decoded, a URL fetched once
  by the caller's fetch function (the server's Fetcher, or batch's with retries);
- `kind_of`: what the bytes really are (a suffix or a Content-Type proves nothing), sniffed;
- `Extractor.extract`: one extractor per container kind, each with its caps, each failure of one
  member, page or frame an `Item` with its error and its place, so the others are kept.

Heavy or crash-prone parsers (MuPDF for PDFs and e-books, FFmpeg for video) run in the killable
warm worker processes (`pdf_workers.ExtractionWorkers`); the rest runs in the caller's threads.
Nothing here imports the pipeline, the model or the server (tests/test_ingest_imports.py).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Awaitable, Callable

from medlens.errors import MedLensError
from medlens.ingest.decode import decode_image, sniff_format
from medlens.ingest.fetch import parse_data_url
from medlens.ingest.frames import extract_frames, frame_count
from medlens.ingest.items import Item, Loaded, Place, sha256
from medlens.ingest.sources import is_data_url, is_url
from medlens.settings import Settings

OffLoop = Callable[..., Awaitable[Any]]
Fetch = Callable[[str, int], Awaitable[bytes]]

# Kinds the bytes can be; each has one extractor (ingest/<kind>.py) except "image" (decode.py).
KINDS = ("image", "frames", "pdf", "document", "office", "archive", "dicom", "video")


def decode_threads(settings: Settings) -> int:
    """Threads decoding and extracting off the event loop (the server's, classify's, a batch loader's)."""
    return settings.decode_workers if settings.decode_workers > 0 else min(4, os.cpu_count() or 1)


# ---------------------------------------------------------------- reading once


def read_local(path: str, cap: int) -> bytes:
    """A file's bytes, refusing what is not a regular file before opening it (a pipe would block)."""
    p = Path(path)
    try:
        info = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise MedLensError("not_found", f"{path} is a link to {os.readlink(p)}, which does not exist") from None
        raise MedLensError("not_found", f"no such file or folder: {path}") from None
    except OSError as exc:
        raise MedLensError("read_failed", f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        try:
            os.listdir(p)
        except OSError as exc:
            raise MedLensError("read_failed", f"cannot list folder {path}: {exc.strerror or exc}") from None
        raise MedLensError("not_found", f"no images, documents or videos in folder {path}")
    if not stat.S_ISREG(info.st_mode):
        raise MedLensError("read_failed", f"{path} is not a regular file (a pipe, socket or device)")
    if info.st_size > cap:
        raise MedLensError("too_large", f"{path} is {info.st_size} bytes, over the size limit of {cap}")
    try:
        with open(p, "rb") as fh:
            data = fh.read(cap + 1)
    except FileNotFoundError:  # gone between the stat and the read
        raise MedLensError("not_found", f"no such file: {path}") from None
    except OSError as exc:
        raise MedLensError("read_failed", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > cap:
        raise MedLensError("too_large", f"{path} is over the size limit of {cap} bytes")
    return data


def read_cap(settings: Settings) -> int:
    """Bytes read from one file, download or upload before its kind is known."""
    return max(settings.max_image_bytes, settings.max_pdf_bytes, settings.max_file_bytes)


def data_url_bytes(url: str, settings: Settings) -> bytes:
    """The bytes of a `data:` URL (the one check of them; decoded, never fetched)."""
    return parse_data_url(url.strip(), settings.max_image_bytes)[0]


async def source_bytes(source: str, settings: Settings, fetch: Fetch, off_loop: OffLoop) -> bytes:
    """The bytes a source names, read, decoded or downloaded once."""
    cap = read_cap(settings)
    if is_data_url(source):
        return await off_loop(data_url_bytes, source, settings)
    if is_url(source):
        return await fetch(source, cap)
    return await off_loop(read_local, source, cap)


# ---------------------------------------------------------------- what the bytes are


def kind_of(data: bytes, name: str = "") -> str:
    """The container kind of `data` (one of KINDS). Unknown bytes are "image": decoding then says
    exactly what they are not (not_an_image, unsupported_format)."""
    fmt = sniff_format(data)
    if fmt == "PDF":
        return "pdf"
    if fmt in ("GIF", "WEBP", "PNG", "TIFF"):
        return "frames" if frame_count(data, fmt) > 1 else "image"
    return "image"


# ---------------------------------------------------------------- extraction


def check_image_bytes(data: bytes, settings: Settings) -> None:
    """A plain image is held to max_image_bytes, however it came (containers have their own caps)."""
    if len(data) > settings.max_image_bytes:
        raise MedLensError("too_large", f"image is {len(data)} bytes, over the limit of {settings.max_image_bytes}")


class Extractor:
    """Bytes -> `Loaded`, by kind. `workers` extract PDFs (and e-books, videos) in killable
    processes; `off_loop` runs the rest in the caller's decode threads."""

    def __init__(self, settings: Settings, workers: Any, off_loop: OffLoop) -> None:
        self.settings = settings
        self.workers = workers
        self.off_loop = off_loop

    async def extract(self, data: bytes, name: str = "", *, kind: str | None = None, target_side: int = 0) -> Loaded:
        """Every image of `data`; a failure of the whole source raises MedLensError."""
        kind = kind or kind_of(data, name)
        if kind == "pdf":
            return await self._pdf(data)
        if kind == "frames":
            return await self.off_loop(extract_frames, data, self.settings, target_side)
        check_image_bytes(data, self.settings)
        decoded = await self.off_loop(decode_image, data, self.settings, target_side=target_side)
        return Loaded("image", [Item(image=decoded.image, width=decoded.width, height=decoded.height, sha256=sha256(data))])

    async def _pdf(self, data: bytes) -> Loaded:
        extraction = await self.workers.extract(data)
        items = [
            Item(Place(page=i.page, index=i.index, bbox=i.bbox), i.image, i.width, i.height, thumbnail=i.thumbnail,
                 sha256=hashlib.sha256(i.image.tobytes()).hexdigest())
            for i in extraction.images
        ]
        return Loaded("pdf", items, pages=extraction.pages, truncated=extraction.truncated, repaired=extraction.repaired)

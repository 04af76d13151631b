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
import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Awaitable, Callable

from medlens.errors import MedLensError
from medlens.ingest.archive import Member, UnpackBudget, is_tar, tar_members, zip_members
from medlens.ingest.decode import decode_image, sniff_format
from medlens.ingest.dicom import extract_dicom
from medlens.ingest.fetch import parse_data_url
from medlens.ingest.frames import extract_frames, frame_count
from medlens.ingest.items import Item, Loaded, Place, no_images, sha256
from medlens.ingest.office import is_media, refuse_ole, zip_kind
from medlens.ingest.sources import is_data_url, is_url, suffix_of, wanted_in_folder
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

_DOCUMENT_FORMATS = {"MOBI": "mobi", "FB2": "fb2"}
_VIDEO_FORMATS = frozenset({"MP4", "MATROSKA", "AVI"})


def kind_of(data: bytes, name: str = "") -> str:
    """The container kind of `data` (one of KINDS). Unknown bytes are "image": decoding then says
    exactly what they are not (not_an_image, unsupported_format)."""
    fmt = sniff_format(data)
    if fmt == "PDF":
        return "pdf"
    if fmt in ("GIF", "WEBP", "PNG", "TIFF"):
        return "frames" if frame_count(data, fmt) > 1 else "image"
    if fmt == "ZIP":
        return zip_kind(*_zip_listing(data), name)
    if fmt in ("TAR", "GZIP") or fmt is None and suffix_of(name) in (".tar", ".tgz", ".tar.gz"):
        return "archive" if fmt == "TAR" or is_tar(data) else "image"
    if fmt == "DICOM" or fmt is None and suffix_of(name) == ".dcm":
        return "dicom"
    if fmt in _VIDEO_FORMATS:
        return "video"
    if fmt in _DOCUMENT_FORMATS:
        return "document"
    if fmt == "OLE":
        return "office"
    return "image"


def _zip_listing(data: bytes) -> tuple[list[str], bytes | None]:
    """Member names and the `mimetype` member of a ZIP (how EPUB and OpenDocument say what they are)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            mimetype = None
            if "mimetype" in names and archive.getinfo("mimetype").file_size <= 200:
                mimetype = archive.read("mimetype")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        return [], None  # the archive reader reports the damage, with its own code
    return names, mimetype


def document_type(data: bytes, name: str) -> str:
    """PyMuPDF's file type for an e-book or fixed-layout document."""
    fmt = sniff_format(data)
    if fmt in _DOCUMENT_FORMATS:
        return _DOCUMENT_FORMATS[fmt]
    names, mimetype = _zip_listing(data)
    if (mimetype or b"").strip() == b"application/epub+zip":
        return "epub"
    if any(n.endswith(".fdseq") for n in names):
        return "xps"
    return "cbz"


# ---------------------------------------------------------------- extraction


def check_image_bytes(data: bytes, settings: Settings) -> None:
    """A plain image is held to max_image_bytes, however it came (containers have their own caps)."""
    if len(data) > settings.max_image_bytes:
        raise MedLensError("too_large", f"image is {len(data)} bytes, over the limit of {settings.max_image_bytes}")


class Extractor:
    """Bytes -> `Loaded`, by kind. `workers` extract PDFs, `media_workers` e-books and videos, in
    killable processes; `off_loop` runs the rest (images, archives, office files, DICOM) in the
    caller's decode threads."""

    def __init__(self, settings: Settings, workers: Any, off_loop: OffLoop, media_workers: Any = None) -> None:
        self.settings = settings
        self.workers = workers
        self.media_workers = media_workers
        self.off_loop = off_loop

    async def extract(self, data: bytes, name: str = "", *, kind: str | None = None, target_side: int = 0,
                      depth: int = 0, budget: UnpackBudget | None = None) -> Loaded:
        """Every image of `data`; a failure of the whole source raises MedLensError."""
        kind = kind or kind_of(data, name)
        if kind == "pdf":
            return await self._pdf(data)
        if kind in ("document", "video"):
            if self.media_workers is None:
                raise MedLensError("internal", f"no worker processes for {kind} extraction here")
            job = document_type(data, name) if kind == "document" else "video"
            return await self.media_workers.extract(data, job=job)
        if kind == "frames":
            return await self.off_loop(extract_frames, data, self.settings, target_side)
        if kind == "dicom":
            return await self.off_loop(extract_dicom, data, self.settings)
        if kind in ("archive", "office"):
            return await self._archive(data, name, kind, depth, budget or UnpackBudget(self.settings.max_archive_bytes))
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

    async def _archive(self, data: bytes, name: str, kind: str, depth: int, budget: UnpackBudget) -> Loaded:
        """Every image of every member (archives inside opened to max_archive_depth), each placed
        by its member; a member that fails is one error item naming it."""
        if sniff_format(data) == "OLE":
            raise refuse_ole(data)
        wanted = is_media if kind == "office" else _archive_wants
        reader = zip_members if sniff_format(data) == "ZIP" else tar_members
        members, truncated = await self.off_loop(reader, data, self.settings, budget, wanted)
        loaded = Loaded(kind, truncated=truncated)
        for member in members:
            if len(loaded.items) >= self.settings.max_container_images:
                loaded.truncated = True
                break
            loaded.items.extend(await self._member(member, kind, depth, budget))
        del loaded.items[self.settings.max_container_images:]
        return loaded

    async def _member(self, member: Member, kind: str, depth: int, budget: UnpackBudget) -> list[Item]:
        here = Place(member=member.name)
        if member.error is not None:
            return [Item(here, error=member.error)]
        assert member.data is not None
        inner_kind = kind_of(member.data, member.name)
        if not wanted_in_folder(member.name) and inner_kind != "dicom":
            return []  # a suffix-less member that is not DICOM (a LICENSE, a README): not a picture
        if inner_kind in ("archive", "office") and depth + 1 >= self.settings.max_archive_depth:
            error = MedLensError("archive_bomb", f"{member.name}: archives nested more than "
                                 f"{self.settings.max_archive_depth} deep (max_archive_depth)")
            return [Item(here, error=error)]
        try:
            inner = await self.extract(member.data, member.name, kind=inner_kind, depth=depth + 1, budget=budget)
        except MedLensError as exc:
            return [Item(here, error=MedLensError(exc.code, f"{member.name}: {exc.message}"))]
        if not inner.items and inner.kind != "image":
            return [Item(here, error=no_images(inner))]
        for item in inner.items:
            item.place = item.place.inside(member.name)
            item.group = None if item.group is None else f"{member.name}/{item.group}"
        return inner.items


def _archive_wants(name: str) -> bool:
    """Archive members looked at: what a folder walk would pick up, and suffix-less files (a
    PACS export names its DICOM files by number)."""
    base = name.rsplit("/", 1)[-1]
    return wanted_in_folder(base) or ("." not in base and not base.startswith("."))

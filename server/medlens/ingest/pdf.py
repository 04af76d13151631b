"""Every distinct raster image inside a PDF, as a person would see it, with where it sits.

Images are taken from the PDF's image objects (not by rendering pages), so each figure is
classified at its own resolution. Soft masks are composited onto white and CMYK, Indexed, Lab
and other colour spaces are converted to RGB by MuPDF, so a figure looks as it does on screen.

Damaged files: MuPDF repairs what it can (a file cut short keeps the objects before the cut).
A repaired file that still yields images is answered with those images and `repaired=True`;
one that yields none is `pdf_malformed`, because "no images" would be a claim we cannot make.

PDFs are a classic way to make a parser spin forever, so extraction runs in a child process
killed at `settings.pdf_time_limit_s` (a thread cannot be stopped): the server keeps a few warm
ones (`pdf_workers.PdfWorkers`), one-off callers use `extract_pdf_images_limited`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, field
from io import BytesIO
from typing import BinaryIO

import pymupdf
from PIL import Image

from medlens.errors import MedLensError, plain_reason
from medlens.ingest.child_protocol import ChildReported, close_input, frame, read_frame_async, serve_jobs
from medlens.image_modes import to_rgb
from medlens.settings import Settings

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass
class PdfImage:
    """One embedded image; `bbox` is its first placement in PyMuPDF page coordinates (points,
    origin top-left), None when the image is not drawn directly on the page (e.g. in a pattern)."""

    page: int
    index: int
    bbox: list[float] | None
    image: Image.Image
    width: int
    height: int
    thumbnail: bytes
    xref: int


@dataclass
class PdfExtraction:
    """`index` of an image is its 1-based position in its page's image list, counting skipped ones."""

    pages: int
    images: list[PdfImage] = field(default_factory=list)
    truncated: bool = False
    repaired: bool = False
    skipped_small: int = 0
    skipped_duplicate: int = 0
    skipped_large: int = 0
    skipped_unreadable: int = 0


def _quiet_mupdf() -> None:
    # MuPDF prints repair notes to stderr for every damaged file; they are not actionable here.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)


def check_pdf_bytes(data: bytes, settings: Settings) -> None:
    """The checks that need no parser (size, empty, header), so a caller can refuse before it
    starts or wakes a process."""
    if len(data) > settings.max_pdf_bytes:
        raise MedLensError("too_large", f"PDF is {len(data)} bytes, more than the limit of {settings.max_pdf_bytes}")
    if not data:
        raise MedLensError("pdf_malformed", "the PDF is empty (0 bytes)")
    if b"%PDF-" not in data[:1024]:
        raise MedLensError("pdf_malformed", "not a PDF (no %PDF- header)")


def open_pdf(data: bytes, settings: Settings) -> pymupdf.Document:
    """Open PDF bytes, mapping every way that can fail onto too_large / pdf_malformed / pdf_encrypted."""
    check_pdf_bytes(data, settings)
    _quiet_mupdf()
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # MuPDF raises assorted types for damaged input
        raise MedLensError("pdf_malformed", f"cannot parse PDF: {plain_reason(exc)}") from exc
    if doc.needs_pass:
        doc.close()
        raise MedLensError("pdf_encrypted", "PDF is encrypted and needs a password")
    if doc.page_count == 0:
        doc.close()
        raise MedLensError("pdf_malformed", "PDF has no readable pages")
    return doc


def extract_pdf_images(data: bytes, settings: Settings, *, reduce_to: int = 0) -> PdfExtraction:
    """All distinct images of a PDF (up to the page and image caps), RGB, with position and thumbnail.

    With `reduce_to`, each image is box-reduced by the integer factor that keeps its shorter side
    >= reduce_to as soon as its thumbnail is made (what the model gets is the same; `width` and
    `height` stay the original's), so what is held and handed over is small."""
    doc = open_pdf(data, settings)
    try:
        result = _extract(doc, settings, reduce_to)
    except MedLensError:
        raise
    except Exception as exc:
        raise MedLensError("pdf_malformed", f"cannot read PDF: {plain_reason(exc)}") from exc
    finally:
        doc.close()
    if result.repaired and not result.images:
        raise MedLensError("pdf_malformed", "PDF is damaged and no image could be recovered from it")
    return result


def _extract(doc: pymupdf.Document, settings: Settings, reduce_to: int) -> PdfExtraction:
    out = PdfExtraction(pages=doc.page_count, repaired=bool(doc.is_repaired))
    seen_xrefs: set[int] = set()
    seen_digests: set[bytes] = set()
    held = 0  # pixels of the images kept so far
    if doc.page_count > settings.max_pdf_pages:
        out.truncated = True
    for page_no in range(min(doc.page_count, settings.max_pdf_pages)):
        try:
            page = doc[page_no]
            listed = page.get_images(full=True)
        except Exception:
            out.skipped_unreadable += 1
            continue
        for index, info in enumerate(listed, start=1):
            xref, smask, width, height = info[0], info[1], info[2], info[3]
            if xref in seen_xrefs:
                out.skipped_duplicate += 1
                continue
            seen_xrefs.add(xref)
            if min(width, height) < settings.min_side:
                out.skipped_small += 1
                continue
            if width * height > settings.max_pixels:
                out.skipped_large += 1
                continue
            if held + width * height > settings.max_pdf_pixels:  # the document's total: bounds its memory
                out.skipped_large += 1
                out.truncated = True
                continue
            pymupdf.TOOLS.mupdf_warnings(reset=True)
            try:
                image = _image_from_xref(doc, xref, smask)
            except Exception:
                out.skipped_unreadable += 1
                continue
            if _damaged(pymupdf.TOOLS.mupdf_warnings(reset=True), out.repaired):
                out.skipped_unreadable += 1
                continue
            if min(image.size) < settings.min_side:
                out.skipped_small += 1
                continue
            digest = hashlib.sha256(image.tobytes()).digest()
            if digest in seen_digests:
                out.skipped_duplicate += 1
                continue
            seen_digests.add(digest)
            if len(out.images) >= settings.max_pdf_images:
                out.truncated = True
                return out
            held += image.width * image.height
            thumbnail = make_thumbnail(image, settings.thumbnail_side)
            factor = min(image.size) // reduce_to if reduce_to > 0 else 1
            out.images.append(
                PdfImage(
                    page=page_no + 1,
                    index=index,
                    bbox=_first_bbox(page, info),
                    image=image.reduce(factor) if factor >= 2 else image,
                    width=image.width,
                    height=image.height,
                    thumbnail=thumbnail,
                    xref=xref,
                )
            )
    return out


def _image_from_xref(doc: pymupdf.Document, xref: int, smask: int) -> Image.Image:
    pix = pymupdf.Pixmap(doc, xref)
    if pix.alpha:
        pix = pymupdf.Pixmap(pix, 0)  # alpha from a colour-key /Mask: dropped, the SMask (if any) is applied below
    if pix.colorspace is None or pix.colorspace.n not in (1, 3):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    base = Image.frombytes(_MODES[pix.n], (pix.width, pix.height), pix.samples)
    if smask:
        mask_pix = pymupdf.Pixmap(doc, smask)
        if mask_pix.n != 1:
            mask_pix = pymupdf.Pixmap(pymupdf.csGRAY, mask_pix)
        mask = Image.frombytes("L", (mask_pix.width, mask_pix.height), mask_pix.samples)
        if mask.size != base.size:
            mask = mask.resize(base.size, Image.Resampling.BILINEAR)
        rgba = base.convert("RGBA")
        rgba.putalpha(mask)
        return to_rgb(rgba)
    return to_rgb(base)


_DAMAGE = ("premature end", "truncated", "corrupt", "unexpected end", "not enough data", "read error")


def _damaged(warnings: str, repaired: bool) -> bool:
    """Whether MuPDF had to make up pixels: a half-decoded figure would be classified as something else."""
    if not warnings:
        return False
    return repaired or any(word in warnings.lower() for word in _DAMAGE)


def _first_bbox(page: pymupdf.Page, info: tuple) -> list[float] | None:
    try:
        rects = page.get_image_rects(info[0])
    except Exception:
        return None
    for rect in rects:
        if not rect.is_empty and rect.is_valid:
            return [round(float(v), 2) for v in (rect.x0, rect.y0, rect.x1, rect.y1)]
    return None


def make_thumbnail(image: Image.Image, side: int) -> bytes:
    """Small JPEG for the popup's results grid (longest side `side`)."""
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = BytesIO()
    thumb.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


# ---------------------------------------------------------------- time-limited, in a child process
#
# The child is a fresh `python -m medlens.ingest.pdf` (no fork of a threaded server, no dependency
# on how the parent's __main__ was started), speaking child_protocol's framing. Per document, in:
# a JSON settings object and the PDF; out: a JSON header and per image its JPEG thumbnail and raw
# RGB pixels, box-reduced to `pdf_image_side` (a 49-Mpx figure is ~100 kB, not 147 MB, to copy
# through the pipe and onto the server's event loop).

READY = b"medlens-pdf-ready"


def _answer(out: BinaryIO, settings_json: bytes, data: bytes) -> None:
    try:
        settings = Settings(**json.loads(settings_json))
        result = extract_pdf_images(data, settings, reduce_to=settings.pdf_image_side)
    except MedLensError as exc:
        out.write(frame(json.dumps({"error": exc.to_dict()}).encode()))
        return
    except Exception as exc:
        out.write(frame(json.dumps({"error": {"code": "pdf_malformed", "message": f"cannot read PDF: {plain_reason(exc)}"}}).encode()))
        return
    header = {name: getattr(result, name) for name in _SUMMARY_FIELDS}
    header["images"] = [
        {**{name: getattr(item, name) for name in ("page", "index", "bbox", "width", "height", "xref")},
         "pixel_width": item.image.width, "pixel_height": item.image.height}
        for item in result.images
    ]
    out.write(frame(json.dumps(header).encode()))
    for item in result.images:
        out.write(frame(item.thumbnail))
        out.write(frame(item.image.tobytes()))


_SUMMARY_FIELDS = ("pages", "truncated", "repaired", "skipped_small", "skipped_duplicate", "skipped_large", "skipped_unreadable")


def request_frames(data: bytes, settings: Settings) -> bytes:
    """What a child reads for one document: the settings, then the PDF."""
    return frame(json.dumps(dataclasses.asdict(settings)).encode()) + frame(data)


async def read_answer(stdout: asyncio.StreamReader) -> PdfExtraction:
    """One document's answer from a child: its extraction, or its MedLensError raised here."""
    header = json.loads(await read_frame_async(stdout))
    if "error" in header:
        raise ChildReported(str(header["error"]["code"]), str(header["error"]["message"]))
    result = PdfExtraction(**{name: header[name] for name in _SUMMARY_FIELDS})
    for meta in header["images"]:
        thumbnail = await read_frame_async(stdout)
        pixels = await read_frame_async(stdout)
        size = (int(meta["pixel_width"]), int(meta["pixel_height"]))
        if len(pixels) != size[0] * size[1] * 3:
            raise MedLensError("pdf_malformed", "PDF extraction returned inconsistent image data")
        result.images.append(
            PdfImage(
                page=int(meta["page"]),
                index=int(meta["index"]),
                bbox=meta["bbox"],
                image=Image.frombytes("RGB", size, pixels),
                width=int(meta["width"]),
                height=int(meta["height"]),
                thumbnail=thumbnail,
                xref=int(meta["xref"]),
            )
        )
    return result


async def start_child() -> asyncio.subprocess.Process:
    """A new extraction process, started but not yet known to be ready (see READY)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", "medlens.ingest.pdf",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def extract_pdf_images_limited(data: bytes, settings: Settings) -> PdfExtraction:
    """`extract_pdf_images` off the event loop, in a child process of its own killed after
    pdf_time_limit_s.

    Costs a Python start-up (about a second) per PDF; in exchange a PDF that makes MuPDF spin or
    crash takes down only its own process. The server keeps warm ones instead (`PdfWorkers`).
    """
    check_pdf_bytes(data, settings)
    proc = await start_child()
    assert proc.stdin is not None and proc.stdout is not None
    try:
        async with asyncio.timeout(settings.pdf_time_limit_s):
            if await read_frame_async(proc.stdout) != READY:
                raise ValueError("the extraction process did not start")
            proc.stdin.write(request_frames(data, settings))
            await proc.stdin.drain()
            proc.stdin.close()
            return await read_answer(proc.stdout)
    except TimeoutError as exc:
        raise MedLensError("pdf_timeout", f"PDF extraction took longer than {settings.pdf_time_limit_s}s") from exc
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError, TypeError) as exc:
        if proc.returncode is None:  # alive but talking nonsense: it cannot be trusted with more
            proc.kill()
        close_input(proc)
        await proc.wait()
        raise MedLensError("pdf_malformed", f"PDF extraction failed (child exit code {proc.returncode})") from exc
    finally:
        if proc.returncode is None:
            proc.kill()
        close_input(proc)
        await proc.wait()


if __name__ == "__main__":
    sys.exit(serve_jobs(READY, _answer))

"""Untrusted bytes → one RGB image the model can use, or a precise reason why not.

The format is sniffed from the bytes (a server's Content-Type or a file name proves nothing),
only common raster formats are decoded, and the size is checked from the header before any
pixel is decoded, so a 40-byte PNG claiming 100 000 x 100 000 pixels costs nothing.
"""

from __future__ import annotations

import math
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageOps

from medlens.errors import MedLensError, plain_reason
from medlens.image_modes import to_rgb
from medlens.ingest.image_plugins import PLUGIN_EXTRAS, pillow_format, plugin_formats
from medlens.settings import Settings

# Formats decoded; everything else is refused before Pillow sees it (Pillow can parse far more,
# and each extra parser is extra attack surface for bytes from the web).
RASTER_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "JPEG2000"})
# Recognised images we deliberately do not decode (HEIC and JXL: unless their plugin extra is installed).
UNSUPPORTED_FORMATS: frozenset[str] = frozenset({"SVG", "HEIC", "ICO", "PSD", "JXL", "EMF", "WMF"})
# Recognised things that are not images at all (containers: ingest/load.py takes them apart).
NON_IMAGE_FORMATS: frozenset[str] = frozenset({"HTML", "XML", "PDF", "TEXT", "JSON", "ZIP", "GZIP", "TAR", "DICOM",
                                               "MP4", "MATROSKA", "AVI", "OLE", "MOBI", "FB2"})
# ISO media brands that are still images, not video.
_IMAGE_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heif": "HEIC",
                 b"mif1": "HEIC", b"msf1": "HEIC"}

_ORIENTATION_TAG = 0x0112
_SWAPS_SIDES = {5, 6, 7, 8}
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field


@dataclass
class DecodedImage:
    """A decoded image; `width`/`height` are the original's as displayed, `image` may be smaller."""

    image: Image.Image
    width: int
    height: int
    format: str


def sniff_format(data: bytes) -> str | None:
    """Name the format from magic bytes (`"JPEG"`, `"SVG"`, `"HTML"`, `"TEXT"`, ...); None if unknown."""
    head = data[:64]
    if data[128:132] == b"DICM":
        return "DICOM"  # first: the 128-byte preamble before it may look like anything (often TIFF)
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and len(data) >= 26:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        return _IMAGE_BRANDS.get(head[8:12], "MP4")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "MATROSKA"  # WebM and MKV
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "OLE"  # an encrypted Office file, or a legacy .doc/.ppt/.xls
    if head[40:44] == b" EMF":
        return "EMF"
    if head[:4] == b"\xd7\xcd\xc6\x9a" or (head[:2] in (b"\x01\x00", b"\x02\x00") and head[2:4] == b"\x09\x00"):
        return "WMF"
    if data[60:68] == b"BOOKMOBI":
        return "MOBI"
    if data[257:262] == b"ustar":
        return "TAR"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG2000"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JXL"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    if head[:4] == b"8BPS":
        return "PSD"
    if head[:4] == b"PK\x03\x04":
        return "ZIP"
    if head[:2] == b"\x1f\x8b":
        return "GZIP"
    if b"%PDF-" in data[:1024]:
        return "PDF"
    return _sniff_text(data[:4096])


def _sniff_text(head: bytes) -> str | None:
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            text = head[len(bom):].decode(codec, errors="ignore")
            break
    else:
        if b"\x00" in head:
            return None
        text = head.decode("utf-8", errors="ignore")
        if len(text) < 0.9 * len(head.decode("latin-1")):
            return None
    lowered = text.lstrip().lower()
    if "<fictionbook" in lowered[:1024]:
        return "FB2"  # an e-book (PyMuPDF reads it), though it has a <body>
    if "<svg" in lowered[:2048]:
        return "SVG"
    if lowered.startswith(("<!doctype html", "<html", "<head", "<body", "<script", "<iframe", "<div", "<p>", "<!--", "<meta", "<title", "<a ", "<table")):
        return "HTML"
    if "<html" in lowered[:2048] or "<body" in lowered[:2048]:
        return "HTML"
    if lowered.startswith("<?xml"):
        return "XML"
    if lowered.startswith(("{", "[")):
        return "JSON"
    if not text.strip():
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return "TEXT" if printable >= 0.95 * len(text) else None


def check_format(data: bytes) -> str:
    """The sniffed raster format of `data`, or the MedLensError that says why it cannot be decoded."""
    if not data:
        raise MedLensError("not_an_image", "empty body")
    fmt = sniff_format(data)
    if fmt in RASTER_FORMATS or fmt in plugin_formats():
        return fmt  # type: ignore[return-value]
    if fmt in PLUGIN_EXTRAS:
        raise MedLensError("unsupported_format", f"{fmt} images need a plugin: pip install 'medlens[{PLUGIN_EXTRAS[fmt]}]'")
    if fmt in UNSUPPORTED_FORMATS:
        raise MedLensError("unsupported_format", f"{fmt} images are not supported (JPEG, PNG, GIF, WebP, BMP, TIFF, "
                           "AVIF, JPEG 2000 are)")
    if fmt in NON_IMAGE_FORMATS:
        raise MedLensError("not_an_image", f"content is {fmt}, not an image")
    raise MedLensError("not_an_image", "content is not a recognised image format")


def jpeg_scans(data: bytes, stop_after: int) -> tuple[int, int]:
    """(scans, bytes of entropy-coded data) of a JPEG, counted by walking its markers, in linear
    time and without decoding; stops counting after `stop_after` scans.

    Decoding cost grows with the number of scans times the pixels (a progressive JPEG can repeat
    a 100-byte scan thousands of times, each a full pass over the image), and a JPEG with no scan
    data at all is decoded by libjpeg as a grey picture, not refused. Both are visible here.
    """
    scans = entropy = 0
    pos, end = 2, len(data)
    while pos + 4 <= end and scans <= stop_after:
        if data[pos] != 0xFF:
            break  # garbage between segments: Pillow will say what is wrong
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            break
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        seg_end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker != 0xDA:
            pos = seg_end
            continue
        scans += 1
        scan_end = seg_end
        while True:
            scan_end = data.find(b"\xff", scan_end)
            if scan_end < 0 or scan_end + 1 >= end:
                scan_end = end
                break
            if data[scan_end + 1] == 0 or 0xD0 <= data[scan_end + 1] <= 0xD7 or data[scan_end + 1] == 0xFF:
                scan_end += 1 if data[scan_end + 1] == 0xFF else 2
                continue
            break
        entropy += max(0, scan_end - seg_end)
        pos = scan_end
    return scans, entropy


def _check_jpeg_structure(data: bytes, settings: Settings) -> None:
    scans, entropy = jpeg_scans(data, settings.max_jpeg_scans)
    if scans > settings.max_jpeg_scans:
        raise MedLensError(
            "decode_failed",
            f"JPEG has more than {settings.max_jpeg_scans} scans (max_jpeg_scans): decoding it would cost "
            "a full pass over the image per scan",
        )
    if scans == 0 or entropy == 0:
        raise MedLensError("decode_failed", "JPEG has headers but no image data (no scan data to decode)")


def draft_size(width: int, height: int, target_side: int) -> tuple[int, int] | None:
    """Size to ask the JPEG decoder for so the shorter side stays >= target_side; None = full size."""
    short = min(width, height)
    if target_side <= 0 or short <= target_side:
        return None
    scale = target_side / short
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


class PixelBudget:
    """Pixels one request may still decode, shared by its decode threads (`max_request_pixels`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def spend(self, pixels: int) -> None:
        with self._lock:
            if self.used + pixels > self.limit:
                raise MedLensError(
                    "too_many_pixels",
                    f"this request's images add up to more than {self.limit} pixels (max_request_pixels): "
                    "send fewer or smaller images at a time",
                )
            self.used += pixels


def decode_image(
    data: bytes, settings: Settings, *, target_side: int = 256, budget: PixelBudget | None = None
) -> DecodedImage:
    """Decode untrusted bytes to RGB, refusing anything too big, too small, broken or not a raster.

    JPEGs are decoded at a reduced scale (DCT scaling, much cheaper) as long as the shorter side
    stays >= `target_side`; pass 0 for full size. Pillow's warnings about the input (bomb
    warnings, odd EXIF) are not actionable for bytes from the web and are suppressed here.
    """
    fmt = check_format(data)
    if fmt == "JPEG":
        _check_jpeg_structure(data, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(BytesIO(data), formats=[pillow_format(fmt)])
        except Image.DecompressionBombError as exc:
            raise MedLensError("too_many_pixels", f"{fmt} header claims too many pixels: {plain_reason(exc)}") from exc
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
            raise MedLensError("decode_failed", f"cannot read {fmt} header: {plain_reason(exc)}") from exc
        try:
            decoded = _decode_opened(img, fmt, settings, target_side, budget)
        except BaseException:
            img.close()
            raise
        if decoded.image is not img:  # an upright RGB image is returned as decoded, uncopied
            img.close()
        return decoded


def _decode_opened(
    img: Image.Image, fmt: str, settings: Settings, target_side: int, budget: PixelBudget | None
) -> DecodedImage:
    width, height = img.size
    if width * height > settings.max_pixels:
        raise MedLensError(
            "too_many_pixels", f"{width}x{height} = {width * height} pixels exceeds the limit of {settings.max_pixels}"
        )
    if width <= 0 or height <= 0:
        raise MedLensError("decode_failed", f"{fmt} header has an empty size {width}x{height}")
    try:
        orientation = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not sink an otherwise fine image
        orientation = 1
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    if min(width, height) < settings.min_side:
        raise MedLensError("too_small", f"{width}x{height} is smaller than {settings.min_side} pixels on a side")
    try:
        if fmt == "JPEG":
            size = draft_size(img.size[0], img.size[1], target_side)
            if size is not None:
                img.draft("RGB", size)
        if budget is not None:
            budget.spend(img.size[0] * img.size[1])  # what is about to be decoded (after any draft)
        img.load()
        oriented = (ImageOps.exif_transpose(img) or img) if orientation != 1 else img  # no full-size copy when upright
        rgb = to_rgb(oriented, block_bytes=settings.window_block_bytes)
        rgb.load()
    except MedLensError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error, MemoryError) as exc:
        raise MedLensError("decode_failed", f"cannot decode {fmt} data: {plain_reason(exc)}") from exc
    return DecodedImage(image=rgb, width=width, height=height, format=fmt)

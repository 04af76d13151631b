"""Images with more than one frame: multi-page TIFFs (every page a row) and animated GIF, WebP
and PNG (a few frames spread over the animation; the image's answer is its most medical frame).

Pillow decodes all of them; what is added here is which frames, and the caps: pixels per frame
are checked from the header as for any image, and at most `max_tiff_pages` pages or
`frames_per_image` frames are decoded, so a 10 000-frame GIF costs what four frames cost.
"""

from __future__ import annotations

import warnings
from io import BytesIO

from PIL import Image

from medlens.errors import MedLensError
from medlens.image_modes import to_rgb
from medlens.ingest.decode import check_format
from medlens.ingest.items import Item, Loaded, Place, sha256
from medlens.settings import Settings

_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError)


def frame_count(data: bytes, fmt: str) -> int:
    """Frames (or pages) of an image, 1 when it is a still or cannot be opened (decoding then says why)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(BytesIO(data), formats=[fmt]) as img:
                if not getattr(img, "is_animated", False):
                    return 1
                return int(getattr(img, "n_frames", 1))
        except Exception:  # a broken header is decode.py's to report, with its own code
            return 1


def spread(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over `count` frames, first and last included."""
    if count <= 0:
        return []
    if wanted <= 1 or count == 1:
        return [0]
    step = (count - 1) / (min(wanted, count) - 1)
    return sorted({round(i * step) for i in range(min(wanted, count))})


def extract_frames(data: bytes, settings: Settings, target_side: int = 0) -> Loaded:
    """The pages of a TIFF (pick "each") or spread frames of an animation (pick "most_medical")."""
    fmt = check_format(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError as exc:
            raise MedLensError("too_many_pixels", f"{fmt} header claims too many pixels: {exc}") from exc
        except _READ_ERRORS as exc:
            raise MedLensError("decode_failed", f"cannot read {fmt} header: {exc}") from exc
        with img:
            count = int(getattr(img, "n_frames", 1))
            pages = fmt == "TIFF"
            chosen = list(range(min(count, settings.max_tiff_pages))) if pages else spread(count, settings.frames_per_image)
            items = [_frame(img, i, pages, settings) for i in chosen]
    digest = sha256(data)
    for item in items:
        item.sha256 = digest
        item.group = None if pages else ""
    return Loaded("frames", items, pick="each" if pages else "most_medical", pages=count if pages else None,
                  truncated=pages and count > len(chosen))


def _frame(img: Image.Image, index: int, pages: bool, settings: Settings) -> Item:
    place = Place(page=index + 1) if pages else Place(frame=index)
    try:
        img.seek(index)
        width, height = img.size
        if width * height > settings.max_pixels:
            raise MedLensError("too_many_pixels", f"{width}x{height} = {width * height} pixels exceeds the limit of {settings.max_pixels}")
        if min(width, height) < settings.min_side:
            raise MedLensError("too_small", f"{width}x{height} is smaller than {settings.min_side} pixels on a side")
        rgb = to_rgb(img.copy())
        rgb.load()
    except MedLensError as exc:
        return Item(place, error=exc)
    except (*_READ_ERRORS, Image.DecompressionBombError) as exc:
        return Item(place, error=MedLensError("decode_failed", f"cannot decode frame {index}: {exc}"))
    return Item(place, rgb, width, height)

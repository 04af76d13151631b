"""DICOM files (a PACS export, a `.dcm`, or any file with the DICM preamble) -> images as a
radiologist's viewer would first show them.

pydicom reads the file and decodes its pixels (uncompressed and RLE itself; JPEG, JPEG-LS and
JPEG 2000 through the pylibjpeg handlers), all in the optional extra `medlens[dicom]`; without
it a DICOM file is `missing_dependency`, saying which extra to install. Each frame gets the
modality LUT (rescale slope/intercept to real units), then the file's first VOI window (or,
without one, the 0.5-99.5 percentile range), MONOCHROME1 is inverted so bone is white, and a
multi-frame file gives `frames_per_image` frames spread over it (its answer is the most medical).
The Modality tag (CT, MR, US, ...) is reported beside the model's answer and never used by it.
"""

from __future__ import annotations

import math
from io import BytesIO
from typing import Any

import numpy as np
from PIL import Image

from medlens.errors import MedLensError
from medlens.ingest.frames import spread
from medlens.ingest.items import Item, Loaded, Place, sha256
from medlens.settings import Settings

EXTRA = "pip install 'medlens[dicom]'"


def _pydicom() -> Any:
    try:
        import pydicom
        import pydicom.pixels  # noqa: F401
    except ImportError as exc:
        raise MedLensError("missing_dependency", f"DICOM files need pydicom: {EXTRA} ({exc.name} is missing)") from exc
    return pydicom


def extract_dicom(data: bytes, settings: Settings) -> Loaded:
    pydicom = _pydicom()
    from pydicom.pixels import apply_modality_lut, pixel_array

    try:
        ds = pydicom.dcmread(BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise MedLensError("decode_failed", f"cannot read the DICOM file: {type(exc).__name__}: {exc}") from exc
    modality = str(ds.get("Modality", "") or "") or None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise MedLensError("no_images", "the DICOM file has no pixel data (a report, structured or presentation object)")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        count = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise MedLensError("decode_failed", f"the DICOM file has no usable image size: {exc}") from exc
    if rows * cols > settings.max_pixels:
        raise MedLensError("too_many_pixels", f"{cols}x{rows} = {rows * cols} pixels exceeds the limit of {settings.max_pixels}")
    if min(rows, cols) < settings.min_side:
        raise MedLensError("too_small", f"{cols}x{rows} is smaller than {settings.min_side} pixels on a side")
    chosen = spread(count, settings.frames_per_image)
    digest = sha256(data)
    items = []
    for index in chosen:
        place = Place(frame=index) if count > 1 else Place()
        try:
            pixels = pixel_array(ds, index=index if count > 1 else None)
            image = _to_image(pixels, ds, apply_modality_lut)
        except MedLensError as exc:
            items.append(Item(place, error=exc, dicom_modality=modality, sha256=digest))
            continue
        except Exception as exc:
            items.append(Item(place, error=_pixel_error(exc, ds), dicom_modality=modality, sha256=digest))
            continue
        items.append(Item(place, image, image.width, image.height, sha256=digest, dicom_modality=modality))
    if count > 1:
        for item in items:
            item.group = ""
    return Loaded("dicom", items, pick="most_medical" if count > 1 else "each")


def _pixel_error(exc: Exception, ds: Any) -> MedLensError:
    text = str(exc)
    if "missing" in text.lower() and ("plugin" in text.lower() or "dependenc" in text.lower() or "handler" in text.lower()):
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax)
        return MedLensError("missing_dependency", f"decoding {name} pixel data needs the pylibjpeg handlers: {EXTRA}")
    return MedLensError("decode_failed", f"cannot decode the DICOM pixel data: {type(exc).__name__}: {text[:200]}")


def _to_image(pixels: np.ndarray, ds: Any, modality_lut: Any) -> Image.Image:
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if samples == 3 or pixels.ndim == 3:
        rgb = pixels.astype(np.float64)
        if pixels.dtype != np.uint8:
            rgb = _scale(rgb, float(np.nanmin(rgb)), float(np.nanmax(rgb)))
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    values = np.asarray(modality_lut(pixels, ds), dtype=np.float64)
    low, high = _window(ds, values)
    grey = np.rint(_scale(values, low, high))
    if photometric == "MONOCHROME1":
        grey = 255.0 - grey
    return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")


def _window(ds: Any, values: np.ndarray) -> tuple[float, float]:
    """The first VOI window (centre, width) in the file, else the 0.5-99.5 percentile range."""
    try:
        c, w = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        if math.isfinite(c) and math.isfinite(w) and w >= 1:
            return c - w / 2, c + w / 2
    except (TypeError, ValueError, IndexError):
        pass
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise MedLensError("decode_failed", "the DICOM pixel data holds no finite values")
    low, high = np.percentile(finite, [0.5, 99.5])
    return float(low), float(high)


def _first(value: Any) -> float:
    """A DICOM number, or the first of several (WindowCenter may hold one per window)."""
    try:
        return float(value)
    except TypeError:
        return float(value[0])


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if not high > low:
        return np.zeros(values.shape, dtype=np.float64)
    return np.clip((values - low) * (255.0 / (high - low)), 0, 255)

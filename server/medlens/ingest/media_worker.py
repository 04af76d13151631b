"""The media extraction process: videos (PyAV/FFmpeg) and e-books (MuPDF), killable and warm.

`python -m medlens.ingest.media_worker` speaks child_protocol's framing, as the PDF child does.
In, per job: a JSON header (`job`: "video" or a PyMuPDF file type, and the settings) and the
bytes. Out: a JSON header (the `Loaded` fields and, per item, its place, size, group and error)
and per decoded item its JPEG thumbnail (may be empty) and raw RGB pixels; or `{"error": {...}}`.
`MEDIA_CHILD` tells the pool (`pdf_workers.ExtractionWorkers`) how to run it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any, BinaryIO

from PIL import Image

from medlens.errors import MedLensError
from medlens.ingest.items import Item, Loaded, Place
from medlens.ingest.child_protocol import ChildReported, frame, read_frame_async, serve_jobs
from medlens.ingest.pdf import make_thumbnail
from medlens.ingest.pdf_workers import ChildKind, ExtractionWorkers
from medlens.settings import Settings

READY = b"medlens-media-ready"
_LOADED_FIELDS = ("kind", "pick", "pages", "truncated", "repaired", "duration_s")


def run_job(job: str, data: bytes, settings: Settings) -> Loaded:
    if job == "video":
        from medlens.ingest.video import extract_video

        loaded = extract_video(data, settings)
    else:
        from medlens.ingest.documents import extract_document

        loaded = extract_document(data, job, settings)
    for item in loaded.items:
        if item.image is not None and item.thumbnail is None:
            item.thumbnail = make_thumbnail(item.image, settings.thumbnail_side)
    return loaded


def _answer(out: BinaryIO, header_json: bytes, data: bytes) -> None:
    try:
        header = json.loads(header_json)
        loaded = run_job(str(header["job"]), data, Settings(**header["settings"]))
    except MedLensError as exc:
        out.write(frame(json.dumps({"error": exc.to_dict()}).encode()))
        return
    except Exception as exc:  # a library failing on odd input: this input's error, the process lives on
        error = {"code": "decode_failed", "message": f"cannot read the file: {type(exc).__name__}"}
        out.write(frame(json.dumps({"error": error}).encode()))
        return
    meta: dict[str, Any] = {name: getattr(loaded, name) for name in _LOADED_FIELDS}
    meta["items"] = [
        {"place": item.place.fields(), "width": item.width, "height": item.height, "group": item.group,
         "sha256": item.sha256, "error": item.error.to_dict() if item.error else None}
        for item in loaded.items
    ]
    out.write(frame(json.dumps(meta).encode()))
    for item in loaded.items:
        if item.error is None and item.image is not None:
            out.write(frame(item.thumbnail or b""))
            out.write(frame(item.image.convert("RGB").tobytes()))


def request_frames(data: bytes, settings: Settings, job: dict[str, Any]) -> bytes:
    header = {"job": job["job"], "settings": dataclasses.asdict(settings)}
    return frame(json.dumps(header).encode()) + frame(data)


async def read_answer(stdout: asyncio.StreamReader) -> Loaded:
    header = json.loads(await read_frame_async(stdout))
    if "error" in header:
        raise ChildReported(str(header["error"]["code"]), str(header["error"]["message"]))
    loaded = Loaded(**{name: header[name] for name in _LOADED_FIELDS})
    for meta in header["items"]:
        place = Place(**meta["place"])
        if meta["error"] is not None:
            error = MedLensError(str(meta["error"]["code"]), str(meta["error"]["message"]))
            loaded.items.append(Item(place, error=error, group=meta["group"], sha256=meta["sha256"]))
            continue
        thumbnail = await read_frame_async(stdout)
        pixels = await read_frame_async(stdout)
        size = (int(meta["width"]), int(meta["height"]))
        if len(pixels) != size[0] * size[1] * 3:
            raise ValueError("extraction returned inconsistent image data")
        loaded.items.append(Item(place, Image.frombytes("RGB", size, pixels), size[0], size[1],
                                 thumbnail=thumbnail or None, group=meta["group"], sha256=meta["sha256"]))
    return loaded


async def start_child() -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", "medlens.ingest.media_worker",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )


def check_media_bytes(data: bytes, settings: Settings) -> None:
    if not data:
        raise MedLensError("decode_failed", "the file is empty (0 bytes)")
    if len(data) > settings.max_file_bytes:
        raise MedLensError("too_large", f"the file is {len(data)} bytes, over the limit of {settings.max_file_bytes}")


MEDIA_CHILD = ChildKind(
    "video or e-book", start_child, READY, request_frames, read_answer,
    lambda settings: settings.video_time_limit_s, "extraction_timeout", "decode_failed", check_media_bytes,
)


def media_workers(settings: Settings) -> ExtractionWorkers:
    """The pool for videos and e-books (started on first use: most sources are neither)."""
    return ExtractionWorkers(settings, MEDIA_CHILD, max(1, settings.media_workers))


if __name__ == "__main__":
    sys.exit(serve_jobs(READY, _answer))

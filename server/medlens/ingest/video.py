"""Video (MP4, WebM, MOV, AVI, MKV) -> a few frames spread over its duration, each with its time.

Decoded by PyAV, whose wheels bring FFmpeg (the optional extra `medlens[video]`; without it a
video is `missing_dependency`). FFmpeg parses hostile bytes, so this runs only inside the
killable media worker processes (`media_worker.py`), never in the server. Caps: the bytes
(max_file_bytes, checked before a process is involved), the duration from the header
(max_video_s, else `too_long`), `video_frames` frames, each at most max_pixels. Frame k of n is
the first frame at or after (k + 0.5) / n of the duration, found by seeking to the keyframe
before it and decoding forward, so a long video costs n short decodes, not the whole stream.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from medlens.errors import MedLensError
from medlens.image_modes import to_rgb
from medlens.ingest.items import Item, Loaded, Place, sha256
from medlens.settings import Settings

EXTRA = "pip install 'medlens[video]'"


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise MedLensError("missing_dependency", f"videos need PyAV: {EXTRA} ({exc.name} is missing)") from exc
    return av


def extract_video(data: bytes, settings: Settings) -> Loaded:
    av = _av()
    try:
        container = av.open(BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise MedLensError("decode_failed", f"cannot read the video: {exc}") from exc
    with container:
        if not container.streams.video:
            raise MedLensError("no_images", "the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = _duration(container, stream)
        if duration is not None and duration > settings.max_video_s:
            raise MedLensError("too_long", f"the video is {duration:.0f}s long, over the limit of {settings.max_video_s:g}s")
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height and width * height > settings.max_pixels:
            raise MedLensError("too_many_pixels", f"{width}x{height} frames exceed the limit of {settings.max_pixels} pixels")
        times = _sample_times(duration, settings.video_frames)
        items = [_frame_at(av, container, stream, k, t, settings) for k, t in enumerate(times)]
    digest = sha256(data)
    for item in items:
        item.sha256 = digest
    if items and all(item.error is not None for item in items):
        raise items[0].error  # type: ignore[misc]  # nothing decodable: the video's own error
    return Loaded("video", items, pick="video", duration_s=round(duration, 3) if duration is not None else None)


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _sample_times(duration: float | None, count: int) -> list[float]:
    if not duration or duration <= 0 or count <= 1:
        return [0.0]
    return [(k + 0.5) * duration / count for k in range(count)]


def _frame_at(av: Any, container: Any, stream: Any, index: int, when: float, settings: Settings) -> Item:
    """The first frame at or after `when` seconds (or the last one before the end)."""
    place = Place(frame=index, time_s=round(when, 3))
    try:
        if when > 0 and stream.time_base is not None:
            container.seek(int(when / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is not None and frame.time + 1e-6 >= when:
                break
        if chosen is None:
            raise MedLensError("decode_failed", f"no frame could be decoded at {when:.2f}s")
        image = to_rgb(chosen.to_image())
    except MedLensError as exc:
        return Item(place, error=exc)
    except (av.FFmpegError, ValueError, OSError, EOFError, MemoryError) as exc:
        return Item(place, error=MedLensError("decode_failed", f"cannot decode the frame at {when:.2f}s: {exc}"))
    if min(image.size) < settings.min_side:
        return Item(place, error=MedLensError("too_small", f"{image.width}x{image.height} frames are smaller than "
                                              f"{settings.min_side} pixels on a side"))
    actual = Place(frame=index, time_s=round(float(chosen.time), 3) if chosen.time is not None else place.time_s)
    return Item(actual, image, image.width, image.height)

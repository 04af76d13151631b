"""HTTP routes of API v1. Handlers only parse the request, call the pipeline and answer JSON.

Request bodies are read here with explicit caps (a multipart or raw body is streamed, never
trusted for its declared size), and every classify route first checks that the model queue has
room, so an overloaded server says 503 before it reads megabytes it cannot serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any, AsyncIterator

from aiohttp import BodyPartReader, web

from medlens import API_VERSION, __version__
from medlens.errors import MedLensError, plain_reason
from medlens.fairness import start_request
from medlens.ingest.load import read_cap
from medlens.ingest.sources import RAW_MEDIA_PREFIXES
from medlens.serve import keys
from medlens.serve.json_body import parse_json_body
from medlens.serve.pairing import handle_pair
from medlens.pipeline.pipeline import Pipeline, start_pixel_budget
from medlens.pipeline.results import error_result, upload_source
from medlens.settings import Settings

routes = web.RouteTableDef()

CHUNK = 64 * 1024
OFF_LOOP_JSON_BYTES = 256 * 1024  # larger JSON bodies are measured and parsed in a thread
RAW_PDF_TYPES = ("application/pdf", "application/octet-stream")
# What /v1/health reports as `limits`: request body and per-item sizes, items per request, and
# the caps that make a PDF or a page scan come back truncated.
CLIENT_LIMITS = (
    "max_body_bytes",
    "max_image_bytes",
    "max_items",
    "max_pdf_bytes",
    "max_pdf_pages",
    "max_pdf_images",
    "max_page_images",
    "max_pixels",
    "min_side",
    "max_file_bytes",
)


# ---------------------------------------------------------------- routes


@routes.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    """The full state only for the extension, a token holder or the page; anyone else (a web
    page probing loopback with no Origin: an <img>, a no-cors fetch) learns only that something
    speaks API v1, never which model, version or limits, so MedLens cannot be fingerprinted."""
    access = request[keys.ACCESS]
    if not access.identified:
        return web.json_response({"status": "ok", "api": API_VERSION})
    app = request.app
    info = app[keys.CLASSIFIER].info
    batcher = app[keys.BATCHER]
    settings = app[keys.SETTINGS]
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "api": API_VERSION,
            "model": {"backbone": info["backbone"], "head_sha256": info["head_sha256"], "threshold": info["threshold"]},
            "device": info["device"],
            "queue": {"depth": batcher.depth, "max": batcher.queue_max},
            "limits": client_limits(settings),
            "token_required": settings.token_required,
            "paired": access.token,
        }
    )


def client_limits(settings: Settings) -> dict[str, int]:
    """The caps a client must respect to avoid a refusal, named as their settings are."""
    return {name: getattr(settings, name) for name in CLIENT_LIMITS}


@routes.post("/v1/pair")
async def pair(request: web.Request) -> web.Response:
    """A one-time code from `medlens pair` -> the token, for the extension only (serve/pairing.py)."""
    return await handle_pair(request, request.app[keys.SETTINGS].config_path, request.app[keys.TOKEN])


@routes.post("/v1/classify")
async def classify_urls(request: web.Request) -> web.Response:
    settings, pipeline = _admit(request)
    body = await _json_body(request)
    urls = body.get("urls")
    if not isinstance(urls, list):
        raise MedLensError("invalid_request", '"urls" must be a list of URLs')
    _check_items(len(urls), settings)
    page_url = body.get("page_url")
    if page_url is not None and not isinstance(page_url, str):
        raise MedLensError("invalid_request", '"page_url" must be a string')
    results = await pipeline.classify_urls(urls, page_url=page_url, threshold=_threshold(body.get("threshold")))
    return web.json_response({"results": results})


@routes.post("/v1/classify/image")
async def classify_images(request: web.Request) -> web.Response:
    settings, pipeline = _admit(request)
    threshold = _threshold(request.query.get("threshold"))
    items: list[asyncio.Future[dict[str, Any]]] = []  # classification starts while later files upload

    def add(source: str, data: bytes | MedLensError) -> None:
        if isinstance(data, MedLensError):
            done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            done.set_result(error_result(source, data))
            items.append(done)
        else:
            name = source.removeprefix("upload:")
            items.append(asyncio.ensure_future(pipeline.classify_bytes(source, data, threshold, name=name)))

    try:
        async with _body_deadline(settings.body_timeout_s):
            if request.content_type.startswith("multipart/"):
                budget = _Budget(settings.max_body_bytes)
                reader = await request.multipart()
                while (part := await reader.next()) is not None:
                    if not isinstance(part, BodyPartReader) or part.name != "file":
                        await _drain(part, budget)  # counted against max_body_bytes all the same
                        continue
                    _check_items(len(items) + 1, settings)
                    try:
                        add(upload_source(part.filename), await _read_part(part, read_cap(settings), budget, "file"))
                    except _ItemTooLarge as exc:
                        add(upload_source(part.filename), exc.error)
                if not items:
                    raise MedLensError("invalid_request", 'no "file" field in the multipart body')
            elif request.content_type.startswith(RAW_MEDIA_PREFIXES):
                source = upload_source(request.query.get("name"))
                try:
                    add(source, await _read_raw(request, read_cap(settings), settings.max_body_bytes, "file"))
                except _ItemTooLarge as exc:
                    add(source, exc.error)
            else:
                raise MedLensError(
                    "unsupported_media_type", f"send multipart/form-data or a raw image, document, archive or video "
                    f"body, not {request.content_type}"
                )
        results = await asyncio.gather(*items)
    except BaseException:  # the request failed or was cancelled: its items stop too
        for item in items:
            item.cancel()
        await asyncio.gather(*items, return_exceptions=True)
        raise
    return web.json_response({"results": list(results)})


@routes.post("/v1/classify/pdf")
async def classify_pdf(request: web.Request) -> web.Response:
    settings, pipeline = _admit(request)
    threshold = _threshold(request.query.get("threshold"))
    name = request.query.get("name") or "document.pdf"
    data: bytes | None = None
    try:
        async with _body_deadline(settings.body_timeout_s):
            if request.content_type.startswith("multipart/"):
                reader = await request.multipart()
                budget = _Budget(settings.max_body_bytes)
                while (part := await reader.next()) is not None:
                    if isinstance(part, BodyPartReader) and part.name == "file":
                        name = part.filename or name
                        data = await _read_part(part, settings.max_pdf_bytes, budget, "PDF")
                        break
                    await _drain(part, budget)
                if data is None:
                    raise MedLensError("invalid_request", 'no "file" field in the multipart body')
            elif request.content_type.startswith(RAW_PDF_TYPES):
                data = await _read_raw(request, settings.max_pdf_bytes, settings.max_body_bytes, "PDF")
            else:
                raise MedLensError(
                    "unsupported_media_type", f"send multipart/form-data or application/pdf, not {request.content_type}"
                )
    except _ItemTooLarge as exc:
        raise exc.error from None  # one PDF: too large is the answer to the request
    return web.json_response(await pipeline.classify_pdf(data, name, threshold=threshold))


@routes.post("/v1/classify/video")
async def classify_video(request: web.Request) -> web.Response:
    """A video as an upload (multipart `file`, or the raw body) or a URL (`{"url": ...}`)."""
    settings, pipeline = _admit(request)
    threshold = _threshold(request.query.get("threshold"))
    name = request.query.get("name") or "video"
    cap = settings.max_file_bytes
    try:
        if request.content_type == "application/json":
            body = await _json_body(request)
            url = body.get("url")
            if not isinstance(url, str) or not url:
                raise MedLensError("invalid_request", '"url" must be the video URL')
            answer = await pipeline.classify_video(url, url=url, threshold=_threshold(body.get("threshold")))
            return web.json_response(answer)
        if request.content_type.startswith("multipart/"):
            data = None
            reader = await request.multipart()
            budget = _Budget(settings.max_body_bytes)
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    name = part.filename or name
                    data = await _read_part(part, cap, budget, "video")
                    break
            if data is None:
                raise MedLensError("invalid_request", 'no "file" field in the multipart body')
        elif request.content_type.startswith(("video/", "application/octet-stream")):
            data = await _read_raw(request, cap, settings.max_body_bytes, "video")
        else:
            raise MedLensError("unsupported_media_type", f"send multipart/form-data, a video/* body or "
                               f"application/json with a URL, not {request.content_type}")
    except _ItemTooLarge as exc:
        raise exc.error from None  # one video: too large is the answer to the request
    return web.json_response(await pipeline.classify_video(name, data=data, threshold=threshold))


@routes.post("/v1/classify/page")
async def classify_page(request: web.Request) -> web.Response:
    _settings, pipeline = _admit(request)
    body = await _json_body(request)
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise MedLensError("invalid_request", '"url" must be the page URL')
    return web.json_response(await pipeline.classify_page(url, threshold=_threshold(body.get("threshold"))))


# ---------------------------------------------------------------- request parsing


def _admit(request: web.Request) -> tuple[Settings, Pipeline]:
    """Refuse at once what cannot be served: a full model queue, a body declared too large."""
    settings = request.app[keys.SETTINGS]
    request.app[keys.BATCHER].check_capacity(settings.retry_after_s)
    start_request()  # from here on this request takes turns with the others wherever work waits
    start_pixel_budget(settings)  # and shares one max_request_pixels budget
    declared = request.content_length
    if declared is not None and declared > settings.max_body_bytes:
        raise MedLensError("body_too_large", f"request body of {declared} bytes is over the limit of {settings.max_body_bytes}")
    return settings, request.app[keys.PIPELINE]


def _check_items(count: int, settings: Settings) -> None:
    if count > settings.max_items:
        raise MedLensError("too_many_items", f"{count} items in one request, more than the limit of {settings.max_items}")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise MedLensError("unsupported_media_type", f"send application/json, not {request.content_type or 'no Content-Type'}")
    settings = request.app[keys.SETTINGS]
    raw = await _read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    limits = {"max_depth": settings.max_json_depth, "max_values": settings.max_json_values}
    if len(raw) > OFF_LOOP_JSON_BYTES:
        body = await asyncio.to_thread(parse_json_body, raw, **limits)
    else:
        body = parse_json_body(raw, **limits)
    if not isinstance(body, dict):
        raise MedLensError("invalid_request", "body must be a JSON object")
    return body


async def _read_body(request: web.Request, cap: int, timeout_s: float) -> bytes:
    """The whole body, at most `cap` bytes (a chunked body declares no length), within `timeout_s`."""
    buf = bytearray()
    async with _body_deadline(timeout_s):
        async for chunk in request.content.iter_chunked(CHUNK):
            buf += chunk
            if len(buf) > cap:
                raise MedLensError("body_too_large", f"request body is over the limit of {cap} bytes")
    return bytes(buf)


@contextlib.asynccontextmanager
async def _body_deadline(timeout_s: float) -> AsyncIterator[None]:
    """Reading a body must end within body_timeout_s: a client trickling bytes holds a connection
    and, for uploads, memory."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError:
        raise MedLensError("body_timeout", f"the request body did not arrive within {timeout_s:g} s (body_timeout_s)") from None


def _threshold(value: Any) -> float | None:
    """A caller's threshold: a number in [0, 1] (JSON number or query string), or None for the model's."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MedLensError("invalid_request", "threshold must be a number between 0 and 1")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MedLensError("invalid_request", f"threshold must be a number between 0 and 1, not {value!r}") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise MedLensError("invalid_request", f"threshold must be between 0 and 1, not {value!r}")
    return number


class _ItemTooLarge(Exception):
    def __init__(self, error: MedLensError) -> None:
        super().__init__(error.message)
        self.error = error


class _Budget:
    """Bytes left for the whole request body (a chunked upload declares no length)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise MedLensError("body_too_large", f"request body is over the limit of {self.limit} bytes")


async def _drain(part: Any, budget: _Budget) -> None:
    """Read and drop a part that is not a file (a nested multipart included), counting its bytes."""
    if isinstance(part, BodyPartReader):
        while chunk := await part.read_chunk(CHUNK):
            budget.spend(len(chunk))
        return
    while (inner := await part.next()) is not None:
        await _drain(inner, budget)


async def _read_part(part: BodyPartReader, cap: int, budget: _Budget, what: str) -> bytes:
    """A multipart file, capped at `cap` (too_large for this item; the rest is drained and counted)."""
    buf = bytearray()
    over = False
    while chunk := await part.read_chunk(CHUNK):
        budget.spend(len(chunk))
        if not over:
            buf += chunk
            over = len(buf) > cap
            if over:
                buf.clear()
    if over:
        raise _ItemTooLarge(MedLensError("too_large", f"{what} is larger than the limit of {cap} bytes"))
    return bytes(buf)


async def _read_raw(request: web.Request, cap: int, body_cap: int, what: str) -> bytes:
    declared = request.content_length
    if declared is not None and declared > cap:
        raise _ItemTooLarge(MedLensError("too_large", f"{what} of {declared} bytes is larger than the limit of {cap}"))
    buf = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        buf += chunk
        if len(buf) > min(cap, body_cap):
            raise _ItemTooLarge(MedLensError("too_large", f"{what} is larger than the limit of {cap} bytes"))
    return bytes(buf)

"""`POST /v1/pair`: the server's half of pairing (the codes and their storage: `medlens.pairing`)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from aiohttp import web

from medlens.errors import MedLensError
from medlens.pairing import redeem
from medlens.serve.security import is_extension_origin

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024


async def handle_pair(request: web.Request, config_dir: Path, token: str) -> web.Response:
    """`POST /v1/pair {"code": "..."}` -> `{"token": ...}` for a browser extension only.

    The security middleware has already refused foreign Hosts and web Origins; this route also
    refuses requests with no Origin at all (a local program can read the token file itself).
    Takes plain values, not the app, so `medlens pair` can import this module without the model."""
    if not is_extension_origin(request.headers.get("Origin")):
        raise MedLensError("forbidden_origin", "only the MedLens browser extension may pair")
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        raise MedLensError("body_too_large", "a pairing request is a few bytes of JSON")
    raw = b""  # read() may return part of the body: read to the end, never past the cap
    while len(raw) <= MAX_REQUEST_BYTES and (chunk := await request.content.read(MAX_REQUEST_BYTES + 1 - len(raw))):
        raw += chunk
    if len(raw) > MAX_REQUEST_BYTES:
        raise MedLensError("body_too_large", "a pairing request is a few bytes of JSON")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MedLensError("invalid_request", 'send JSON: {"code": "XXXX-XXXX"}') from None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        raise MedLensError("invalid_request", 'send JSON: {"code": "XXXX-XXXX"}')
    error = await asyncio.to_thread(redeem, config_dir, body["code"])  # may wait for another process's lock
    if error is not None:
        log.warning("pairing refused for %s: %s", request.headers.get("Origin"), error.code)
        raise error
    log.info("paired with %s", request.headers.get("Origin"))
    return web.json_response({"token": token, "paired": True})

"""The server's middlewares, outermost first: CORS headers, errors → JSON, and the security gate.

- `cors_middleware` adds CORS headers for extension origins only, to every answer including
  errors (so the extension can read a 401's code); web pages never get them. Every answer also
  gets `API_HEADERS` (nosniff, CORP same-origin, no-store).
- `error_middleware` is the one place where exceptions become `{"error": {"code", "message"}}`
  with the code's HTTP status (and Retry-After for queue_full). Handlers just raise.
- `security_middleware` refuses peers beyond loopback (unless the server was bound beyond it on
  purpose: then they need the token on every `/v1` route), foreign Hosts, web Origins other than
  the server's own page (whatever the route, since a page can POST text/plain without a
  preflight), answers preflights, records what the request proved (`keys.ACCESS`: extension,
  token, page session) and requires the token or the page's session on classify routes. It runs
  before any handler reads the body.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from medlens.errors import MedLensError
from medlens.serve import keys
from medlens.pipeline.batcher import QueueFull
from medlens.serve.security import (
    Access,
    bearer_token,
    binds_beyond_loopback,
    host_allowed,
    is_extension_origin,
    is_loopback_address,
    is_own_origin,
    origin_allowed,
    token_matches,
)

log = logging.getLogger(__name__)

API_PREFIX = "/v1/"
TOKEN_ROUTES_PREFIX = "/v1/classify"
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE_S = "600"

# HTTP errors aiohttp raises by itself (routing, body size) → our codes.
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden_origin",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(error: MedLensError) -> web.Response:
    resp = web.json_response({"error": error.to_dict()}, status=error.http_status)
    if isinstance(error, QueueFull):
        resp.headers["Retry-After"] = str(error.retry_after_s)
    return resp


# On every answer, errors included: no MIME sniffing, no embedding by other origins (an <img> or
# <script> of another site cannot use an answer), never cached (results name the user's images).
API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    for name, value in API_HEADERS.items():
        resp.headers.setdefault(name, value)
    origin = request.headers.get("Origin")
    if is_extension_origin(origin):
        resp.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        resp.headers["Access-Control-Expose-Headers"] = "Retry-After"
        resp.headers["Vary"] = "Origin"
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MedLensError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "invalid_request" if exc.status < 500 else "internal")
        return error_response(MedLensError(code, exc.reason or code))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(MedLensError("internal", "internal server error"))


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    remote = not is_loopback_address(request.remote)
    if remote and not binds_beyond_loopback(settings.host):
        raise MedLensError("forbidden_peer", "only programs on this computer may use the MedLens server")
    port = _local_port(request)
    host = request.headers.get("Host")
    if port is None or not host_allowed(host, port):
        raise MedLensError("forbidden_host", "the Host header must be 127.0.0.1, localhost or [::1] with this server's port")
    origin = request.headers.get("Origin")
    if not (origin_allowed(origin) or is_own_origin(origin, host)):
        raise MedLensError("forbidden_origin", "web pages may not use the MedLens server; only its browser extension and its own page")
    if request.method == "OPTIONS":
        return _preflight(request)
    access = _access(request)
    request[keys.ACCESS] = access
    if remote and request.path.startswith(API_PREFIX) and not access.authorized:
        # Listening beyond loopback on purpose: every other machine must hold the token, on every route.
        raise MedLensError("unauthorized", "this server is reachable from the network: send the token on every request")
    if settings.token_required and request.path.startswith(TOKEN_ROUTES_PREFIX) and not access.authorized:
        if is_own_origin(origin, host):
            raise MedLensError("unauthorized", "this page's session is missing or ended (the server restarted?): "
                               "open the page again with `medlens page`")
        raise MedLensError("unauthorized", "missing or wrong token: pair with the token `medlens token` prints")
    return await handler(request)


def _access(request: web.Request) -> Access:
    """What the request proved: an extension Origin, the install token, the page's session."""
    given = bearer_token(request.headers.get("Authorization"))
    return Access(
        extension=is_extension_origin(request.headers.get("Origin")),
        token=token_matches(given, request.app[keys.TOKEN]),
        page=token_matches(given, request.app[keys.PAGE_SECRET]),
    )


def _preflight(request: web.Request) -> web.Response:
    """A CORS preflight from an extension (other origins were refused before this)."""
    headers = {
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_S,
    }
    if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


def _local_port(request: web.Request) -> int | None:
    """The port this connection arrived on (the Host header must name it)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, (tuple, list)) and len(sockname) >= 2:
        return int(sockname[1])
    return None


MIDDLEWARES = (cors_middleware, error_middleware, security_middleware)

"""The server's own page at `GET /`: a person without the extension can drop files, paste URLs
and read the results; the page calls the same `/v1` routes as the extension.

The files ship in the package (`serve/page/`) and are served from a fixed list, so no part of a
URL ever becomes a path. `GET /` is the same static page for everyone and holds no secret:
without a session it only says how to open it (`medlens page`, or the `/?token=…` address that
`medlens serve` prints). The page's script trades the token from its address for the page's
session at `POST /v1/session` (and drops the token from the address bar at once); only proof
of the token gets a session. The headers below keep other sites from framing, embedding or
reading the page.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

from medlens.errors import MedLensError
from medlens.serve import keys

INDEX = "index.html"
ASSETS = {
    "page.js": "text/javascript",
    "wording.js": "text/javascript",  # a copy of extension/lib/wording.js (kept equal by a test)
    "page.css": "text/css",
    "icon.svg": "image/svg+xml",
}
ASSET_PREFIX = "/page/"

# img-src allows http(s): the thumbnails of pasted URLs are the images the user asked about,
# loaded by the browser without a Referer; everything the page *sends* goes to 'self' only.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: http: https:",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

page_routes = web.RouteTableDef()


@functools.cache
def page_file(name: str) -> bytes:
    """One shipped file, read once: the page is small and never changes under a running server."""
    return (resources.files("medlens.serve") / "page" / name).read_bytes()


@page_routes.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(body=page_file(INDEX), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


@page_routes.post("/v1/session")
async def session(request: web.Request) -> web.Response:
    """The page's session for whoever proves the install token (`Authorization: Bearer`): a
    per-process secret the page keeps in its tab's sessionStorage and sends as its bearer.
    With --no-token every local program may classify anyway, so the page gets it without proof."""
    settings = request.app[keys.SETTINGS]
    access = request[keys.ACCESS]
    if settings.token_required and not access.authorized:
        raise MedLensError("unauthorized", "open the page with `medlens page` (or the address with ?token= that "
                           "`medlens serve` printed): a session needs the token")
    return web.json_response({"session": request.app[keys.PAGE_SECRET]})


@page_routes.get(ASSET_PREFIX + "{name}")
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise MedLensError("not_found", f"no page file {name!r}")
    return web.Response(body=page_file(name), content_type=ASSETS[name], charset="utf-8", headers=PAGE_HEADERS)

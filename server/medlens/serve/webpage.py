"""The server's own page at `GET /`: a person without the extension can drop files, paste URLs
and read the results; the page calls the same `/v1` routes as the extension.

The files ship in the package (`serve/page/`) and are served from a fixed list, so no part of a
URL ever becomes a path. `GET /` also hands out the page's session: a per-process secret in a
`SameSite=Strict; HttpOnly; Path=/` cookie. The security middleware accepts that cookie only
together with the page's own Origin (see `security.page_session_valid`); the headers below keep
other sites from framing, embedding or reading the page.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

from medlens.errors import MedLensError
from medlens.serve import keys
from medlens.serve.security import page_cookie_name

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
    resp = web.Response(body=page_file(INDEX), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)
    resp.set_cookie(
        page_cookie_name(_host_port(request)),
        request.app[keys.PAGE_SECRET],
        path="/",
        httponly=True,
        samesite="Strict",
    )
    return resp


@page_routes.get(ASSET_PREFIX + "{name}")
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise MedLensError("not_found", f"no page file {name!r}")
    return web.Response(body=page_file(name), content_type=ASSETS[name], charset="utf-8", headers=PAGE_HEADERS)


def _host_port(request: web.Request) -> int:
    """The port named by the Host header, which the security middleware already matched to ours."""
    return int(request.headers["Host"].rpartition(":")[2])

"""The e2e test site: a loopback HTTP server for pages built from the real images in shared/data.

    /data/<rel>          a file of shared/data (read from there; nothing is copied)
    /pages/<name>        an HTML page registered by a test (`site.add_page`); sets a session cookie
    /private/<rel>       an image of shared/data/images only for a browser that has the session
                         cookie (403 otherwise): an image "behind the user's login"
    /files/<name>        bytes registered by a test (`site.add_file`), with their content type
    /slow/<ms>.js        an empty script answered after <ms> milliseconds: a slow third-party script
    /slow/<ms>/<rel>     a file of shared/data answered after <ms> milliseconds (to the browser and
                         the MedLens server alike): a scan that is still running when the test acts

The same routes answer on a second loopback origin, `site.other_base` (127.0.0.2, another site
to the browser), for cross-origin iframes: `site.other(url)` moves a URL there.
"""

from __future__ import annotations

import functools
import http.server
import mimetypes
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

COOKIE = "medlens_e2e_session=signed-in"


class Site:
    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root.resolve()
        self.pages: dict[str, str] = {}
        self.page_headers: dict[str, dict[str, str]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.log: list[tuple[str, bool]] = []  # (path, had the session cookie)
        self.headers: list[tuple[str, dict[str, str]]] = []  # (path with query, request headers)
        handler = functools.partial(_Handler, site=self)
        self._srv = _Server(("127.0.0.1", 0), handler)
        self._srv.daemon_threads = True
        self.port = self._srv.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._srv.serve_forever, name="e2e-site", daemon=True)
        self._other = _Server(("127.0.0.2", 0), handler)
        self._other.daemon_threads = True
        self.other_base = f"http://127.0.0.2:{self._other.server_address[1]}"
        self._other_thread = threading.Thread(target=self._other.serve_forever, name="e2e-site-2", daemon=True)

    def start(self) -> "Site":
        self._thread.start()
        self._other_thread.start()
        return self

    def stop(self) -> None:
        for srv in (self._srv, self._other):
            srv.shutdown()
            srv.server_close()

    def other(self, url: str) -> str:
        """The same resource from the second origin (127.0.0.2): cross-site for the browser."""
        assert url.startswith(self.base), url
        return self.other_base + url[len(self.base):]

    def add_page(self, name: str, html: str, headers: dict[str, str] | None = None) -> str:
        self.pages[name] = html
        self.page_headers[name] = headers or {}
        return f"{self.base}/pages/{name}"

    def add_file(self, name: str, body: bytes, ctype: str) -> str:
        self.files[name] = (body, ctype)
        return f"{self.base}/files/{name}"

    def data(self, rel: str) -> str:
        return f"{self.base}/data/{rel}"

    def image(self, rel: str) -> str:
        return f"{self.base}/data/images/{rel}"

    def slow(self, rel: str, ms: int) -> str:
        return f"{self.base}/slow/{ms}/{rel}"

    def private(self, rel: str) -> str:
        return f"{self.base}/private/{rel}"

    def file(self, rel: str) -> Path | None:
        path = (self.data_root / rel).resolve()
        return path if path.is_file() and self.data_root in path.parents else None


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A browser that drops a connection it no longer needs is normal; anything else is loud.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, site: Site, **kwargs) -> None:
        self.site = site
        super().__init__(*args, **kwargs)

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        signed_in = COOKIE in (self.headers.get("Cookie") or "")
        self.site.log.append((path, signed_in))
        self.site.headers.append((unquote(self.path), dict(self.headers)))
        if path.startswith("/pages/"):
            html = self.site.pages.get(path[len("/pages/"):])
            if html is None:
                return self._send(404, b"no such page", "text/plain")
            return self._send(200, html.encode(), "text/html; charset=utf-8",
                              {"Set-Cookie": f"{COOKIE}; Path=/; SameSite=Lax", **self.site.page_headers[path[len("/pages/"):]]})
        slow = re.fullmatch(r"/slow/(\d+)(?:\.js|/(.+))", path)
        if slow:
            time.sleep(min(int(slow[1]), 30_000) / 1000)
            if slow[2] is None:
                return self._send(200, b"/* a slow third-party script */", "text/javascript")
            path = "/data/" + slow[2]
        if path.startswith("/files/") and path[len("/files/"):] in self.site.files:
            body, ctype = self.site.files[path[len("/files/"):]]
            return self._send(200, body, ctype)
        if path.startswith("/private/"):
            if not signed_in:
                return self._send(403, b"<html><body>Please sign in</body></html>", "text/html")
            f = self.site.file("images/" + path[len("/private/"):])
        elif path.startswith("/data/"):
            f = self.site.file(path[len("/data/"):])
        else:
            f = None
        if f is None:
            return self._send(404, b"not found", "text/plain")
        ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        return self._send(200, f.read_bytes(), ctype)

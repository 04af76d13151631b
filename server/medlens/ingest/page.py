"""Which images a web page shows, from its HTML alone (no JavaScript runs here).

Collected, in document order: `<img>` src / srcset / data-src / data-srcset, `<picture><source
srcset>`, `og:image` / `twitter:image` metas, `<link rel=image_src>`, and `url(...)` in
`background` / `background-image` declarations of style attributes and `<style>` blocks. For a
srcset only the largest candidate is kept (highest `w`, else highest `x`): the best copy to
classify. URLs are resolved against `<base href>` and the page URL; only http(s) and `data:`
URLs are returned, deduplicated in first-seen order, fragments dropped.

Pages are hostile input: the parser is libxml2's (linear time however broken the markup; Python's
html.parser took 12-50 s on 150 KiB of `<a`), it keeps no tree, and it stops at a tag and time
budget (`max_page_tags`, `page_parse_time_s`); callers run it off the event loop.

`data:` URLs shorter than `MIN_DATA_URL_CHARS` are dropped: those are lazy-loading placeholders
(the 1x1 GIF) that would only ever come back as too_small.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urldefrag, urljoin

from lxml import etree

from medlens.errors import MedLensError
from medlens.ingest.decode import NON_IMAGE_FORMATS, sniff_format
from medlens.ingest.fetch import Fetcher, check_url
from medlens.settings import Settings

MIN_DATA_URL_CHARS = 200
_IMAGE_METAS = {"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"}
_BACKGROUND_DECL = re.compile(r"background(?:-image)?\s*:([^;}]*)", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.IGNORECASE)
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                        "track", "wbr"})
# Text codecs Python has that no web page is written in (they decode to nonsense or raise).
_NOT_PAGE_ENCODINGS = frozenset({"idna", "punycode", "unicode_escape", "unicode-escape", "raw_unicode_escape",
                                 "raw-unicode-escape", "undefined"})
PARSE_CHUNK = 64 * 1024  # characters fed at a time; the budget and the clock are checked between chunks


@dataclass
class PageScan:
    """`page_url` is where the page was really found (after redirects)."""

    page_url: str
    urls: list[str]
    truncated: bool


def largest_srcset_candidate(srcset: str) -> str | None:
    """The URL of the biggest candidate in a srcset (highest w, else highest x; a bare URL is 1x)."""
    best_url: str | None = None
    best_key = (-1, -1.0)
    for url, descriptor in _parse_srcset(srcset):
        width, density = -1, 1.0
        d = descriptor.strip().lower()
        try:
            if d.endswith("w"):
                width = int(float(d[:-1]))
            elif d.endswith("x"):
                density = float(d[:-1])
        except ValueError:
            continue
        key = (width, density)
        if key > best_key:
            best_key, best_url = key, url
    return best_url


def _parse_srcset(srcset: str) -> list[tuple[str, str]]:
    """Split a srcset like the HTML spec does (URLs may contain commas, e.g. data: URLs)."""
    out: list[tuple[str, str]] = []
    pos, n = 0, len(srcset)
    while pos < n:
        while pos < n and (srcset[pos].isspace() or srcset[pos] == ","):
            pos += 1
        start = pos
        while pos < n and not srcset[pos].isspace():
            pos += 1
        url = srcset[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
            descriptor = ""
        else:
            start = pos
            while pos < n and srcset[pos] != ",":
                pos += 1
            descriptor = srcset[start:pos].strip()
        if url:
            out.append((url, descriptor.split()[0] if descriptor else ""))
    return out


def _css_urls(css: str) -> list[str]:
    urls = []
    for decl in _BACKGROUND_DECL.finditer(css):
        for m in _CSS_URL.finditer(decl.group(1)):
            urls.append(next(g for g in m.groups() if g is not None))
    return urls


def _candidates(name: str, attrs: Mapping[str, str], parent: str | None) -> list[str]:
    found: list[str] = []

    def attr(key: str) -> str:
        return (attrs.get(key) or "").strip()

    if name == "img":
        for key in ("src", "data-src"):
            if attr(key):
                found.append(attr(key))
        for key in ("srcset", "data-srcset"):
            best = largest_srcset_candidate(attr(key))
            if best:
                found.append(best)
    elif name == "source" and parent == "picture":
        for key in ("srcset", "data-srcset"):
            best = largest_srcset_candidate(attr(key))
            if best:
                found.append(best)
    elif name == "meta":
        key = (attr("property") or attr("name")).lower()
        if key in _IMAGE_METAS and attr("content"):
            found.append(attr("content"))
    elif name == "link":
        if "image_src" in attr("rel").lower().split() and attr("href"):
            found.append(attr("href"))
    if attr("style"):
        found.extend(_css_urls(attr("style")))
    return found


class _Collector:
    """lxml parser target: candidate URLs in document order, counting tags and attributes.

    A target sees each start tag once, as libxml2's linear-time parser meets it; no tree is kept,
    so memory is the URLs found, not the page. `<base href>` counts wherever it is (the first one
    wins, as in browsers)."""

    def __init__(self, max_tags: int) -> None:
        self.max_tags = max_tags
        self.tags = 0
        self.over_budget = False
        self.base: str | None = None
        self.raw: list[str] = []
        self._open: list[str] = []
        self._style: list[str] | None = None

    def start(self, tag: Any, attrib: Mapping[str, str]) -> None:
        if not isinstance(tag, str):  # comments and processing instructions
            return
        self.tags += 1 + len(attrib)
        if self.tags > self.max_tags:
            self.over_budget = True
            return
        name = tag.lower()
        if name == "base" and self.base is None and (attrib.get("href") or "").strip():
            self.base = attrib["href"].strip()
        self.raw.extend(_candidates(name, attrib, self._open[-1] if self._open else None))
        if name == "style":
            self._style = []
        if name not in _VOID_TAGS:
            self._open.append(name)

    def end(self, tag: Any) -> None:
        if not isinstance(tag, str):
            return
        name = tag.lower()
        if name == "style" and self._style is not None:
            self.raw.extend(_css_urls("".join(self._style)))
            self._style = None
        if name in self._open:
            while self._open and self._open.pop() != name:
                pass

    def data(self, text: str) -> None:
        if self._style is not None:
            self._style.append(text)

    def comment(self, text: str) -> None:
        pass

    def close(self) -> None:
        return None


@dataclass
class PageImages:
    """The image URLs of one page; `truncated` when the page was bigger than the parse budget
    (`max_page_tags`) or took longer than `page_parse_time_s`, so later images may be missing."""

    urls: list[str]
    truncated: bool = False


def page_images(html: bytes | str, page_url: str, settings: Settings, content_type: str = "") -> PageImages:
    """Absolute URLs of the images a page shows, in document order, without duplicates.

    Parsed by libxml2's HTML parser (lxml), which is linear in the input however the tags are
    broken, fed in chunks: parsing stops once the page holds more than `max_page_tags` tags and
    attributes or after `page_parse_time_s`, with what was found so far. Meant to run off the
    event loop (a thread is enough: the work it can do is bounded here)."""
    collector = _Collector(settings.max_page_tags)
    text = _as_text(html, content_type) if isinstance(html, bytes) else html
    parser = etree.HTMLParser(target=collector, recover=True, no_network=True, remove_pis=True)
    deadline = time.monotonic() + settings.page_parse_time_s
    truncated = False
    try:
        for pos in range(0, len(text), PARSE_CHUNK):
            parser.feed(text[pos : pos + PARSE_CHUNK])
            if collector.over_budget or time.monotonic() > deadline:
                truncated = True
                break
        parser.close()
    except (etree.LxmlError, ValueError, LookupError, UnicodeError):
        truncated = truncated or not collector.raw  # what was found before the parser gave up still counts
    base = page_url
    if collector.base is not None:
        try:
            base = urljoin(page_url, collector.base)
        except ValueError:
            pass
    seen: set[str] = set()
    urls: list[str] = []
    for raw in collector.raw:
        url = _absolute(raw, base)
        if url is not None and url not in seen:
            seen.add(url)
            urls.append(url)
    return PageImages(urls, truncated or collector.over_budget)


def extract_image_urls(html: bytes | str, page_url: str, settings: Settings | None = None, content_type: str = "") -> list[str]:
    """`page_images(...).urls`, with the default limits unless `settings` are given."""
    return page_images(html, page_url, settings or Settings(), content_type).urls


def _absolute(raw: str, base: str) -> str | None:
    raw = raw.strip()
    if raw[:5].lower() == "data:":
        return raw if len(raw) >= MIN_DATA_URL_CHARS else None
    try:
        url = urldefrag(urljoin(base, raw)).url
    except ValueError:
        return None
    return url if url[:8].lower().startswith(("http://", "https://")) else None


def check_html(data: bytes, content_type: str) -> None:
    """Refuse bodies that are not HTML; the bytes decide, the header only breaks a tie."""
    fmt = sniff_format(data)
    media = content_type.split(";", 1)[0].strip().lower()
    if fmt == "HTML" or (media in _HTML_TYPES and (fmt is None or fmt in {"TEXT", "XML"})):
        return
    what = "unrecognised content" if fmt is None else fmt if fmt in NON_IMAGE_FORMATS else f"a {fmt} image"
    raise MedLensError("page_failed", f"expected an HTML page, got {what} (Content-Type: {media or 'none'})")


def _as_text(data: bytes, content_type: str) -> bytes | str:
    """Decoded with the header's charset when it names a real text encoding; else the bytes, for
    the parser to find a `<meta charset>` (or fall back to UTF-8). A header naming something odd
    (`charset=idna`, `charset=base64`, a codec that throws) must not fail the page: bytes it is."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset":
            continue
        name = value.strip().strip('"').strip("'")
        try:
            if not codecs.lookup(name)._is_text_encoding or name.lower() in _NOT_PAGE_ENCODINGS:
                return data
            return data.decode(name, errors="replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            return data
    return data


async def fetch_page(
    fetcher: Fetcher, url: str, settings: Settings, off_loop: Callable[..., Awaitable[PageImages]] | None = None
) -> PageScan:
    """Download a page (capped at max_html_bytes) and list its images (capped at max_page_images).
    The parse runs in `off_loop` (the pipeline's decode threads) or, without one, a thread."""
    check_url(url)
    result = await fetcher.fetch(
        url, max_bytes=settings.max_html_bytes, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
    )
    check_html(result.data, result.content_type)
    run = off_loop or asyncio.to_thread
    found = await run(page_images, result.data, result.final_url, settings, result.content_type)
    truncated = found.truncated or len(found.urls) > settings.max_page_images
    return PageScan(page_url=result.final_url, urls=found.urls[: settings.max_page_images], truncated=truncated)

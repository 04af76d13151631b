"""Which images a web page shows, from its HTML alone (no JavaScript runs here).

Collected, in document order: `<img>` src / srcset / data-src / data-srcset, `<picture><source
srcset>`, `og:image` / `twitter:image` metas, `<link rel=image_src>`, and `url(...)` in
`background` / `background-image` declarations of style attributes and `<style>` blocks. For a
srcset only the largest candidate is kept (highest `w`, else highest `x`): the best copy to
classify. URLs are resolved against `<base href>` and the page URL; only http(s) and `data:`
URLs are returned, deduplicated in first-seen order, fragments dropped.

`data:` URLs shorter than `MIN_DATA_URL_CHARS` are dropped: those are lazy-loading placeholders
(the 1x1 GIF) that would only ever come back as too_small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin

from bs4 import BeautifulSoup, Tag

from medlens.errors import MedLensError
from medlens.ingest.decode import NON_IMAGE_FORMATS, sniff_format
from medlens.ingest.fetch import Fetcher, check_url
from medlens.settings import Settings

MIN_DATA_URL_CHARS = 200
_IMAGE_METAS = {"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"}
_BACKGROUND_DECL = re.compile(r"background(?:-image)?\s*:([^;}]*)", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.IGNORECASE)
_HTML_TYPES = {"text/html", "application/xhtml+xml"}


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


def _candidates(tag: Tag) -> list[str]:
    name = tag.name
    found: list[str] = []

    def attr(key: str) -> str:
        value = tag.get(key)
        return value.strip() if isinstance(value, str) else ""

    if name == "img":
        for key in ("src", "data-src"):
            if attr(key):
                found.append(attr(key))
        for key in ("srcset", "data-srcset"):
            best = largest_srcset_candidate(attr(key))
            if best:
                found.append(best)
    elif name == "source" and isinstance(tag.parent, Tag) and tag.parent.name == "picture":
        for key in ("srcset", "data-srcset"):
            best = largest_srcset_candidate(attr(key))
            if best:
                found.append(best)
    elif name == "meta":
        key = (attr("property") or attr("name")).lower()
        if key in _IMAGE_METAS and attr("content"):
            found.append(attr("content"))
    elif name == "link":
        rel = tag.get("rel") or []
        rels = rel if isinstance(rel, list) else str(rel).split()
        if "image_src" in [r.lower() for r in rels] and attr("href"):
            found.append(attr("href"))
    elif name == "style":
        found.extend(_css_urls(tag.get_text()))
    if attr("style"):
        found.extend(_css_urls(attr("style")))
    return found


def extract_image_urls(html: bytes | str, page_url: str) -> list[str]:
    """Absolute URLs of the images a page shows, in document order, without duplicates."""
    soup = BeautifulSoup(html, "html.parser")
    base = page_url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base = urljoin(page_url, str(base_tag["href"]).strip())
    seen: set[str] = set()
    urls: list[str] = []
    for tag in soup.find_all(True):
        for raw in _candidates(tag):
            url = _absolute(raw, base)
            if url is not None and url not in seen:
                seen.add(url)
                urls.append(url)
    return urls


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
    """Decode with the header's charset when it names a real one; else let the parser sniff."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            try:
                return data.decode(value.strip().strip('"'), errors="replace")
            except LookupError:
                break
    return data


async def fetch_page(fetcher: Fetcher, url: str, settings: Settings) -> PageScan:
    """Download a page (capped at max_html_bytes) and list its images (capped at max_page_images)."""
    check_url(url)
    result = await fetcher.fetch(
        url, max_bytes=settings.max_html_bytes, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
    )
    check_html(result.data, result.content_type)
    urls = extract_image_urls(_as_text(result.data, result.content_type), result.final_url)
    truncated = len(urls) > settings.max_page_images
    return PageScan(page_url=result.final_url, urls=urls[: settings.max_page_images], truncated=truncated)

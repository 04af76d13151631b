"""Safe downloads for a local server that fetches URLs on a browser's behalf (an SSRF target).

The address check happens where it cannot be dodged: inside the connector's resolver, on the
addresses the socket is about to connect to (DNS rebinding gets nothing: the name is resolved
once, filtered, and those very addresses are used). aiohttp skips the resolver for literal-IP
URLs, so those are checked before each request, and every redirect hop goes through both
checks again because redirects are followed here, not by aiohttp.

`data:` URLs are handled by `Fetcher.fetch` too (decoded locally, never a request), so callers
can hand it whatever URL a page contained.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import partial
from typing import AsyncIterator, Callable
from urllib.parse import unquote_to_bytes

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from medlens.errors import MedLensError, plain_reason
from medlens.fairness import FairSemaphore
from medlens.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]

ALLOWED_SCHEMES = frozenset({"http", "https"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


# ---------------------------------------------------------------- address guard


def _as_address(ip: str | IPAddress) -> IPAddress | None:
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip
    text = str(ip).strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_allowed(ip: str | IPAddress, allow_private: bool = False) -> bool:
    """Whether MedLens may connect to `ip`: only globally routable unicast, unless allow_private.

    IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address,
    since that is where the packets end up. Unparseable input is refused.
    """
    addr = _as_address(ip)
    if addr is None:
        return False
    if allow_private:
        return True
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            return address_allowed(embedded, False)
        if addr.is_site_local:
            return False
    elif addr in _CGNAT:
        return False
    return not (
        addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
        or not addr.is_global
    )


def check_address(ip: str | IPAddress, allow_private: bool = False) -> None:
    """Raise `address_not_allowed` unless `address_allowed(ip, allow_private)`."""
    if not address_allowed(ip, allow_private):
        raise MedLensError("address_not_allowed", f"refusing to connect to {ip} (loopback/private/reserved address)")


def _policy_allows(policy: AddressPolicy, ip: str | IPAddress) -> bool:
    addr = _as_address(ip)
    return addr is not None and policy(addr)


class GuardedResolver(AbstractResolver):
    """Wraps a resolver so the connector only ever sees addresses the policy allows."""

    def __init__(
        self, inner: AbstractResolver, *, allow_private: bool = False, policy: AddressPolicy | None = None
    ) -> None:
        self._inner = inner
        self._policy: AddressPolicy = policy or partial(address_allowed, allow_private=allow_private)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if _policy_allows(self._policy, r["host"])]
        if not allowed:
            refused = ", ".join(sorted({str(r["host"]) for r in results})) or "nothing"
            raise MedLensError("address_not_allowed", f"{host} resolves to {refused}: not an allowed address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


# ---------------------------------------------------------------- URLs


def check_url(url: str) -> URL:
    """Parse an absolute http(s) URL (fragment dropped) or raise invalid_url / scheme_not_allowed."""
    if not isinstance(url, str) or not url.strip():
        raise MedLensError("invalid_url", "empty URL")
    if any(ch in url for ch in "\r\n\x00"):
        raise MedLensError("invalid_url", "URL contains control characters")
    try:
        parsed = URL(url.strip())
        scheme = parsed.scheme.lower()
        host = parsed.host
        _ = parsed.port
    except (ValueError, TypeError, UnicodeError) as exc:
        raise MedLensError("invalid_url", f"not a valid URL: {url[:200]!r} ({exc})") from exc
    if not scheme:
        raise MedLensError("invalid_url", f"not an absolute URL: {url[:200]!r}")
    if scheme not in ALLOWED_SCHEMES:
        raise MedLensError("scheme_not_allowed", f"{scheme}: URLs are not fetched (only http and https)")
    if not host:
        raise MedLensError("invalid_url", f"URL has no host: {url[:200]!r}")
    return parsed.with_fragment(None)


_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


def literal_ip(url: URL) -> IPAddress | None:
    """The host of `url` when it is an IP literal, in any spelling the C library would accept
    (`127.1`, `0x7f.1`, `2130706433`): those never reach DNS either, so they are judged here."""
    host = url.host or ""
    if not host:
        return None
    addr = _as_address(host)
    if addr is None and _NUMERIC_HOST.match(host):
        try:
            addr = ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return addr


def is_local_name(host: str) -> bool:
    """`localhost` and every name under `.localhost` (RFC 6761: they are this machine), with or
    without the trailing root dot: refused by name, so no DNS answer can make them anything else."""
    name = host.strip().rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def parse_data_url(url: str, max_bytes: int) -> tuple[bytes, str]:
    """Bytes and media type of a `data:image/...` URL; the size is checked before decoding."""
    if not isinstance(url, str) or url[:5].lower() != "data:":
        raise MedLensError("invalid_url", "not a data: URL")
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise MedLensError("invalid_url", "data: URL without a comma")
    params = [p.strip().lower() for p in header.split(";")]
    media = params[0] or "text/plain"
    if not media.startswith("image/"):
        raise MedLensError("not_an_image", f"data: URL of type {media}, not an image")
    if "base64" in params[1:]:
        compact = "".join(payload.split())
        if "%" in compact:
            compact = unquote_to_bytes(compact).decode("ascii", errors="replace")
        if len(compact) * 3 // 4 > max_bytes:
            raise MedLensError("too_large", f"data: URL holds more than {max_bytes} bytes")
        try:
            data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MedLensError("invalid_url", f"data: URL has invalid base64: {exc}") from exc
    else:
        if len(payload) > 3 * max_bytes:
            raise MedLensError("too_large", f"data: URL holds more than {max_bytes} bytes")
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise MedLensError("too_large", f"data: URL holds {len(data)} bytes, more than {max_bytes}")
    return data, media


def decode_data_url(url: str, max_bytes: int) -> bytes:
    """The bytes of a `data:image/...` URL (too_large / invalid_url / not_an_image)."""
    return parse_data_url(url, max_bytes)[0]


# ---------------------------------------------------------------- fetching


@dataclass
class FetchResult:
    """One download. `content_type` is the server's header as sent (a claim, not a fact)."""

    url: str
    final_url: str
    status: int
    content_type: str
    data: bytes

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()


@dataclass
class HttpStatusError(MedLensError):
    """`fetch_failed` because the host answered with an HTTP error status: the status and its
    Retry-After header let a crawler (`medlens batch`) tell "come back later" from "gone"."""

    status: int = 0
    retry_after: str | None = None


class Fetcher:
    """Downloads with SSRF guard, caps, timeouts, manual redirects and single-flight.

    Use as `async with Fetcher(settings) as f: await f.fetch(url)`, or `start()`/`close()`.
    `resolver` replaces the inner DNS resolver (tests map names to addresses without DNS);
    `address_policy` replaces the allow decision (default: `address_allowed(ip,
    settings.allow_private)`). Identical concurrent requests (same URL, cap and Accept) share
    one download; the Referer of the first caller is the one sent.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: AbstractResolver | None = None,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._policy: AddressPolicy = address_policy or partial(address_allowed, allow_private=settings.allow_private)
        self._inner_resolver = resolver
        self._resolver: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None
        fair = settings.queue_order == "fair"
        self._global = FairSemaphore(max(1, settings.fetch_concurrency), fair=fair)
        self._hosts: dict[str, list] = {}
        self._inflight: dict[tuple, asyncio.Task[FetchResult]] = {}

    async def __aenter__(self) -> "Fetcher":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._session is not None:
            return
        self._resolver = GuardedResolver(self._inner_resolver or aiohttp.DefaultResolver(), policy=self._policy)
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            use_dns_cache=False,
            limit=max(1, self.settings.fetch_concurrency),
            limit_per_host=max(1, self.settings.fetch_per_host),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self.settings.connect_timeout_s, sock_connect=self.settings.connect_timeout_s
            ),
            headers={"User-Agent": self.settings.user_agent},
            trust_env=False,
        )

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def fetch(
        self, url: str, *, referer: str | None = None, max_bytes: int | None = None, accept: str | None = None
    ) -> FetchResult:
        """Download `url` (http, https or data:) and return its bytes, or raise MedLensError."""
        cap = self.settings.max_image_bytes if max_bytes is None else max_bytes
        if isinstance(url, str) and url.lstrip()[:5].lower() == "data:":
            data, media = parse_data_url(url.strip(), cap)
            return FetchResult(url=url, final_url=url, status=200, content_type=media, data=data)
        target = check_url(url)
        await self.start()
        key = (str(target), cap, accept)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._download(url, target, referer, cap, accept))
            self._inflight[key] = task
            task.add_done_callback(partial(self._forget, key))
        return await asyncio.shield(task)

    def _forget(self, key: tuple, task: asyncio.Task[FetchResult]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an error nobody awaited is not logged as lost

    async def _download(self, url: str, target: URL, referer: str | None, cap: int, accept: str | None) -> FetchResult:
        async with self._global:
            try:
                async with asyncio.timeout(self.settings.total_timeout_s):
                    return await self._follow(url, target, referer, cap, accept)
            except asyncio.TimeoutError as exc:
                what = "connecting to" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "downloading from"
                raise MedLensError(
                    "fetch_timeout",
                    f"timed out {what} {target.host} (connect limit {self.settings.connect_timeout_s}s,"
                    f" total {self.settings.total_timeout_s}s)",
                ) from exc

    async def _follow(self, url: str, target: URL, referer: str | None, cap: int, accept: str | None) -> FetchResult:
        assert self._session is not None
        headers = {"Accept": accept or "image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5"}
        if referer and referer[:8].lower().startswith(("http://", "https://")) and not any(c in referer for c in "\r\n"):
            headers["Referer"] = referer
        current = target
        for _hop in range(self.settings.max_redirects + 1):
            ip = literal_ip(current)
            if ip is not None and not self._policy(ip):
                raise MedLensError("address_not_allowed", f"refusing to connect to {ip} (loopback/private/reserved address)")
            if ip is None and not self.settings.allow_private and is_local_name(current.host or ""):
                raise MedLensError("address_not_allowed", f"refusing to connect to {current.host} (a loopback name)")
            async with self._host_slot(current.host or ""):
                try:
                    async with self._session.get(current, allow_redirects=False, headers=headers) as resp:
                        if resp.status in _REDIRECTS:
                            current = self._next_hop(current, resp)
                            continue
                        if not 200 <= resp.status < 300:
                            raise HttpStatusError("fetch_failed", f"HTTP {resp.status} from {current.host}",
                                                  status=resp.status, retry_after=resp.headers.get("Retry-After"))
                        data = await _read_capped(resp, cap)
                        return FetchResult(
                            url=url,
                            final_url=str(current),
                            status=resp.status,
                            content_type=resp.headers.get("Content-Type", ""),
                            data=data,
                        )
                except (MedLensError, asyncio.TimeoutError):
                    raise
                except aiohttp.InvalidURL as exc:
                    raise MedLensError("invalid_url", f"not a valid URL: {exc}") from exc
                except (aiohttp.ClientError, OSError) as exc:
                    raise MedLensError("fetch_failed", f"{current.host}: {type(exc).__name__}: {plain_reason(exc)}") from exc
        raise MedLensError("too_many_redirects", f"more than {self.settings.max_redirects} redirects from {url[:200]}")

    @staticmethod
    def _next_hop(current: URL, resp: aiohttp.ClientResponse) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise MedLensError("fetch_failed", f"HTTP {resp.status} redirect without a Location from {current.host}")
        try:
            nxt = current.join(URL(location))
        except (ValueError, TypeError) as exc:
            raise MedLensError("invalid_url", f"redirect to an invalid URL {location[:200]!r}") from exc
        return check_url(str(nxt))

    @contextlib.asynccontextmanager
    async def _host_slot(self, host: str) -> AsyncIterator[None]:
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = [FairSemaphore(self.settings.fetch_per_host, fair=self._global.fair), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._hosts.get(host) is entry:
                del self._hosts[host]


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    length = resp.content_length
    if length is not None and length > cap:
        raise MedLensError("too_large", f"{length} bytes announced, more than the limit of {cap}")
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > cap:
            raise MedLensError("too_large", f"more than the limit of {cap} bytes")
    return bytes(buf)

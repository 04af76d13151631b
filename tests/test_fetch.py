"""Fetcher against the real loopback test site, and the SSRF guard with every outgoing connect trapped.

No test lets a packet leave the machine: SSRF tests map names to addresses with a local
resolver and `connect_spy` turns any non-loopback connection attempt into an AssertionError
(and records it), so a broken guard fails loudly instead of reaching the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from asyncio import selector_events
from typing import Any

import aiohttp
import pytest

from fixtures.data import SHARED_DATA, image
from fixtures.server import TableResolver
from fixtures.site import HUGE_BYTES, SAMPLE_JPEG, TestSite
from medlens.errors import MedLensError
from medlens.ingest.fetch import (
    FetchResult,
    Fetcher,
    GuardedResolver,
    address_allowed,
    check_address,
    check_url,
    decode_data_url,
    is_local_name,
    literal_ip,
)
from medlens.settings import Settings

BLOCKED = [
    "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1", "169.254.169.254",
    "127.0.0.1", "127.8.9.10", "0.0.0.0", "100.64.0.1", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fe80::1%eth0", "ff02::1", "fc00::1",
    "fd12:3456::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1",
    "2002:a00:1::1", "fec0::1", "2001:db8::1", "not-an-ip",
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "2001:4860:4860::8888", "::ffff:93.184.216.34"]


# ---------------------------------------------------------------- helpers


MapResolver = TableResolver  # answers from a dict, never from DNS


def _is_loopback(host: Any) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def connect_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record every outgoing connect; let loopback through, make anything else an AssertionError."""
    attempts: list[tuple[str, int]] = []

    def check(address: Any) -> None:
        host, port = address[0], address[1]
        attempts.append((str(host), int(port)))
        if not _is_loopback(host):
            raise AssertionError(f"test tried to connect to {host}:{port}")

    original_wrap = aiohttp.TCPConnector._wrap_create_connection

    async def wrap(self: aiohttp.TCPConnector, *args: Any, addr_infos: list, **kwargs: Any) -> Any:
        for info in addr_infos:
            check(info[4])
        return await original_wrap(self, *args, addr_infos=addr_infos, **kwargs)

    original_sock_connect = selector_events.BaseSelectorEventLoop.sock_connect

    async def sock_connect(self: Any, sock: socket.socket, address: Any) -> Any:
        check(address)
        return await original_sock_connect(self, sock, address)

    original_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        check(address)
        return original_connect(self, address)

    monkeypatch.setattr(aiohttp.TCPConnector, "_wrap_create_connection", wrap)
    monkeypatch.setattr(selector_events.BaseSelectorEventLoop, "sock_connect", sock_connect)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def _local(**changes: Any) -> Settings:
    """Settings for the loopback test site (it is private by nature)."""
    return Settings(allow_private=True, total_timeout_s=10.0).replace(**changes)


async def _code(fetcher: Fetcher, url: str, **kw: Any) -> MedLensError:
    with pytest.raises(MedLensError) as info:
        await fetcher.fetch(url, **kw)
    return info.value


def _loopback_or_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_loopback or address_allowed(ip, False)


# ---------------------------------------------------------------- guard as a plain function


@pytest.mark.parametrize("ip", BLOCKED)
def test_guard_refuses_non_public_addresses(ip: str) -> None:
    assert address_allowed(ip, False) is False
    with pytest.raises(MedLensError) as info:
        check_address(ip, False)
    assert info.value.code == "address_not_allowed"


@pytest.mark.parametrize("ip", ALLOWED)
def test_guard_allows_public_addresses(ip: str) -> None:
    assert address_allowed(ip, False) is True
    check_address(ip, False)


def test_allow_private_opens_the_guard_but_not_for_garbage() -> None:
    assert all(address_allowed(ip, True) for ip in BLOCKED if ip != "not-an-ip")
    assert address_allowed("not-an-ip", True) is False


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("ftp://example.org/a.png", "scheme_not_allowed"),
        ("javascript:alert(1)", "scheme_not_allowed"),
        ("gopher://example.org/", "scheme_not_allowed"),
        ("", "invalid_url"),
        ("not a url", "invalid_url"),
        ("/relative/path.png", "invalid_url"),
        ("http://", "invalid_url"),
        ("http://[::1", "invalid_url"),
        ("http://example.org:99999/", "invalid_url"),
        ("http://exa\nmple.org/", "invalid_url"),
    ],
)
def test_url_checks(url: str, code: str) -> None:
    with pytest.raises(MedLensError) as info:
        check_url(url)
    assert info.value.code == code


def test_check_url_accepts_http_and_drops_fragment() -> None:
    assert str(check_url("HTTPS://Example.org/a.png#frag")) == "https://example.org/a.png"


# ---------------------------------------------------------------- data: URLs


def _inline_thumbnail() -> str:
    html = (SHARED_DATA / "docs" / "page-modern.html").read_text(encoding="utf-8")
    start = html.index('src="data:image/jpeg') + 5
    return html[start : html.index('"', start)]


def test_data_url_from_a_real_page_decodes() -> None:
    data = decode_data_url(_inline_thumbnail(), 1_000_000)
    assert data.startswith(b"\xff\xd8\xff") and len(data) > 500


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64,@@@not-base64@@@", "invalid_url"),
        ("data:image/png;base64", "invalid_url"),
        ("data:text/html;base64,PGgxPmhpPC9oMT4=", "not_an_image"),
        ("http://example.org/", "invalid_url"),
    ],
)
def test_bad_data_urls(url: str, code: str) -> None:
    with pytest.raises(MedLensError) as info:
        decode_data_url(url, 1_000_000)
    assert info.value.code == code


def test_oversized_data_url_is_refused_before_decoding() -> None:
    url = _inline_thumbnail()
    assert len(decode_data_url(url, 10_000)) < 10_000
    with pytest.raises(MedLensError) as info:
        decode_data_url(url, 100)
    assert info.value.code == "too_large"


async def test_fetch_handles_data_urls_without_a_request(connect_spy: list) -> None:
    async with Fetcher(Settings()) as fetcher:
        result = await fetcher.fetch(_inline_thumbnail())
    assert result.status == 200 and result.content_type == "image/jpeg"
    assert result.data.startswith(b"\xff\xd8\xff")
    assert connect_spy == []


# ---------------------------------------------------------------- real downloads from the local site


async def test_fetches_a_real_image(test_site: TestSite) -> None:
    url = test_site.url(f"/images/{SAMPLE_JPEG}")
    async with Fetcher(_local()) as fetcher:
        result = await fetcher.fetch(url)
    assert isinstance(result, FetchResult)
    assert result.data == image(SAMPLE_JPEG).read_bytes()
    assert (result.url, result.final_url, result.status) == (url, url, 200)
    assert result.media_type == "image/jpeg"


async def test_redirects_are_followed_up_to_the_cap(test_site: TestSite) -> None:
    async with Fetcher(_local(max_redirects=3)) as fetcher:
        ok = await fetcher.fetch(test_site.url("/special/redirect-chain/3"))
        assert ok.final_url == test_site.url("/special/redirect-chain/0")
        assert ok.data == image(SAMPLE_JPEG).read_bytes()
        assert (await _code(fetcher, test_site.url("/special/redirect-chain/4"))).code == "too_many_redirects"
        assert (await _code(fetcher, test_site.url("/special/redirect-loop"))).code == "too_many_redirects"


async def test_redirect_to_another_port_is_rechecked_and_followed(test_site: TestSite, connect_spy: list) -> None:
    target = test_site.other_url(f"/images/{SAMPLE_JPEG}")
    async with Fetcher(_local()) as fetcher:
        result = await fetcher.fetch(f"{test_site.url('/special/redirect-to')}?to={target}")
    assert result.final_url == target
    assert result.data == image(SAMPLE_JPEG).read_bytes()
    assert ("127.0.0.1", test_site.other_port) in connect_spy


async def test_redirect_to_a_non_http_scheme_is_refused(test_site: TestSite) -> None:
    async with Fetcher(_local()) as fetcher:
        err = await _code(fetcher, test_site.url("/special/redirect-to?to=file:///etc/passwd"))
    assert err.code == "scheme_not_allowed"


@pytest.mark.parametrize(("status", "code"), [(404, "404"), (500, "500"), (403, "403")])
async def test_http_errors_are_fetch_failed(test_site: TestSite, status: int, code: str) -> None:
    async with Fetcher(_local()) as fetcher:
        err = await _code(fetcher, test_site.url(f"/special/status/{status}"))
    assert err.code == "fetch_failed" and code in err.message


async def test_a_server_that_never_answers_times_out(test_site: TestSite) -> None:
    loop = asyncio.get_running_loop()
    async with Fetcher(_local(total_timeout_s=0.5)) as fetcher:
        start = loop.time()
        err = await _code(fetcher, test_site.url("/special/hang"))
    assert err.code == "fetch_timeout"
    assert 0.4 < loop.time() - start < 5


async def test_refused_connection_is_fetch_failed(test_site: TestSite) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    async with Fetcher(_local()) as fetcher:
        err = await _code(fetcher, f"http://127.0.0.1:{free_port}/x.png")
    assert err.code == "fetch_failed"


@pytest.mark.parametrize("path", ["/special/huge", "/special/huge-declared"])
async def test_byte_cap_while_streaming_and_from_content_length(test_site: TestSite, path: str) -> None:
    async with Fetcher(_local()) as fetcher:
        err = await _code(fetcher, test_site.url(path), max_bytes=1_000_000)
        assert err.code == "too_large"
        assert ("announced" in err.message) == path.endswith("declared")
        whole = await fetcher.fetch(test_site.url(path), max_bytes=HUGE_BYTES)
    assert len(whole.data) == HUGE_BYTES


async def test_settings_cap_is_the_default(test_site: TestSite) -> None:
    size = image(SAMPLE_JPEG).stat().st_size
    async with Fetcher(_local(max_image_bytes=size - 1)) as fetcher:
        assert (await _code(fetcher, test_site.url(f"/images/{SAMPLE_JPEG}"))).code == "too_large"


async def test_referer_and_user_agent_are_sent(test_site: TestSite) -> None:
    page = test_site.url("/docs/page-basic.html")
    async with Fetcher(_local()) as fetcher:
        with_ref = json.loads((await fetcher.fetch(test_site.url("/special/headers"), referer=page)).data)
        without = json.loads((await fetcher.fetch(test_site.url("/special/headers"))).data)
    assert with_ref["Referer"] == page
    assert "Referer" not in without
    assert with_ref["User-Agent"] == Settings().user_agent


async def test_concurrent_requests_for_one_url_download_once(test_site: TestSite) -> None:
    test_site.reset_stats()
    async with Fetcher(_local()) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(test_site.url("/special/slow/same")) for _ in range(5)))
        assert test_site.hits["same"] == 1
        assert all(r.data == image(SAMPLE_JPEG).read_bytes() for r in results)
        await fetcher.fetch(test_site.url("/special/slow/same"))
        assert test_site.hits["same"] == 2  # single-flight, not a cache

        errors = await asyncio.gather(
            *(fetcher.fetch(test_site.url("/special/slow-status/err/404")) for _ in range(4)), return_exceptions=True
        )
    assert test_site.hits["err"] == 1
    assert all(isinstance(e, MedLensError) and e.code == "fetch_failed" for e in errors)


@pytest.mark.parametrize(("changes", "peak"), [({"fetch_per_host": 2}, 2), ({"fetch_concurrency": 1}, 1)])
async def test_concurrency_limits(test_site: TestSite, changes: dict, peak: int) -> None:
    test_site.reset_stats()
    async with Fetcher(_local(**changes)) as fetcher:
        await asyncio.gather(*(fetcher.fetch(test_site.url(f"/special/slow/limit{i}")) for i in range(5)))
    assert sum(test_site.hits[f"limit{i}"] for i in range(5)) == 5
    assert test_site.peak == peak


async def test_content_type_is_reported_not_trusted(test_site: TestSite) -> None:
    async with Fetcher(_local()) as fetcher:
        result = await fetcher.fetch(test_site.url("/special/html-as-jpeg"))
    assert result.media_type == "image/jpeg"
    assert result.data.lstrip().lower().startswith(b"<!doctype html")


# ---------------------------------------------------------------- SSRF, with connects trapped


async def test_spy_really_traps_connections(connect_spy: list) -> None:
    """Control: a public address passes the guard and reaches the connect trap (so the trap works)."""
    resolver = MapResolver({"public.test": ["93.184.216.34"]})
    async with Fetcher(Settings(), resolver=resolver) as fetcher:
        with pytest.raises(AssertionError, match="93.184.216.34"):
            await fetcher.fetch("http://public.test/a.png")
    assert connect_spy == [("93.184.216.34", 80)]


@pytest.mark.parametrize(
    ("host", "ips"),
    [
        ("internal.test", ["10.0.0.5"]),
        ("metadata.test", ["169.254.169.254"]),
        ("loop.test", ["127.0.0.1", "::1"]),
        ("cgnat.test", ["100.64.1.2"]),
        ("mapped.test", ["::ffff:10.0.0.1"]),
        ("linklocal6.test", ["fe80::1"]),
    ],
)
async def test_names_resolving_to_private_addresses_are_refused(host: str, ips: list, connect_spy: list) -> None:
    resolver = MapResolver({host: ips})
    async with Fetcher(Settings(), resolver=resolver) as fetcher:
        err = await _code(fetcher, f"http://{host}/latest/meta-data")
    assert err.code == "address_not_allowed"
    assert resolver.asked == [host]  # the check ran in the resolver, at connect time
    assert connect_spy == []


async def test_only_allowed_addresses_reach_the_connector(connect_spy: list) -> None:
    resolver = MapResolver({"mixed.test": ["10.0.0.5", "169.254.169.254", "93.184.216.34"]})
    async with Fetcher(Settings(), resolver=resolver) as fetcher:
        with pytest.raises(AssertionError):
            await fetcher.fetch("http://mixed.test/a.png")
    assert connect_spy == [("93.184.216.34", 80)]


async def test_guarded_resolver_on_its_own() -> None:
    guarded = GuardedResolver(MapResolver({"a.test": ["10.0.0.5"], "b.test": ["10.0.0.5", "8.8.8.8"]}))
    with pytest.raises(MedLensError) as info:
        await guarded.resolve("a.test", 80)
    assert info.value.code == "address_not_allowed" and "10.0.0.5" in info.value.message
    assert [r["host"] for r in await guarded.resolve("b.test", 80)] == ["8.8.8.8"]
    open_guard = GuardedResolver(MapResolver({"a.test": ["10.0.0.5"]}), allow_private=True)
    assert [r["host"] for r in await open_guard.resolve("a.test", 80)] == ["10.0.0.5"]


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0/"],
)
async def test_literal_ip_urls_are_refused_before_connecting(url: str, connect_spy: list) -> None:
    resolver = MapResolver({})
    async with Fetcher(Settings(), resolver=resolver) as fetcher:
        err = await _code(fetcher, url)
    assert err.code == "address_not_allowed"
    assert connect_spy == [] and resolver.asked == []


@pytest.mark.parametrize(
    "url",
    ["http://localhost/", "http://localhost./", "http://LocalHost:8080/", "http://foo.localhost/",
     "http://a.b.localhost./x.png", "http://127.1/", "http://0x7f.1/", "http://2130706433/", "http://017700000001/",
     "http://10.1/"],
)
async def test_loopback_names_and_numeric_spellings_are_refused_without_a_lookup(url: str, connect_spy: list) -> None:
    """RFC 6761: localhost and *.localhost are this machine whatever DNS says; `127.1` and friends
    are addresses the C library would parse, never names to look up."""
    resolver = MapResolver({})
    async with Fetcher(Settings(), resolver=resolver) as fetcher:
        err = await _code(fetcher, url)
    assert err.code == "address_not_allowed"
    assert connect_spy == [] and resolver.asked == []


@pytest.mark.parametrize(("host", "local"), [("localhost", True), ("LOCALHOST.", True), ("x.localhost", True),
                                             ("localhost.example.org", False), ("mylocalhost", False),
                                             ("localhost-cdn.test", False)])
def test_is_local_name(host: str, local: bool) -> None:
    assert is_local_name(host) is local


@pytest.mark.parametrize(("host", "ip"), [("127.1", "127.0.0.1"), ("0x7f.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
                                          ("10.1", "10.0.0.1"), ("1.2.3.4", "1.2.3.4"), ("example.org", None),
                                          ("1.2.3.4.5", None), ("0x7g.1", None)])
def test_literal_ip_reads_what_the_c_library_would(host: str, ip: str | None) -> None:
    from yarl import URL

    got = literal_ip(URL(f"http://{host}/"))
    assert (str(got) if got else None) == ip


async def test_local_site_is_off_limits_without_allow_private(test_site: TestSite, connect_spy: list) -> None:
    async with Fetcher(Settings()) as fetcher:
        err = await _code(fetcher, test_site.url(f"/images/{SAMPLE_JPEG}"))
        assert err.code == "address_not_allowed"
        by_name = await _code(fetcher, f"http://localhost:{test_site.port}/images/{SAMPLE_JPEG}")
        assert by_name.code == "address_not_allowed"  # real system resolver, guard filters 127.0.0.1 / ::1
    assert connect_spy == []


@pytest.mark.parametrize("target", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://internal.test/"])
async def test_redirect_into_the_private_network_is_refused(test_site: TestSite, target: str, connect_spy: list) -> None:
    """The site (loopback, allowed by this policy) redirects to a private target: refused, never connected."""
    resolver = MapResolver({"internal.test": ["10.0.0.5"]})
    async with Fetcher(Settings(), resolver=resolver, address_policy=_loopback_or_public) as fetcher:
        err = await _code(fetcher, f"{test_site.url('/special/redirect-to')}?to={target}")
    assert err.code == "address_not_allowed"
    assert connect_spy and all(host == "127.0.0.1" for host, _ in connect_spy)

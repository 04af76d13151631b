"""The server's own page (GET / and its files) and the page's session rules, on the real app with
the shipped model, against the loopback test site.

The page gets its session only for the install token (`POST /v1/session` with the token from
its `?token=` address): a per-process secret it keeps in sessionStorage and sends as its bearer.
Nothing is handed out by `GET /`, and no cookie exists for a browser to send to another port.
These tests send what a browser (or an attacker) would send in each situation and check each
refusal, including the audit's: `GET /` then the page's Origin opened every classify route.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import aiohttp
import pytest

from fixtures.server import EXTENSION_ORIGIN, Api, MakeApi, server_settings
from fixtures.site import TestSite
from medlens.serve.app import init_app
from medlens.serve.security import Access, read_token, binds_beyond_loopback, is_loopback_address, is_own_origin
from medlens.serve.webpage import ASSETS, CONTENT_SECURITY_POLICY

XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"
CHART = "non-medical/chart/charts-sklearn-data_area_0.png"


async def open_page(api: Api, host: str | None = None, token: str | None = None) -> str:
    """What the page's script does with the token from its address: trade it for the session."""
    headers = page_headers(api, None, host=host, Authorization=f"Bearer {token or api.token}")
    resp = await api.client.post("/v1/session", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return body["session"]


def page_headers(api: Api, session: str | None, *, origin: str | None = "self", host: str | None = None,
                 **extra: str) -> dict[str, str]:
    """What the page's fetch carries: its session as bearer and its Origin (`self` = this server's origin)."""
    host = host or f"127.0.0.1:{api.client.port}"
    headers = {"Host": host}
    if session:
        headers["Authorization"] = f"Bearer {session}"
    headers.update(extra)
    if origin:
        headers["Origin"] = f"http://{host}" if origin == "self" else origin
    return headers


async def classify_as_page(api: Api, urls: list[str], headers: dict[str, str]) -> tuple[int, Any]:
    resp = await api.client.post("/v1/classify", json={"urls": urls}, headers=headers)
    return resp.status, await resp.json()


# ---------------------------------------------------------------- the page and its files


async def test_page_is_served_without_any_session_and_with_protective_headers(api: Api) -> None:
    """Old: `GET /` handed its session cookie to any client (another local user included)."""
    resp = await api.client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert '<script src="/page/page.js"' in html and 'href="/page/page.css"' in html
    linked = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert linked and all(url.startswith(("/page/", "#")) for url in linked), linked  # nothing from another host
    assert "Set-Cookie" not in resp.headers
    assert "medlens page" in html and "?token=" in html  # a plain GET / says how to open the page
    assert re.search(r'<main id="app" hidden>', html)  # the app shows only once the script holds a session
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_page_files_are_served_with_their_types(api: Api, name: str) -> None:
    resp = await api.client.get(f"/page/{name}")
    assert resp.status == 200
    assert resp.content_type == ASSETS[name]
    assert len(await resp.read()) > 100
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/page/index.py", "/page/..%2Fsecurity.py", "/page/../webpage.py", "/page/", "/index.html"])
async def test_only_the_listed_page_files_exist(api: Api, path: str) -> None:
    resp = await api.client.get(path)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_page_is_refused_under_a_rebound_name_or_to_another_origin(api: Api) -> None:
    port = api.client.port
    rebound = await api.client.get("/", headers={"Host": f"attacker.example:{port}"})
    assert (rebound.status, (await rebound.json())["error"]["code"]) == (403, "forbidden_host")
    assert "Set-Cookie" not in rebound.headers  # DNS rebinding never obtains a session
    read_by_other_site = await api.client.get("/", headers={"Origin": "https://attacker.example"})
    assert (read_by_other_site.status, (await read_by_other_site.json())["error"]["code"]) == (403, "forbidden_origin")
    assert "Set-Cookie" not in read_by_other_site.headers


# ---------------------------------------------------------------- the page's session


async def test_plain_page_visit_gets_no_way_to_classify(api: Api, test_site: TestSite) -> None:
    """The audit's bypass, replayed: GET /, then the page's own Origin (which any local program
    can write) on a classify route. Old: 200 with results; now nothing was handed out to replay."""
    resp = await api.client.get("/")
    cookies = {name: m.value for name, m in resp.cookies.items()}
    headers = page_headers(api, None)
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], headers)
    assert (status, body["error"]["code"]) == (401, "unauthorized"), body
    assert "medlens page" in body["error"]["message"]


async def test_only_the_token_buys_a_session(api: Api) -> None:
    for proof in ({}, {"Authorization": "Bearer " + "x" * 43}, {"Authorization": f"Bearer {api.token}x"},
                  {"Authorization": f"Basic {api.token}"}):
        resp = await api.client.post("/v1/session", headers=page_headers(api, None, **proof))
        assert (resp.status, (await resp.json())["error"]["code"]) == (401, "unauthorized"), proof
    session = await open_page(api)
    assert session != api.token and len(session) >= 43
    assert await open_page(api, token=session) == session  # a page with its session may ask again (a reload)


async def test_page_session_classifies_from_its_own_origin(api: Api, test_site: TestSite) -> None:
    session = await open_page(api)
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}"), test_site.url(f"/images/{CHART}")],
                                          page_headers(api, session))
    assert status == 200, body
    assert [r["label"] for r in body["results"]] == ["medical", "non-medical"]


async def test_page_opened_as_localhost_works_as_localhost(api: Api, test_site: TestSite) -> None:
    host = f"localhost:{api.client.port}"
    session = await open_page(api, host)
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], page_headers(api, session, host=host))
    assert status == 200 and body["results"][0]["status"] == "ok"


async def test_page_uploads_a_pdf_with_its_session(api: Api, docs_dir: Any) -> None:
    session = await open_page(api)
    data = (docs_dir / "report.pdf").read_bytes()
    resp = await api.client.post("/v1/classify/pdf?name=report.pdf", data=data,
                                 headers=page_headers(api, session, **{"Content-Type": "application/pdf"}))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["images"] == len(body["results"]) > 0
    assert all(r["status"] in ("ok", "skipped") for r in body["results"])


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:{other}", "http://localhost:{port}", "https://127.0.0.1:{port}", "https://attacker.example", "null"],
)
async def test_session_from_another_origin_is_refused(api: Api, test_site: TestSite, origin: str) -> None:
    """Another port of 127.0.0.1 never holds the session (sessionStorage is per origin, port
    included); even with it, only the exact Origin of this Host passes the Origin check."""
    session = await open_page(api)
    origin = origin.format(port=api.client.port, other=test_site.port)
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], page_headers(api, session, origin=origin))
    assert (status, body["error"]["code"]) == (403, "forbidden_origin"), body


async def test_own_origin_without_the_session_is_unauthorized(api: Api, test_site: TestSite) -> None:
    url = test_site.url(f"/images/{XRAY}")
    for session in (None, "guessed-" + "x" * 40):
        status, body = await classify_as_page(api, [url], page_headers(api, session))
        assert (status, body["error"]["code"]) == (401, "unauthorized"), (session, body)
        assert "medlens page" in body["error"]["message"]


async def test_session_is_per_server_process(make_api: MakeApi, test_site: TestSite) -> None:
    first = await make_api()
    second = await make_api()
    session = await open_page(first)
    status, body = await classify_as_page(second, [test_site.url(f"/images/{XRAY}")], page_headers(second, session))
    assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_no_token_mode_still_refuses_other_origins(make_api: MakeApi, test_site: TestSite) -> None:
    """--no-token drops the credential, not the Origin and Host checks; the page's session is free."""
    api = await make_api(token_required=False)
    url = test_site.url(f"/images/{XRAY}")
    status, body = await classify_as_page(api, [url], page_headers(api, None))
    assert status == 200 and body["results"][0]["label"] == "medical"
    resp = await api.client.post("/v1/session", headers=page_headers(api, None))
    assert resp.status == 200 and (await resp.json())["session"]
    status, body = await classify_as_page(api, [url], page_headers(api, None, origin=f"http://127.0.0.1:{test_site.port}"))
    assert (status, body["error"]["code"]) == (403, "forbidden_origin")


async def test_rebound_host_with_a_stolen_session_is_still_refused(api: Api, test_site: TestSite) -> None:
    session = await open_page(api)
    host = f"attacker.example:{api.client.port}"
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], page_headers(api, session, host=host))
    assert (status, body["error"]["code"]) == (403, "forbidden_host")
    resp = await api.client.post("/v1/session", headers=page_headers(api, None, host=host, Authorization=f"Bearer {api.token}"))
    assert resp.status == 403  # a rebound page cannot trade a token either


async def test_page_session_never_obtains_the_install_token(api: Api) -> None:
    """The page's session only classifies: pairing hands the token to the extension alone."""
    session = await open_page(api)
    resp = await api.client.post("/v1/pair", json={"code": "ABCD-EFGH"}, headers=page_headers(api, session))
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (403, "forbidden_origin")
    assert api.token not in await resp.text()
    page_html = await (await api.client.get("/")).text()
    assert api.token not in page_html and session not in page_html


async def test_token_and_extension_still_work_beside_the_page(api: Api, test_site: TestSite) -> None:
    await open_page(api)
    results = await api.classify([test_site.url(f"/images/{XRAY}")])
    assert results[0]["label"] == "medical"


# ---------------------------------------------------------------- peers beyond loopback


def _own_non_loopback_address() -> str | None:
    """This machine's own address on its network interface (traffic to it never leaves the machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing: it only picks the route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if is_loopback_address(address) else address


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
async def test_peers_beyond_loopback(classifier: Any, aiohttp_client: Any, tmp_path: Any, bind: str) -> None:
    """Bound to loopback only nothing else can connect; bound beyond it on purpose, a client on
    another address needs the token on every /v1 route, health and the page's session included."""
    address = _own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    settings = server_settings(tmp_path / "config", host=bind, token_required=False)
    server = await aiohttp_client(init_app(settings, classifier=classifier), server_kwargs={"host": "0.0.0.0"})
    token = read_token(settings.config_path)
    port = server.port
    host = {"Host": f"127.0.0.1:{port}"}
    async with aiohttp.ClientSession() as remote:
        async def status(method: str, path: str, **headers: str) -> tuple[int, str]:
            async with remote.request(method, f"http://{address}:{port}{path}", headers={**host, **headers}) as resp:
                body = await resp.json() if resp.content_type == "application/json" else {}
                return resp.status, body.get("error", {}).get("code", "")

        if bind == "127.0.0.1":
            assert await status("GET", "/v1/health") == (403, "forbidden_peer")
            assert await status("GET", "/") == (403, "forbidden_peer")
            return
        assert await status("GET", "/v1/health") == (401, "unauthorized")  # even with --no-token
        assert await status("POST", "/v1/session") == (401, "unauthorized")
        assert await status("POST", "/v1/pair", Origin=EXTENSION_ORIGIN) == (401, "unauthorized")
        assert (await status("GET", "/v1/health", Authorization=f"Bearer {token}"))[0] == 200
        assert (await status("GET", "/"))[0] == 200  # the static page, which holds no secret
    local = await server.get("/v1/health", headers=host)
    assert local.status == 200 and (await local.json())["status"] == "ok"


@pytest.mark.parametrize(
    "address, loopback",
    [("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("::ffff:127.0.0.1", True), ("192.0.2.2", False),
     ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("fe80::1%eth0", False), ("", False), (None, False), ("x", False)],
)
def test_is_loopback_address(address: str | None, loopback: bool) -> None:
    assert is_loopback_address(address) is loopback


@pytest.mark.parametrize(
    "host, beyond",
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("[::1]", False), ("127.0.0.2", False),
     ("0.0.0.0", True), ("", True), ("::", True), ("192.0.2.2", True), ("myhost.lan", True)],
)
def test_binds_beyond_loopback(host: str, beyond: bool) -> None:
    assert binds_beyond_loopback(host) is beyond


# ---------------------------------------------------------------- /v1/health as the page sees it


async def test_health_is_full_for_the_page_and_minimal_for_its_neighbours(api: Api) -> None:
    session = await open_page(api)
    own = await api.client.get("/v1/health", headers=page_headers(api, session, origin=None))
    body = await own.json()
    assert body["limits"]["max_items"] == api.settings.max_items and body["model"]["backbone"]
    assert body["paired"] is False  # the page is not the extension: it holds no token
    for fetch_site in ("same-site", "cross-site", "same-origin", None):  # without the session: minimal
        extra = {"Sec-Fetch-Site": fetch_site} if fetch_site else {}
        resp = await api.client.get("/v1/health", headers=page_headers(api, None, origin=None, **extra))
        assert await resp.json() == {"status": "ok", "api": 1}, fetch_site
    extension = await api.client.get("/v1/health", headers={"Origin": EXTENSION_ORIGIN})
    assert "limits" in await extension.json()


# ---------------------------------------------------------------- the rules as plain functions


@pytest.mark.parametrize(
    "origin, host, same",
    [
        ("http://127.0.0.1:8377", "127.0.0.1:8377", True),
        ("HTTP://LOCALHOST:8377", "localhost:8377", True),
        ("http://[::1]:8377", "[::1]:8377", True),
        ("http://127.0.0.1:8378", "127.0.0.1:8377", False),
        ("https://127.0.0.1:8377", "127.0.0.1:8377", False),
        ("http://localhost:8377", "127.0.0.1:8377", False),
        ("http://127.0.0.1:8377.evil", "127.0.0.1:8377", False),
        ("null", "127.0.0.1:8377", False),
        (None, "127.0.0.1:8377", False),
        ("http://127.0.0.1:8377", None, False),
    ],
)
def test_is_own_origin(origin: str | None, host: str | None, same: bool) -> None:
    assert is_own_origin(origin, host) is same


def test_access_levels() -> None:
    assert not Access().identified and not Access().authorized
    assert Access(extension=True).identified and not Access(extension=True).authorized
    assert Access(token=True).authorized and Access(page=True).authorized and Access(page=True).identified

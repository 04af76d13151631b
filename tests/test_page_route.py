"""The server's own page (GET / and its files) and the page's session rules, on the real app with
the shipped model, against the loopback test site.

The page authenticates with a per-process secret in a `SameSite=Strict; HttpOnly` cookie that
counts only together with the page's own Origin (POST) or `Sec-Fetch-Site: same-origin` (GET).
These tests send the headers a browser would send in each situation, including the ones an
attacker's page or a DNS-rebinding attack makes the browser send, and check each refusal.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import pytest

from fixtures.server import EXTENSION_ORIGIN, Api, MakeApi
from fixtures.site import TestSite
from medlens.serve.security import Access, is_own_origin, page_cookie_name, page_session_valid
from medlens.serve.webpage import ASSETS, CONTENT_SECURITY_POLICY

XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"
CHART = "non-medical/chart/charts-sklearn-data_area_0.png"


async def open_page(api: Api, host: str | None = None) -> tuple[str, str]:
    """GET / as a browser would; returns (cookie name, cookie value) from its Set-Cookie."""
    headers = {"Host": host} if host else {}
    resp = await api.client.get("/", headers=headers)
    assert resp.status == 200, await resp.text()
    cookie = SimpleCookie(resp.headers["Set-Cookie"])
    ((name, morsel),) = cookie.items()
    return name, morsel.value


def page_headers(api: Api, cookie: tuple[str, str] | None, *, origin: str | None = "self", host: str | None = None,
                 **extra: str) -> dict[str, str]:
    """What the page's fetch carries: its cookie and its Origin (`self` = this server's origin)."""
    host = host or f"127.0.0.1:{api.client.port}"
    headers = {"Host": host, **extra}
    if cookie:
        headers["Cookie"] = f"{cookie[0]}={cookie[1]}"
    if origin:
        headers["Origin"] = f"http://{host}" if origin == "self" else origin
    return headers


async def classify_as_page(api: Api, urls: list[str], headers: dict[str, str]) -> tuple[int, Any]:
    resp = await api.client.post("/v1/classify", json={"urls": urls}, headers=headers)
    return resp.status, await resp.json()


# ---------------------------------------------------------------- the page and its files


async def test_page_is_served_with_its_session_cookie_and_protective_headers(api: Api) -> None:
    resp = await api.client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert '<script src="/page/page.js"' in html and 'href="/page/page.css"' in html
    linked = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert linked and all(url.startswith(("/page/", "#")) for url in linked), linked  # nothing from another host
    set_cookie = resp.headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in set_cookie.split(";")}
    assert set_cookie.startswith(page_cookie_name(api.client.port) + "=")
    assert {"httponly", "path", "samesite"} <= set(attributes), set_cookie
    assert attributes["samesite"].lower() == "samesite=strict" and attributes["path"] == "Path=/"
    assert "expires" not in attributes and "max-age" not in attributes  # lives as long as the browser session
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


async def test_page_session_classifies_from_its_own_origin(api: Api, test_site: TestSite) -> None:
    cookie = await open_page(api)
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}"), test_site.url(f"/images/{CHART}")],
                                          page_headers(api, cookie))
    assert status == 200, body
    assert [r["label"] for r in body["results"]] == ["medical", "non-medical"]


async def test_page_opened_as_localhost_works_as_localhost(api: Api, test_site: TestSite) -> None:
    host = f"localhost:{api.client.port}"
    cookie = await open_page(api, host)
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], page_headers(api, cookie, host=host))
    assert status == 200 and body["results"][0]["status"] == "ok"


async def test_page_uploads_a_pdf_with_its_session(api: Api, docs_dir: Any) -> None:
    cookie = await open_page(api)
    data = (docs_dir / "report.pdf").read_bytes()
    resp = await api.client.post("/v1/classify/pdf?name=report.pdf", data=data,
                                 headers=page_headers(api, cookie, **{"Content-Type": "application/pdf"}))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["images"] == len(body["results"]) > 0
    assert all(r["status"] in ("ok", "skipped") for r in body["results"])


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:{other}", "http://localhost:{port}", "https://127.0.0.1:{port}", "https://attacker.example", "null"],
)
async def test_session_cookie_from_another_origin_is_refused(api: Api, test_site: TestSite, origin: str) -> None:
    """Another port of 127.0.0.1 is the same *site*, so a browser sends it the SameSite=Strict
    cookie; only the exact Origin (scheme, name and port of this Host) makes the cookie count."""
    cookie = await open_page(api)
    origin = origin.format(port=api.client.port, other=test_site.port)
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], page_headers(api, cookie, origin=origin))
    assert (status, body["error"]["code"]) == (403, "forbidden_origin"), body


async def test_own_origin_without_the_session_is_unauthorized(api: Api, test_site: TestSite) -> None:
    url = test_site.url(f"/images/{XRAY}")
    for cookie in (None, (page_cookie_name(api.client.port), "guessed-" + "x" * 40), (page_cookie_name(1), "anything")):
        status, body = await classify_as_page(api, [url], page_headers(api, cookie))
        assert (status, body["error"]["code"]) == (401, "unauthorized"), (cookie, body)
        assert "reload the page" in body["error"]["message"]


async def test_session_cookie_without_an_origin_is_not_enough_to_classify(api: Api, test_site: TestSite) -> None:
    """A POST from any browser page carries Origin; one without it is not the page."""
    cookie = await open_page(api)
    headers = page_headers(api, cookie, origin=None, **{"Sec-Fetch-Site": "same-origin"})
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], headers)
    assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_session_is_per_server_process(make_api: MakeApi, test_site: TestSite) -> None:
    first = await make_api()
    second = await make_api()
    cookie = await open_page(first)
    stale = (page_cookie_name(second.client.port), cookie[1])
    status, body = await classify_as_page(second, [test_site.url(f"/images/{XRAY}")], page_headers(second, stale))
    assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_no_token_mode_still_refuses_other_origins(make_api: MakeApi, test_site: TestSite) -> None:
    """--no-token drops the credential, not the Origin and Host checks."""
    api = await make_api(token_required=False)
    url = test_site.url(f"/images/{XRAY}")
    status, body = await classify_as_page(api, [url], page_headers(api, None))
    assert status == 200 and body["results"][0]["label"] == "medical"
    status, body = await classify_as_page(api, [url], page_headers(api, None, origin=f"http://127.0.0.1:{test_site.port}"))
    assert (status, body["error"]["code"]) == (403, "forbidden_origin")


async def test_rebound_host_with_a_stolen_cookie_is_still_refused(api: Api, test_site: TestSite) -> None:
    cookie = await open_page(api)
    host = f"attacker.example:{api.client.port}"
    status, body = await classify_as_page(api, [test_site.url(f"/images/{XRAY}")], page_headers(api, cookie, host=host))
    assert (status, body["error"]["code"]) == (403, "forbidden_host")


async def test_page_session_never_obtains_the_install_token(api: Api) -> None:
    """The page's session only classifies: pairing hands the token to the extension alone."""
    cookie = await open_page(api)
    resp = await api.client.post("/v1/pair", json={"code": "ABCD-EFGH"}, headers=page_headers(api, cookie))
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (403, "forbidden_origin")
    assert api.token not in await resp.text()
    page_html = await (await api.client.get("/")).text()
    assert api.token not in page_html and cookie[1] not in page_html


async def test_token_and_extension_still_work_beside_the_page(api: Api, test_site: TestSite) -> None:
    await open_page(api)
    results = await api.classify([test_site.url(f"/images/{XRAY}")])
    assert results[0]["label"] == "medical"


# ---------------------------------------------------------------- /v1/health as the page sees it


async def test_health_is_full_for_the_page_and_minimal_for_its_neighbours(api: Api) -> None:
    cookie = await open_page(api)
    own = await api.client.get("/v1/health", headers=page_headers(api, cookie, origin=None, **{"Sec-Fetch-Site": "same-origin"}))
    body = await own.json()
    assert body["limits"]["max_items"] == api.settings.max_items and body["model"]["backbone"]
    assert body["paired"] is False  # the page is not the extension: it holds no token
    for fetch_site in ("same-site", "cross-site", "none", None):  # another port of 127.0.0.1, another site, typed URL
        extra = {"Sec-Fetch-Site": fetch_site} if fetch_site else {}
        resp = await api.client.get("/v1/health", headers=page_headers(api, cookie, origin=None, **extra))
        assert await resp.json() == {"status": "ok", "api": 1}, fetch_site
    with_origin = await api.client.get("/v1/health", headers=page_headers(api, cookie))
    assert "limits" in await with_origin.json()
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


@pytest.mark.parametrize(
    "cookie, origin, method, fetch_site, valid",
    [
        ("s3cret", "http://127.0.0.1:8377", "POST", None, True),
        ("s3cret", None, "GET", "same-origin", True),
        ("s3cret", None, "HEAD", "same-origin", True),
        ("s3cret", None, "GET", "same-site", False),
        ("s3cret", None, "GET", None, False),
        ("s3cret", None, "POST", "same-origin", False),
        ("s3cret", "http://127.0.0.1:9000", "POST", None, False),
        ("wrong", "http://127.0.0.1:8377", "POST", None, False),
        (None, "http://127.0.0.1:8377", "POST", None, False),
        ("", None, "GET", "same-origin", False),
    ],
)
def test_page_session_valid(cookie: str | None, origin: str | None, method: str, fetch_site: str | None, valid: bool) -> None:
    got = page_session_valid(cookie, "s3cret", origin=origin, host="127.0.0.1:8377", method=method, fetch_site=fetch_site)
    assert got is valid


def test_access_levels() -> None:
    assert not Access().identified and not Access().authorized
    assert Access(extension=True).identified and not Access(extension=True).authorized
    assert Access(token=True).authorized and Access(page=True).authorized and Access(page=True).identified

"""The bad-input catalogue: every kind of bad input the audit tried, against the real app.

Each kind is one parametrised case and checks the same four things: the HTTP status, the error
code, the good input sent beside it (or right after it, when the whole request is refused) still
answered ok, and the server still healthy afterwards. Outgoing traffic stays on loopback: SSRF
cases run with the real address policy behind `public_site`, which traps any other connection.
"""

from __future__ import annotations

import base64
import io
import socket
from pathlib import Path
from typing import Any, Callable

import pytest
from aiohttp import FormData
from PIL import Image

from fixtures.data import SHARED_DATA, image
from fixtures.server import Api, MakeApi, PublicSite
from fixtures.site import SAMPLE_JPEG, SVG, TestSite, png_with_header
from medlens.errors import HTTP_STATUS

XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"
CHART = "non-medical/chart/charts-sklearn-data_area_0.png"
DOCS = SHARED_DATA / "docs"


def _png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nested(depth: int) -> bytes:
    return b'{"urls": ' + b"[" * depth + b"]" * depth + b"}"


async def assert_ok(api: Api, result: dict[str, Any]) -> None:
    assert result["status"] == "ok" and result["error"] is None, result
    assert result["label"] in ("medical", "non-medical")


async def assert_healthy(api: Api, site: TestSite | None = None) -> None:
    """Health answers, and a fresh good request is still classified."""
    resp = await api.client.get("/v1/health", headers=api.headers())
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    form = FormData()
    form.add_field("file", image(XRAY).read_bytes(), filename="again.jpg", content_type="image/jpeg")
    resp = await api.client.post("/v1/classify/image", data=form, headers=api.headers())
    assert resp.status == 200
    await assert_ok(api, (await resp.json())["results"][0])


def assert_item(result: dict[str, Any], status: str, code: str) -> None:
    assert (result["status"], result["error"] and result["error"]["code"]) == (status, code), result
    assert result["error"]["message"] and result["label"] is None and result["probability"] is None
    assert code in HTTP_STATUS, f"{code} is not in the shared error-code list"


# ---------------------------------------------------------------- one bad URL among good ones

URL_CASES: dict[str, tuple[Callable[[TestSite], Any], str, str]] = {
    # kind: (the bad item, its status, its code)
    "corrupt PNG": (lambda s: s.url("/special/corrupt.png"), "error", "decode_failed"),
    "truncated JPEG": (lambda s: s.url("/special/truncated.jpg"), "error", "decode_failed"),
    "decompression bomb": (lambda s: s.url("/special/bomb.png"), "error", "too_many_pixels"),
    "HTML sent as image/jpeg": (lambda s: s.url("/special/html-as-jpeg"), "error", "not_an_image"),
    "SVG": (lambda s: s.url("/special/image.svg"), "error", "unsupported_format"),
    "plain text": (lambda s: s.url("/special/text.txt"), "error", "not_an_image"),
    "redirect loop": (lambda s: s.url("/special/redirect-loop"), "error", "too_many_redirects"),
    "redirect to file:": (lambda s: s.url("/special/redirect-to?to=file:///etc/passwd"), "error", "scheme_not_allowed"),
    "endless body": (lambda s: s.url("/special/huge"), "error", "too_large"),
    "declared too large": (lambda s: s.url("/special/huge-declared"), "error", "too_large"),
    "HTTP 404": (lambda s: s.url("/special/status/404"), "error", "fetch_failed"),
    "HTTP 500": (lambda s: s.url("/special/status/500"), "error", "fetch_failed"),
    "connection refused": (lambda s: f"http://127.0.0.1:{_closed_port()}/x.png", "error", "fetch_failed"),
    "never answers": (lambda s: s.url("/special/hang"), "error", "fetch_timeout"),
    "file: URL": (lambda s: "file:///etc/passwd", "error", "scheme_not_allowed"),
    "ftp: URL": (lambda s: "ftp://example.org/a.png", "error", "scheme_not_allowed"),
    "javascript: URL": (lambda s: "javascript:alert(1)", "error", "scheme_not_allowed"),
    "not a URL": (lambda s: "not a url", "error", "invalid_url"),
    "empty string": (lambda s: "", "error", "invalid_url"),
    "URL with CRLF": (lambda s: s.url("/images/x.png\r\nX-Injected: 1"), "error", "invalid_url"),
    "URL without host": (lambda s: "http:///a.png", "error", "invalid_url"),
    "number": (lambda s: 42, "error", "invalid_url"),
    "null": (lambda s: None, "error", "invalid_url"),
    "object": (lambda s: {"url": "x"}, "error", "invalid_url"),
    "nested list": (lambda s: [[["x"]]], "error", "invalid_url"),
    "data: URL of text": (lambda s: "data:text/plain,hello", "error", "not_an_image"),
    "data: URL with bad base64": (lambda s: "data:image/png;base64,!!!!", "error", "invalid_url"),
    "data: URL without comma": (lambda s: "data:image/png;base64", "error", "invalid_url"),
    "tiny image": (lambda s: "data:image/png;base64," + base64.b64encode(_png(8)).decode(), "skipped", "too_small"),
}


@pytest.mark.parametrize("kind", list(URL_CASES))
async def test_bad_url_item(make_api: MakeApi, test_site: TestSite, kind: str) -> None:
    api = await make_api(total_timeout_s=1.0, max_image_bytes=1_000_000)  # the 8 MiB bodies are over the cap
    bad, status, code = URL_CASES[kind]
    good = [test_site.url(f"/images/{XRAY}"), test_site.url(f"/images/{CHART}")]
    http_status, body = await api.post_json("/v1/classify", {"urls": [good[0], bad(test_site), good[1]]})
    assert http_status == 200, body
    first, middle, last = body["results"]
    assert_item(middle, status, code)
    await assert_ok(api, first)
    await assert_ok(api, last)
    await assert_healthy(api)


SSRF_CASES = {
    "loopback IPv4": "http://127.0.0.1:{port}/images/" + SAMPLE_JPEG,
    "loopback IPv4, other spelling": "http://127.1:{port}/images/" + SAMPLE_JPEG,
    "loopback IPv6": "http://[::1]:{port}/images/" + SAMPLE_JPEG,
    "IPv4-mapped IPv6 loopback": "http://[::ffff:127.0.0.1]:{port}/x.png",
    "localhost": "http://localhost:{port}/images/" + SAMPLE_JPEG,
    "localhost with a trailing dot": "http://localhost.:{port}/images/" + SAMPLE_JPEG,
    "a .localhost name": "http://foo.localhost:{port}/images/" + SAMPLE_JPEG,
    "a .localhost name with a trailing dot": "http://a.b.LOCALHOST.:{port}/x.png",
    "private network": "http://10.0.0.1/x.png",
    "cloud metadata (link-local)": "http://169.254.169.254/latest/meta-data",
    "IPv6 link-local": "http://[fe80::1]/x.png",
    "unspecified": "http://0.0.0.0:{port}/x.png",
    "name resolving to a private address": "http://internal.test/x.png",
    "redirect to loopback": "http://public.test/special/redirect-to?to=http://127.0.0.1:{port}/images/" + SAMPLE_JPEG,
    "redirect to a .localhost name": "http://public.test/special/redirect-to?to=http://x.localhost:{port}/x.png",
}


@pytest.mark.parametrize("kind", list(SSRF_CASES))
async def test_ssrf_target_is_refused_and_never_dialled(make_api: MakeApi, public_site: PublicSite, kind: str) -> None:
    api = await make_api(fetcher=public_site.fetcher, allow_private=False)
    site = public_site.site
    good = public_site.url(f"/images/{XRAY}")
    status, body = await api.post_json("/v1/classify", {"urls": [SSRF_CASES[kind].format(port=site.port), good]})
    assert status == 200, body
    assert_item(body["results"][0], "error", "address_not_allowed")
    await assert_ok(api, body["results"][1])
    assert all(port != site.port for _host, port in public_site.connects)  # the loopback site was never dialled
    assert not any("localhost" in name for name in public_site.resolver.asked)  # refused by name, no lookup
    resp = await api.client.get("/v1/health", headers=api.headers())
    assert resp.status == 200


# ---------------------------------------------------------------- one bad upload among good ones

UPLOAD_CASES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "empty file": (lambda: b"", "error", "not_an_image"),
    "corrupt PNG": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "error", "decode_failed"),
    "truncated JPEG": (lambda: image(SAMPLE_JPEG).read_bytes()[:4000], "error", "decode_failed"),
    "decompression bomb": (lambda: png_with_header(100_000, 100_000), "error", "too_many_pixels"),
    "SVG": (lambda: SVG, "error", "unsupported_format"),
    "a PDF without images": (lambda: (DOCS / "no-images.pdf").read_bytes(), "skipped", "no_images"),
    "HTML": (lambda: (DOCS / "page-basic.html").read_bytes(), "error", "not_an_image"),
    "random bytes": (lambda: bytes(range(256)) * 4, "error", "not_an_image"),
    "tiny image": (lambda: _png(8), "skipped", "too_small"),
    "over the image cap": (lambda: b"\xff\xd8\xff" + b"\x00" * 300_000, "error", "too_large"),
}


@pytest.mark.parametrize("kind", list(UPLOAD_CASES))
async def test_bad_upload_item(make_api: MakeApi, kind: str) -> None:
    api = await make_api(max_image_bytes=200_000)
    data, status, code = UPLOAD_CASES[kind]
    form = FormData()
    form.add_field("file", image(XRAY).read_bytes(), filename="xray.jpg", content_type="image/jpeg")
    form.add_field("file", data(), filename="bad.bin", content_type="application/octet-stream")
    form.add_field("file", image(CHART).read_bytes(), filename="chart.png", content_type="image/png")
    resp = await api.client.post("/v1/classify/image", data=form, headers=api.headers())
    assert resp.status == 200
    first, middle, last = (await resp.json())["results"]
    assert middle["source"] == "upload:bad.bin"
    assert_item(middle, status, code)
    await assert_ok(api, first)
    await assert_ok(api, last)
    await assert_healthy(api)


# ---------------------------------------------------------------- requests refused as a whole

JSON = {"Content-Type": "application/json"}
PDF = {"Content-Type": "application/pdf"}

# kind: (method, path, extra headers, body, status, code)
REQUEST_CASES: dict[str, tuple[str, str, dict[str, str], Any, int, str]] = {
    "JSON nested 100,000 deep": ("POST", "/v1/classify", JSON, nested(100_000), 400, "invalid_json"),
    "JSON nested just under the parser's limit": ("POST", "/v1/classify", JSON, nested(980), 400, "invalid_json"),
    "JSON nested past max_json_depth": ("POST", "/v1/classify", JSON, nested(40), 400, "invalid_json"),
    "deep JSON on the page route": ("POST", "/v1/classify/page", JSON, b'{"url": ' + b"{" * 50_000, 400, "invalid_json"),
    "not JSON": ("POST", "/v1/classify", JSON, b"{not json", 400, "invalid_json"),
    "not UTF-8": ("POST", "/v1/classify", JSON, b'{"urls": ["\xff\xfe"]}', 400, "invalid_json"),
    "empty JSON body": ("POST", "/v1/classify", JSON, b"", 400, "invalid_json"),
    "JSON array, not object": ("POST", "/v1/classify", JSON, b"[1, 2]", 400, "invalid_request"),
    "urls not a list": ("POST", "/v1/classify", JSON, b'{"urls": "http://x/a.png"}', 400, "invalid_request"),
    "threshold out of range": ("POST", "/v1/classify", JSON, b'{"urls": [], "threshold": 2}', 400, "invalid_request"),
    "threshold not a number": ("POST", "/v1/classify", JSON, b'{"urls": [], "threshold": "NaN"}', 400, "invalid_request"),
    "page_url not a string": ("POST", "/v1/classify", JSON, b'{"urls": [], "page_url": 5}', 400, "invalid_request"),
    "too many URLs": ("POST", "/v1/classify", JSON, b'{"urls": [' + b",".join([b'"http://a.test/x"'] * 257) + b"]}",
                      413, "too_many_items"),
    "text/plain JSON": ("POST", "/v1/classify", {"Content-Type": "text/plain"}, b'{"urls": []}', 415, "unsupported_media_type"),
    "page without url": ("POST", "/v1/classify/page", JSON, b'{"link": "x"}', 400, "invalid_request"),
    "page that is not HTML": ("POST", "/v1/classify/page", JSON, "PAGE:/special/text.txt", 502, "page_failed"),
    "page on a file: URL": ("POST", "/v1/classify/page", JSON, b'{"url": "file:///etc/passwd"}', 400, "scheme_not_allowed"),
    "empty PDF": ("POST", "/v1/classify/pdf", PDF, b"", 422, "pdf_malformed"),
    "PDF of garbage": ("POST", "/v1/classify/pdf", PDF, b"%PDF-1.7\n" + bytes(range(256)) * 20, 422, "pdf_malformed"),
    "image sent as PDF": ("POST", "/v1/classify/pdf", PDF, image(XRAY).read_bytes(), 422, "pdf_malformed"),
    "encrypted PDF": ("POST", "/v1/classify/pdf", PDF, (DOCS / "encrypted.pdf").read_bytes(), 422, "pdf_encrypted"),
    "PDF as JSON": ("POST", "/v1/classify/pdf", JSON, b"{}", 415, "unsupported_media_type"),
    "image upload as JSON": ("POST", "/v1/classify/image", JSON, b"{}", 415, "unsupported_media_type"),
    "multipart without a file": ("POST", "/v1/classify/image", {}, "FORM:note", 400, "invalid_request"),
    "PDF multipart without a file": ("POST", "/v1/classify/pdf", {}, "FORM:note", 400, "invalid_request"),
    "unknown route": ("GET", "/v1/nowhere", {}, None, 404, "not_found"),
    "wrong method": ("GET", "/v1/classify", {}, None, 405, "method_not_allowed"),
}


def _body(spec: Any, site: TestSite) -> Any:
    if isinstance(spec, str) and spec.startswith("PAGE:"):
        return ('{"url": "%s"}' % site.url(spec[5:])).encode()
    if isinstance(spec, str) and spec.startswith("FORM:"):
        form = FormData()
        form.add_field(spec[5:], b"just text", filename="note.txt")  # a file, but not in a "file" field
        return form
    return spec


@pytest.mark.parametrize("kind", list(REQUEST_CASES))
async def test_bad_request_is_refused_whole_and_the_next_one_works(api: Api, test_site: TestSite, kind: str) -> None:
    method, path, headers, body, status, code = REQUEST_CASES[kind]
    resp = await api.client.request(method, path, data=_body(body, test_site), headers=api.headers(**headers))
    answer = await resp.json()
    assert (resp.status, answer) == (status, {"error": {"code": code, "message": answer["error"]["message"]}}), kind
    assert HTTP_STATUS[code] == status, f"{code} answers {status} but the code list says {HTTP_STATUS[code]}"
    good_status, good = await api.post_json("/v1/classify", {"urls": [test_site.url(f"/images/{XRAY}")]})
    assert good_status == 200
    await assert_ok(api, good["results"][0])
    await assert_healthy(api)


@pytest.mark.parametrize("route", ["/v1/classify", "/v1/classify/image", "/v1/classify/pdf"])
async def test_body_over_the_cap_is_refused_and_the_next_one_works(make_api: MakeApi, test_site: TestSite, route: str) -> None:
    api = await make_api(max_body_bytes=20_000)
    body = b'{"urls": ["' + b"x" * 30_000 + b'"]}'
    resp = await api.client.post(route, data=body, headers=api.headers(**JSON))
    assert (resp.status, (await resp.json())["error"]["code"]) == (413, "body_too_large")
    good_status, good = await api.post_json("/v1/classify", {"urls": [test_site.url(f"/images/{XRAY}")]})
    assert good_status == 200
    await assert_ok(api, good["results"][0])


async def test_deep_json_is_not_logged_as_a_server_error(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    resp = await api.client.post("/v1/classify", data=nested(100_000), headers=api.headers(**JSON))
    assert resp.status == 400
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_a_pdf_that_is_partly_recovered_says_so(api: Api) -> None:
    """malformed.pdf is cut short: 9 of report.pdf's 16 images survive, and the answer says it was repaired."""
    resp = await api.client.post("/v1/classify/pdf", data=(DOCS / "malformed.pdf").read_bytes(), headers=api.headers(**PDF))
    body = await resp.json()
    assert resp.status == 200 and body["repaired"] is True and 0 < body["images"] < 16
    resp = await api.client.post("/v1/classify/pdf", data=(DOCS / "report.pdf").read_bytes(), headers=api.headers(**PDF))
    body = await resp.json()
    assert resp.status == 200 and body["repaired"] is False and body["images"] == 16


def test_every_code_has_an_http_status_and_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Error codes", 1)[1].split("\n#", 1)[0]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert documented == set(HTTP_STATUS)
    for code, status in HTTP_STATUS.items():
        assert f"| `{code}` | {status} |" in section, code

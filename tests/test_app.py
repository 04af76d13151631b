"""The real app (shipped model, real ingestion) against the loopback test site and real documents.

Labels are asserted only on clear cases (an X-ray, an MRI slice, a chart, a screenshot); the rest
of each answer is checked for shape, order and error codes. SSRF tests run with the default
address policy and `public_site`, which makes a loopback site look public and traps every other
connection attempt, so no packet leaves the machine.
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from PIL import Image

from fixtures.data import image
from fixtures.server import EXTENSION_ORIGIN, PUBLIC_IP, Api, GatedClassifier, MakeApi, PublicSite
from fixtures.site import SAMPLE_JPEG, TestSite
from medlens.model.classifier import Classifier

XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"
MRI = "medical/mri/itk-examples_BrainT1Slice.jpg"
CHART = "non-medical/chart/charts-sklearn-data_area_0.png"
SCREENSHOT = "non-medical/screenshot/debian-htmldocs-screens_api_addons_0.png"
ICON = "non-medical/icon/debian-desktop-base_logo-256.png"
CLEAR = {XRAY: "medical", MRI: "medical", CHART: "non-medical", SCREENSHOT: "non-medical", ICON: "non-medical"}
RESULT_KEYS = {"source", "status", "label", "probability", "modality", "error", "width", "height", "cached"}
PDF_KEYS = RESULT_KEYS | {"page", "index", "bbox", "thumbnail"}


def img_url(site: TestSite, rel: str) -> str:
    return site.url(f"/images/{rel}")


def tiny_png_data_url(side: int = 8) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def assert_ok(result: dict[str, Any], label: str | None = None) -> None:
    assert set(result) >= RESULT_KEYS, result
    assert result["status"] == "ok" and result["error"] is None, result
    assert result["label"] in ("medical", "non-medical") and 0.0 <= result["probability"] <= 1.0
    assert result["width"] > 0 and result["height"] > 0
    if label is not None:
        assert result["label"] == label, result
    if result["label"] == "non-medical":
        assert result["modality"] is None


def assert_error(result: dict[str, Any], code: str, status: str = "error") -> None:
    assert set(result) >= RESULT_KEYS, result
    assert (result["status"], result["error"] and result["error"]["code"]) == (status, code), result
    assert result["label"] is None and result["probability"] is None and result["modality"] is None
    assert result["error"]["message"]


# ---------------------------------------------------------------- health


async def test_health_reports_model_queue_and_pairing(api: Api, classifier: Classifier) -> None:
    resp = await api.client.get("/v1/health", headers=api.headers())
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"status", "version", "api", "model", "device", "queue", "limits", "token_required", "paired"}
    assert (body["status"], body["api"], body["token_required"], body["paired"]) == ("ok", 1, True, True)
    info = classifier.info
    assert body["model"] == {"backbone": info["backbone"], "head_sha256": info["head_sha256"], "threshold": info["threshold"]}
    assert body["device"] == info["device"]
    assert body["queue"] == {"depth": 0, "max": api.settings.queue_max}
    assert resp.headers["Access-Control-Allow-Origin"] == EXTENSION_ORIGIN
    unpaired = await (await api.client.get("/v1/health", headers={"Origin": EXTENSION_ORIGIN})).json()
    wrong = await (await api.client.get("/v1/health", headers=api.headers(token="nope"))).json()
    assert unpaired["paired"] is False and wrong["paired"] is False
    assert unpaired["model"] == body["model"]  # an unpaired extension still sees the state it must show


async def test_health_reports_the_limits_a_client_must_respect(make_api: MakeApi) -> None:
    api = await make_api(max_items=7, max_image_bytes=123_456, max_pdf_bytes=2_000_000, max_body_bytes=3_000_000)
    limits = (await (await api.client.get("/v1/health", headers=api.headers())).json())["limits"]
    assert limits["max_items"] == 7 and limits["max_image_bytes"] == 123_456
    assert (limits["max_pdf_bytes"], limits["max_body_bytes"]) == (2_000_000, 3_000_000)
    assert limits["max_pdf_pages"] == api.settings.max_pdf_pages and limits["max_page_images"] == api.settings.max_page_images
    assert all(isinstance(v, int) and v > 0 for v in limits.values()), limits


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Sec-Fetch-Site": "cross-site"}])
async def test_health_without_extension_token_or_page_tells_nothing_more_than_api_1(api: Api, headers: dict[str, str]) -> None:
    """A web page can make the browser GET loopback without an Origin (an <img>, a no-cors
    fetch); it must not learn the version, model or limits that fingerprint MedLens."""
    resp = await api.client.get("/v1/health", headers=headers)
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "api": 1}
    token_only = await (await api.client.get("/v1/health", headers=api.headers(origin=None))).json()
    assert token_only["paired"] is True and "limits" in token_only  # the CLI with its token sees it all


# ---------------------------------------------------------------- /v1/classify


async def test_classify_urls_answers_clear_cases_in_order(api: Api, test_site: TestSite) -> None:
    rels = [CHART, XRAY, SCREENSHOT, MRI, ICON]
    results = await api.classify([img_url(test_site, r) for r in rels])
    for rel, result in zip(rels, results):
        assert_ok(result, CLEAR[rel])
        assert result["cached"] is False
    assert results[1]["modality"] is not None  # a medical image gets a modality


async def test_same_url_is_fetched_and_classified_once(api: Api, test_site: TestSite) -> None:
    test_site.reset_stats()
    url = test_site.url("/special/slow/once")
    batcher = api.app[__import__("medlens.serve.keys", fromlist=["BATCHER"]).BATCHER]
    before = batcher.stats.images
    both = await asyncio.gather(api.classify([url, url]), api.classify([url]))
    results = both[0] + both[1]
    assert test_site.hits["once"] == 1
    assert batcher.stats.images - before == 1
    probabilities = {r["probability"] for r in results}
    assert len(probabilities) == 1 and all(r["status"] == "ok" for r in results)
    again = await api.classify([url])
    assert again[0]["cached"] is True and test_site.hits["once"] == 1


async def test_same_bytes_under_another_url_come_from_the_cache(api: Api, test_site: TestSite) -> None:
    first = (await api.classify([img_url(test_site, XRAY)]))[0]
    second = (await api.classify([img_url(test_site, XRAY) + "?copy=1"]))[0]
    assert first["cached"] is False and second["cached"] is True
    assert second["probability"] == first["probability"]


async def test_bad_urls_each_get_their_own_error_and_good_ones_are_answered(make_api: MakeApi, test_site: TestSite) -> None:
    api = await make_api(max_image_bytes=100_000)
    big = "data:image/png;base64," + "A" * (api.settings.max_image_bytes * 4 // 3 + 400)
    cases: list[tuple[Any, str | None]] = [
        (img_url(test_site, XRAY), None),
        (test_site.url("/special/corrupt.png"), "decode_failed"),
        (test_site.url("/special/truncated.jpg"), "decode_failed"),
        (test_site.url("/special/bomb.png"), "too_many_pixels"),
        (test_site.url("/special/html-as-jpeg"), "not_an_image"),
        (test_site.url("/special/image.svg"), "unsupported_format"),
        (test_site.url("/special/text.txt"), "not_an_image"),
        (test_site.url("/special/redirect-loop"), "too_many_redirects"),
        (test_site.url("/special/huge"), "too_large"),
        (test_site.url("/special/status/404"), "fetch_failed"),
        (img_url(test_site, CHART), None),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("ftp://example.org/a.png", "scheme_not_allowed"),
        ("javascript:alert(1)", "scheme_not_allowed"),
        ("not a url", "invalid_url"),
        (big, "too_large"),
        (42, "invalid_url"),
        (tiny_png_data_url(), "too_small"),
        (img_url(test_site, MRI), None),
    ]
    results = await api.classify([u for u, _ in cases])
    for (url, code), result in zip(cases, results):
        if code is None:
            assert_ok(result)
        elif code == "too_small":
            assert_error(result, code, status="skipped")
        else:
            assert_error(result, code)
    assert [results[i]["label"] for i in (0, 10, 18)] == ["medical", "non-medical", "medical"]


async def test_a_server_that_never_answers_times_out_alone(make_api: MakeApi, test_site: TestSite) -> None:
    api = await make_api(total_timeout_s=1.0)
    results = await api.classify([test_site.url("/special/hang"), img_url(test_site, XRAY)])
    assert_error(results[0], "fetch_timeout")
    assert_ok(results[1], "medical")


async def test_data_url_images_are_classified(api: Api) -> None:
    buf = io.BytesIO(image(XRAY).read_bytes())
    url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    (result,) = await api.classify([url])
    assert_ok(result, "medical")


async def test_threshold_relabels(api: Api, test_site: TestSite) -> None:
    urls = [img_url(test_site, CHART), img_url(test_site, XRAY)]
    low = await api.classify(urls, threshold=0.0)
    high = await api.classify(urls, threshold=1.0)
    assert [r["label"] for r in low] == ["medical", "medical"]
    assert [r["label"] for r in high] == ["non-medical", "non-medical"]
    assert [r["probability"] for r in low] == [r["probability"] for r in high]
    for bad in (2, -0.1, "high", True):
        status, body = await api.post_json("/v1/classify", {"urls": urls, "threshold": bad})
        assert (status, body["error"]["code"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"urls": "http://example.org/a.png"}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ([1, 2], 400, "invalid_request"),
        ({"urls": [], "page_url": 5}, 400, "invalid_request"),
    ],
)
async def test_malformed_classify_bodies(api: Api, body: Any, status: int, code: str) -> None:
    got_status, got = await api.post_json("/v1/classify", body)
    assert (got_status, got) == (status, {"error": {"code": code, "message": got["error"]["message"]}})


async def test_not_json_and_wrong_content_type(api: Api) -> None:
    resp = await api.client.post("/v1/classify", data=b"{not json", headers=api.headers(**{"Content-Type": "application/json"}))
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_json")
    resp = await api.client.post("/v1/classify", data=b'{"urls": []}', headers=api.headers(**{"Content-Type": "text/plain"}))
    assert (resp.status, (await resp.json())["error"]["code"]) == (415, "unsupported_media_type")


async def test_too_many_items_is_refused_whole(make_api: MakeApi) -> None:
    api = await make_api(max_items=3)
    status, body = await api.post_json("/v1/classify", {"urls": ["http://example.org/a.png"] * 4})
    assert (status, body["error"]["code"]) == (413, "too_many_items")


async def test_empty_url_list(api: Api) -> None:
    assert await api.classify([]) == []


async def test_fifty_concurrent_requests_are_all_answered(api: Api, test_site: TestSite) -> None:
    rels = [XRAY, MRI, CHART, SCREENSHOT, ICON]
    requests = [[img_url(test_site, rels[i % 5]) + f"?r={i}", img_url(test_site, rels[(i + 2) % 5])] for i in range(50)]
    answers = await asyncio.gather(*(api.classify(urls) for urls in requests))
    assert len(answers) == 50
    for i, results in enumerate(answers):
        assert_ok(results[0], CLEAR[rels[i % 5]])
        assert_ok(results[1], CLEAR[rels[(i + 2) % 5]])


# ---------------------------------------------------------------- SSRF through the server


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{port}/images/" + SAMPLE_JPEG, "http://10.0.0.1/a.png", "http://169.254.169.254/latest/meta-data",
     "http://internal.test/a.png", "http://localhost:{port}/images/" + SAMPLE_JPEG],
)
async def test_redirects_into_private_addresses_are_refused(
    make_api: MakeApi, public_site: PublicSite, target: str
) -> None:
    api = await make_api(fetcher=public_site.fetcher, allow_private=False)
    site = public_site.site
    redirect = public_site.url("/special/redirect-to") + "?to=" + target.format(port=site.port)
    good = public_site.url(f"/images/{XRAY}")
    results = await api.classify([redirect, good])
    assert_error(results[0], "address_not_allowed")
    assert_ok(results[1], "medical")  # the "public" site itself is fine
    assert (PUBLIC_IP, 80) in public_site.connects
    assert ("127.0.0.1", site.port) not in public_site.connects  # the redirect target was never dialled
    assert not any(host.startswith(("10.", "169.254.")) for host, _ in public_site.connects)


async def test_private_addresses_are_refused_without_allow_private(make_api: MakeApi, public_site: PublicSite) -> None:
    api = await make_api(fetcher=public_site.fetcher, allow_private=False)
    site = public_site.site
    urls = [img_url(site, XRAY), "http://10.1.2.3/x.png", "http://169.254.169.254/", "http://internal.test/x.png",
            "http://[::1]/x.png"]
    results = await api.classify(urls)
    for result in results:
        assert_error(result, "address_not_allowed")
    assert public_site.connects and all(port != site.port for _, port in public_site.connects)


# ---------------------------------------------------------------- /v1/classify/image


def _form(*files: tuple[str, bytes]) -> FormData:
    form = FormData()
    for name, data in files:
        form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return form


async def test_multipart_upload_of_several_images(api: Api) -> None:
    form = _form(("xray.jpg", image(XRAY).read_bytes()), ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
                 ("chart.png", image(CHART).read_bytes()))
    resp = await api.client.post("/v1/classify/image", data=form, headers=api.headers())
    assert resp.status == 200
    results = (await resp.json())["results"]
    assert [r["source"] for r in results] == ["upload:xray.jpg", "upload:broken.png", "upload:chart.png"]
    assert_ok(results[0], "medical")
    assert_error(results[1], "decode_failed")
    assert_ok(results[2], "non-medical")


async def test_raw_image_body(api: Api) -> None:
    resp = await api.client.post(
        "/v1/classify/image?name=scan.png", data=image(MRI).read_bytes(), headers=api.headers(**{"Content-Type": "image/jpeg"})
    )
    (result,) = (await resp.json())["results"]
    assert result["source"] == "upload:scan.png"
    assert_ok(result, "medical")


async def test_oversize_uploads(make_api: MakeApi) -> None:
    api = await make_api(max_image_bytes=40_000, max_body_bytes=200_000)
    small, big = image(ICON).read_bytes(), image(SCREENSHOT).read_bytes()
    assert len(small) < 40_000 < len(big) < 200_000
    resp = await api.client.post("/v1/classify/image", data=_form(("big.jpg", big), ("icon.png", small)), headers=api.headers())
    results = (await resp.json())["results"]
    assert_error(results[0], "too_large")
    assert_ok(results[1], "non-medical")
    raw = await api.client.post("/v1/classify/image", data=big, headers=api.headers(**{"Content-Type": "image/jpeg"}))
    assert_error((await raw.json())["results"][0], "too_large")
    whole = await api.client.post("/v1/classify/image", data=_form(*[("x.jpg", big)] * 5), headers=api.headers())
    assert (whole.status, (await whole.json())["error"]["code"]) == (413, "body_too_large")


async def test_upload_without_a_file_or_of_the_wrong_type(api: Api) -> None:
    form = FormData()
    form.add_field("other", b"x", filename="x.png")
    form.add_field("note", "just text")
    resp = await api.client.post("/v1/classify/image", data=form, headers=api.headers())
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_request")
    resp = await api.client.post("/v1/classify/image", data=b"{}", headers=api.headers(**{"Content-Type": "application/json"}))
    assert (resp.status, (await resp.json())["error"]["code"]) == (415, "unsupported_media_type")


# ---------------------------------------------------------------- /v1/classify/pdf


async def _pdf(api: Api, data: bytes, name: str = "doc.pdf", multipart: bool = True) -> tuple[int, Any]:
    if multipart:
        form = FormData()
        form.add_field("file", data, filename=name, content_type="application/pdf")
        resp = await api.client.post("/v1/classify/pdf", data=form, headers=api.headers())
    else:
        resp = await api.client.post(f"/v1/classify/pdf?name={name}", data=data,
                                     headers=api.headers(**{"Content-Type": "application/pdf"}))
    return resp.status, await resp.json()


async def test_pdf_images_with_position_and_thumbnail(api: Api, docs_dir: Path) -> None:
    status, body = await _pdf(api, (docs_dir / "report.pdf").read_bytes(), "report.pdf")
    assert status == 200, body
    assert (body["pages"], body["images"], body["truncated"]) == (4, 16, False)
    results = body["results"]
    assert len(results) == 16
    assert [(r["page"], r["index"]) for r in results] == sorted((r["page"], r["index"]) for r in results)
    for r in results:
        assert set(r) == PDF_KEYS
        assert_ok(r)
        assert r["source"] == f"pdf:report.pdf#page={r['page']}&index={r['index']}"
        assert len(r["bbox"]) == 4
        assert r["thumbnail"].startswith("data:image/jpeg;base64,")
        thumb = Image.open(io.BytesIO(base64.b64decode(r["thumbnail"].split(",", 1)[1])))
        assert thumb.format == "JPEG" and max(thumb.size) <= api.settings.thumbnail_side
    labels = [r["label"] for r in results]
    assert "medical" in labels and "non-medical" in labels


async def test_pdf_raw_body_soft_mask_and_cmyk(api: Api, docs_dir: Path) -> None:
    status, body = await _pdf(api, (docs_dir / "alpha-cmyk.pdf").read_bytes(), "a.pdf", multipart=False)
    assert status == 200 and body["images"] == 2
    assert all(r["source"].startswith("pdf:a.pdf#page=1&index=") for r in body["results"])


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [("encrypted.pdf", 422, "pdf_encrypted"), ("garbage", 422, "pdf_malformed"), ("image", 422, "pdf_malformed")],
)
async def test_bad_pdfs_get_a_clear_error(api: Api, docs_dir: Path, name: str, status: int, code: str) -> None:
    data = {
        "garbage": b"%PDF-1.7\n" + bytes(range(256)) * 20,
        "image": image(XRAY).read_bytes(),
    }.get(name) or (docs_dir / name).read_bytes()
    got_status, body = await _pdf(api, data)
    assert (got_status, body["error"]["code"]) == (status, code)


async def test_damaged_pdf_answers_what_could_be_recovered(api: Api, docs_dir: Path) -> None:
    status, body = await _pdf(api, (docs_dir / "malformed.pdf").read_bytes())
    assert status == 200 and body["images"] == len(body["results"]) > 0


async def test_pdf_without_images(api: Api, docs_dir: Path) -> None:
    status, body = await _pdf(api, (docs_dir / "no-images.pdf").read_bytes())
    assert (status, body) == (200, {"pages": 2, "images": 0, "truncated": False, "repaired": False, "results": []})


async def test_oversize_pdf(make_api: MakeApi, docs_dir: Path) -> None:
    api = await make_api(max_pdf_bytes=10_000)
    for multipart in (True, False):
        status, body = await _pdf(api, (docs_dir / "report.pdf").read_bytes(), multipart=multipart)
        assert (status, body["error"]["code"]) == (413, "too_large")


# ---------------------------------------------------------------- /v1/classify/page


async def test_page_scan_classifies_every_image(api: Api, test_site: TestSite) -> None:
    status, body = await api.post_json("/v1/classify/page", {"url": test_site.url("/docs/page-basic.html")})
    assert status == 200, body
    assert body["page_url"] == test_site.url("/docs/page-basic.html")
    assert (body["images_found"], body["truncated"], len(body["results"])) == (12, False, 12)
    for r in body["results"]:
        assert_ok(r)
        assert r["source"].startswith(test_site.url("/images/"))


async def test_modern_page_scan(api: Api, test_site: TestSite) -> None:
    status, body = await api.post_json("/v1/classify/page", {"url": test_site.url("/docs/page-modern.html")})
    assert status == 200 and body["images_found"] == len(body["results"]) > 0
    assert any(r["source"].startswith("data:image/") for r in body["results"])
    assert all(r["status"] in ("ok", "skipped", "error") for r in body["results"])


async def test_page_sends_itself_as_referer(api: Api, test_site: TestSite, aiohttp_server: Any) -> None:
    seen: list[str | None] = []

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f'<html><body><img src="/img.jpg"></body></html>', content_type="text/html")

    async def img(request: web.Request) -> web.FileResponse:
        seen.append(request.headers.get("Referer"))
        return web.FileResponse(image(XRAY))

    app = web.Application()
    app.router.add_get("/page.html", page)
    app.router.add_get("/img.jpg", img)
    server = await aiohttp_server(app)
    page_url = str(server.make_url("/page.html"))
    status, body = await api.post_json("/v1/classify/page", {"url": page_url})
    assert status == 200 and body["images_found"] == 1
    assert_ok(body["results"][0], "medical")
    assert seen == [page_url]


async def test_page_without_images_and_pages_that_fail(api: Api, test_site: TestSite, aiohttp_server: Any) -> None:
    async def empty(request: web.Request) -> web.Response:
        return web.Response(text="<html><body><p>Only words.</p></body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/empty.html", empty)
    server = await aiohttp_server(app)
    status, body = await api.post_json("/v1/classify/page", {"url": str(server.make_url("/empty.html"))})
    assert (status, body["images_found"], body["results"]) == (200, 0, [])
    for url, code in [
        (test_site.url("/special/text.txt"), "page_failed"),
        (test_site.url("/special/status/500"), "fetch_failed"),
        (test_site.url("/special/redirect-loop"), "too_many_redirects"),
        ("file:///etc/passwd", "scheme_not_allowed"),
    ]:
        status, body = await api.post_json("/v1/classify/page", {"url": url})
        assert body["error"]["code"] == code and status >= 400, (url, body)
    status, body = await api.post_json("/v1/classify/page", {"link": "x"})
    assert (status, body["error"]["code"]) == (400, "invalid_request")


# ---------------------------------------------------------------- security


CLASSIFY_ROUTES = ["/v1/classify", "/v1/classify/image", "/v1/classify/pdf", "/v1/classify/page"]


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:8000", "null", "chrome-extension://"])
@pytest.mark.parametrize("path", ["/v1/health", *CLASSIFY_ROUTES, "/nowhere"])
async def test_web_page_origins_are_forbidden_on_every_route(api: Api, origin: str, path: str) -> None:
    method = api.client.get if path == "/v1/health" else api.client.post
    # a page's "simple" text/plain POST (no preflight), even with the right token
    resp = await method(path, data=b'{"urls": []}', headers=api.headers(origin=origin, **{"Content-Type": "text/plain"}))
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "forbidden_origin")
    assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "127.0.0.1:1", "localhost", "127.0.0.2:{port}", "attacker.test", "", "127.0.0.1:{port}.evil"]
)
async def test_foreign_host_headers_are_forbidden(api: Api, host: str) -> None:
    port = api.client.port
    resp = await api.client.get("/v1/health", headers={"Host": host.format(port=port)})
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "forbidden_host")


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
async def test_loopback_host_headers_are_accepted(api: Api, host: str) -> None:
    resp = await api.client.get("/v1/health", headers={"Host": host.format(port=api.client.port)})
    assert resp.status == 200


@pytest.mark.parametrize("path", CLASSIFY_ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic abc", "Bearer", "{token}"])
async def test_missing_or_wrong_token_is_unauthorized(api: Api, path: str, auth: str | None) -> None:
    headers = {"Origin": EXTENSION_ORIGIN, "Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth.format(token=api.token)
    resp = await api.client.post(path, data=b'{"urls": []}', headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "unauthorized")
    assert resp.headers["Access-Control-Allow-Origin"] == EXTENSION_ORIGIN  # the extension can read why


async def test_no_token_mode(make_api: MakeApi, test_site: TestSite) -> None:
    api = await make_api(token_required=False)
    resp = await api.client.post("/v1/classify", json={"urls": [img_url(test_site, XRAY)]})
    assert resp.status == 200
    assert_ok((await resp.json())["results"][0], "medical")
    health = await (await api.client.get("/v1/health", headers={"Origin": EXTENSION_ORIGIN})).json()
    assert (health["token_required"], health["paired"]) == (False, False)


async def test_token_file_is_private_and_stable(make_api: MakeApi) -> None:
    api = await make_api()
    path = Path(api.settings.config_path) / "token"
    assert path.stat().st_mode & 0o777 == 0o600
    again = await make_api()
    assert again.token == api.token


@pytest.mark.parametrize("private_network", [False, True])
async def test_extension_preflight(api: Api, private_network: bool) -> None:
    headers = {"Origin": EXTENSION_ORIGIN, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type"}
    if private_network:
        headers["Access-Control-Request-Private-Network"] = "true"
    resp = await api.client.options("/v1/classify", headers=headers)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == EXTENSION_ORIGIN
    assert "authorization" in resp.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert resp.headers.get("Access-Control-Allow-Private-Network") == ("true" if private_network else None)


async def test_web_preflight_gets_nothing(api: Api) -> None:
    resp = await api.client.options("/v1/classify", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true"})
    assert resp.status == 403
    assert not any(h.lower().startswith("access-control-") for h in resp.headers)


async def test_no_cors_headers_without_an_extension_origin(api: Api) -> None:
    resp = await api.client.get("/v1/health")
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    resp = await api.client.get("/v2/whatever", headers=api.headers())
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    resp = await api.client.get("/v1/classify", headers=api.headers())
    assert (resp.status, (await resp.json())["error"]["code"]) == (405, "method_not_allowed")


# ---------------------------------------------------------------- back-pressure


async def test_full_queue_answers_503_with_retry_after(make_api: MakeApi, classifier: Classifier, test_site: TestSite) -> None:
    gated = GatedClassifier(classifier)
    api = await make_api(classifier=gated, max_batch=1, max_wait_ms=0, queue_max=1, retry_after_s=3)
    urls = [img_url(test_site, r) for r in (XRAY, CHART, MRI)]
    first = asyncio.ensure_future(api.classify(urls))
    try:
        await asyncio.to_thread(gated.entered.wait, 10)
        for _ in range(200):  # the second image reaches the queue once downloaded and decoded
            health = await (await api.client.get("/v1/health", headers=api.headers())).json()
            if health["queue"]["depth"] == 1:
                break
            await asyncio.sleep(0.02)
        assert health["queue"] == {"depth": 1, "max": 1}
        resp = await api.client.post("/v1/classify", json={"urls": urls[:1]}, headers=api.headers())
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "3"
        assert resp.headers["Access-Control-Expose-Headers"] == "Retry-After"  # the extension may read it
        assert (await resp.json())["error"]["code"] == "queue_full"
    finally:
        gated.gate.set()
    results = await first
    assert [r["label"] for r in results] == ["medical", "non-medical", "medical"]
    health = await (await api.client.get("/v1/health", headers=api.headers())).json()
    assert health["queue"]["depth"] == 0

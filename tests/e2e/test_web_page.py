"""The server's own page at GET /, in real headless Chromium, against the real server and model.

A person opens http://127.0.0.1:PORT/, drops a real PDF, pastes an image URL and a page URL
served by the loopback test site, filters, and downloads CSV and JSON; the page shows the
server's state and a clear error for each failure (file too large for the server's limit, not
an image, fetch refused, server busy, session gone). A page of another origin cannot use the
server through the browser. Screenshots go to reports/e2e/web-page-*.png.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import CHROMIUM, MedLensServer
from e2e.pages import CHART, CT, CUPS, PHOTO, XRAY
from fixtures.server import GatedClassifier

pytestmark = pytest.mark.slow

CSV_COLUMNS = ["input", "source", "status", "label", "probability", "modality", "page", "index", "width", "height",
               "cached", "error_code", "error_message"]
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser(pw):
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
    yield b
    b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    ctx.set_default_timeout(30_000)
    p = ctx.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" and "favicon" not in m.text else None)
    p.js_errors = errors  # type: ignore[attr-defined]
    yield p
    ctx.close()


@pytest.fixture(scope="module")
def strict_server(classifier, tmp_path_factory):
    """A server with small limits (PDFs up to 200 kB, 3 items a request) and a gated model."""
    gated = GatedClassifier(classifier)
    srv = MedLensServer(gated, tmp_path_factory.mktemp("medlens-strict"), max_pdf_bytes=200_000, max_items=3,
                        max_batch=1, max_wait_ms=0, queue_max=1, retry_after_s=1).start()
    srv.gated = gated
    yield srv
    gated.gate.set()
    srv.stop()


def open_medlens(page, server) -> None:
    """Log in the way `medlens page` does: the address with the token (then dropped from it)."""
    page.goto(f"{server.url}/?token={server.token}")
    page.wait_for_selector("#server[data-state=ok]")


def wait_idle(page, n_results: int | None = None, timeout_s: float = 60.0) -> None:
    """Until no card is pending (and, if given, that many results are listed). Polled from here:
    the page's CSP has no 'unsafe-eval', which Playwright's wait_for_function needs."""
    idle = "() => !document.querySelector('.card.pending') && document.querySelector('#status').textContent.startsWith('Done')"
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(idle):
        assert time.monotonic() < deadline, f"page still busy: {page.text_content('#status')!r}"
        page.wait_for_timeout(100)
    if n_results is not None:
        assert page.evaluate("() => Number(document.querySelector('[data-count=all]').textContent)") == n_results


def cards(page) -> list[dict[str, Any]]:
    return page.evaluate("""() => [...document.querySelectorAll('#grid .card')].map(c => ({
        category: c.dataset.category, status: c.dataset.status, source: c.dataset.source,
        text: c.innerText.replace(/\\s+/g, ' ').trim(),
        thumb: (c.querySelector('img') || {}).src || null,
        thumbLoaded: !!(c.querySelector('img') && c.querySelector('img').naturalWidth > 0)}))""")


def remote_preview_loads(page, source: str, timeout_s: float = 15.0) -> bool:
    """A URL's preview is loaded lazily, as its card scrolls into view: scroll there, then wait."""
    img = page.locator(f'.card[data-source="{source}"] img')
    img.scroll_into_view_if_needed()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if img.evaluate("i => i.complete && i.naturalWidth > 0"):
            return True
        page.wait_for_timeout(100)
    return False


def drop_files(page, files: list[tuple[str, bytes, str]]) -> None:
    """What a person's drag and drop delivers: a DataTransfer holding real files."""
    payload = [[name, base64.b64encode(data).decode(), ctype] for name, data, ctype in files]
    transfer = page.evaluate_handle("""(files) => { const dt = new DataTransfer();
        for (const [name, b64, type] of files) {
          const bin = atob(b64); const bytes = new Uint8Array(bin.length);
          for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
          dt.items.add(new File([bytes], name, {type}));
        }
        return dt; }""", payload)
    page.dispatch_event("#drop", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def paste_urls(page, urls: list[str], kind: str = "auto") -> None:
    page.fill("#urls", "\n".join(urls))
    page.check(f"input[name=kind][value={kind}]")
    page.click("#classify-urls")


def api_pdf(server, data: bytes) -> dict[str, Any]:
    """The same PDF through the API with the install token (what the grid must show)."""
    req = urllib.request.Request(server.url + "/v1/classify/pdf?name=report.pdf", data=data, method="POST",
                                 headers={"Content-Type": "application/pdf", "Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def download(page, button: str) -> str:
    with page.expect_download() as info:
        page.click(button)
    return Path(info.value.path()).read_text(encoding="utf-8")


# ---------------------------------------------------------------- the happy path


def test_page_shows_the_server_state(page, server, classifier, reports_dir):
    open_medlens(page, server)
    info = classifier.info
    assert page.text_content("#server-model") == info["backbone"]
    assert page.text_content("#server-threshold") == f"{info['threshold']:.3f}"
    assert page.text_content("#server-device") == info["device"]
    assert page.text_content("#server-version")
    assert "64 MB" in page.text_content("#limits")  # the server's max_pdf_bytes, read from /v1/health
    assert page.is_visible("text=Nothing classified yet")
    assert page.url == server.url + "/"  # the token left the address bar (and this history entry)
    assert server.token not in page.evaluate("location.href + document.documentElement.outerHTML")
    assert page.context.cookies(server.url) == []  # no cookie: nothing a browser sends to another port
    session = page.evaluate("sessionStorage.getItem('medlens-session')")
    assert session and session != server.token  # a per-process secret, not the token
    page.screenshot(path=str(reports_dir / "web-page-empty.png"), full_page=True)
    assert page.js_errors == []


def test_drop_pdf_paste_urls_filter_and_download(page, server, site, shared_data, reports_dir):
    open_medlens(page, server)
    pdf = (shared_data / "docs" / "report.pdf").read_bytes()
    expected = api_pdf(server, pdf)
    assert expected["images"] == 16

    drop_files(page, [("report.pdf", pdf, "application/pdf")])
    wait_idle(page, 16)
    got = cards(page)
    assert [c["source"] for c in got] == [r["source"] for r in expected["results"]]
    assert [c["category"] for c in got] == [r["label"] if r["status"] == "ok" else r["status"] for r in expected["results"]]
    first = expected["results"][0]
    assert f"page {first['page']}, image {first['index']}" in got[0]["text"]  # wording.placeParts, as in the popup
    assert all(c["thumb"].startswith("data:image/jpeg") and c["thumbLoaded"] for c in got)
    assert "report.pdf" in page.text_content("#grid")
    page.screenshot(path=str(reports_dir / "web-page-pdf.png"), full_page=True)

    xray = site.image(XRAY)
    article = site.data("docs/page-basic.html")
    paste_urls(page, [xray, article])
    wait_idle(page, 16 + 1 + 12)
    got = cards(page)
    by_source = {c["source"]: c for c in got}
    assert by_source[xray]["category"] == "medical" and "% medical" in by_source[xray]["text"]
    from_article = [c for c in got[17:]]
    assert len(from_article) == 12 and all(c["source"].startswith(site.base + "/data/images/") for c in from_article)
    assert {c["category"] for c in from_article} == {"medical", "non-medical"}
    assert remote_preview_loads(page, xray)
    assert all("on page-basic.html" in c["text"] for c in from_article)
    headings = page.eval_on_selector_all(".group-heading", "hs => hs.map(h => h.textContent)")
    assert headings == ["report.pdf: 4 pages, 16 images", "Pasted: 2 URLs"], headings
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the last remote previews load lazily
    page.wait_for_timeout(500)
    page.screenshot(path=str(reports_dir / "web-page-pdf-and-urls.png"), full_page=True)

    page.check("input[name=filter][value=medical]")
    shown = cards(page)
    medical_count = int(page.text_content("[data-count=medical]"))
    assert shown and len(shown) == medical_count and all(c["category"] == "medical" for c in shown)
    assert xray in {c["source"] for c in shown}
    page.screenshot(path=str(reports_dir / "web-page-medical-only.png"), full_page=True)

    rows = list(csv.DictReader(io.StringIO(download(page, "#download-csv"))))
    assert list(rows[0]) == CSV_COLUMNS
    assert [r["source"] for r in rows] == [c["source"] for c in shown]
    assert all(r["label"] == "medical" and r["status"] == "ok" and 0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    pdf_rows = [r for r in rows if r["source"].startswith("pdf:")]
    assert pdf_rows and all(r["input"] == "report.pdf" and r["page"] and r["index"] for r in pdf_rows)
    assert next(r for r in rows if r["source"] == xray)["modality"]

    page.check("input[name=filter][value=non-medical]")
    assert all(c["category"] == "non-medical" for c in cards(page))
    page.check("input[name=filter][value=all]")
    exported = json.loads(download(page, "#download-json"))
    assert len(exported["results"]) == 29 and exported["server"]["model"]["backbone"]
    assert all("thumbnail" not in r for r in exported["results"])
    assert page.js_errors == []


# ---------------------------------------------------------------- failures, each with a clear message


def test_each_failure_gets_a_clear_error(page, server, site, reports_dir):
    open_medlens(page, server)
    drop_files(page, [("notes.txt", b"not an image at all\n", "text/plain")])
    paste_urls(page, ["file:///etc/passwd", site.base + "/data/missing.png", "not a url"], kind="image")
    wait_idle(page)
    by_source = {c["source"]: c for c in cards(page)}
    assert by_source["upload:notes.txt"]["category"] == "error"
    assert "not_an_image" in by_source["upload:notes.txt"]["text"]
    assert "neither an image nor a PDF" in by_source["upload:notes.txt"]["text"]
    assert "scheme_not_allowed" in by_source["file:///etc/passwd"]["text"]
    assert "fetch_failed" in by_source[site.base + "/data/missing.png"]["text"]
    assert "invalid_url" in by_source["not a url"]["text"]
    page.check("input[name=filter][value=error]")
    assert len(cards(page)) == 4 and page.text_content("[data-count=error]") == "4"
    page.screenshot(path=str(reports_dir / "web-page-errors.png"), full_page=True)


def test_limits_come_from_the_server_and_a_busy_server_is_explained(page, strict_server, site, shared_data, reports_dir):
    open_medlens(page, strict_server)
    assert "195.3 KB" in page.text_content("#limits")  # max_pdf_bytes=200_000 as /v1/health reports it
    pdf = (shared_data / "docs" / "report.pdf").read_bytes()
    drop_files(page, [("report.pdf", pdf, "application/pdf")])
    wait_idle(page, 1)
    (refused,) = cards(page)
    assert "too_large" in refused["text"] and "195.3 KB" in refused["text"]
    assert not [r for r in strict_server.requests if r[1] == "/v1/classify/pdf"]  # refused before any upload

    # Four URLs with max_items=3: the page splits them into two requests the server accepts.
    urls = [site.image(XRAY), site.image(CHART), site.image(XRAY) + "?2", site.image(CHART) + "?2"]
    gated = strict_server.gated
    gated.gate.set()
    n = len(strict_server.requests)
    paste_urls(page, urls, kind="image")
    wait_idle(page, 5)
    assert [c["category"] for c in cards(page)[1:]] == ["medical", "non-medical", "medical", "non-medical"]
    posts = [status for _m, path, _o, status in strict_server.requests[n:] if path == "/v1/classify"]
    assert posts == [200, 200], posts

    # The model is stuck on someone else's request (images not in the result cache) and the
    # queue is full: the page says so, retries after Retry-After, then gives up clearly.
    gated.gate.clear()
    gated.entered.clear()
    busy = threading.Thread(target=lambda: _classify_with_token(strict_server, [site.image(CT), site.image(CUPS)]))
    busy.start()
    try:
        assert gated.entered.wait(30)
        _wait_queue_full(strict_server)
        n = len(strict_server.requests)
        paste_urls(page, [site.image(PHOTO)], kind="image")
        page.wait_for_selector("#status:has-text('busy')")
        page.screenshot(path=str(reports_dir / "web-page-busy-retrying.png"), full_page=True)
        wait_idle(page, 6)
        last = cards(page)[-1]
        assert "queue_full" in last["text"] and "The server is busy" in last["text"]
        page.screenshot(path=str(reports_dir / "web-page-busy.png"), full_page=True)
    finally:
        gated.gate.set()
        busy.join(60)
    statuses = [status for _m, path, _o, status in strict_server.requests[n:] if path == "/v1/classify"]
    assert statuses[:5] == [503] * 5, statuses  # one try and four retries, each after Retry-After


def _classify_with_token(server, urls: list[str]) -> None:
    req = urllib.request.Request(server.url + "/v1/classify", data=json.dumps({"urls": urls}).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()


def _wait_queue_full(server) -> None:
    req = urllib.request.Request(server.url + "/v1/health", headers={"Authorization": f"Bearer {server.token}"})
    for _ in range(300):
        with urllib.request.urlopen(req, timeout=10) as resp:
            if json.load(resp)["queue"]["depth"] >= 1:
                return
        threading.Event().wait(0.05)
    raise AssertionError("the queue never filled")


# ---------------------------------------------------------------- what other origins get


def test_plain_visit_and_wrong_token_show_how_to_open_the_page(page, server, reports_dir):
    n = len(server.requests)
    page.goto(server.url + "/")
    page.wait_for_selector("#server[data-state=session]")
    assert page.is_visible("#login") and not page.is_visible("#app")
    assert "medlens page" in page.text_content("#login")
    page.screenshot(path=str(reports_dir / "web-page-login.png"), full_page=True)
    page.goto(server.url + "/?token=" + "x" * 43)
    page.wait_for_selector("text=wrong or outdated token")
    assert page.url == server.url + "/" and not page.is_visible("#app")
    assert not [r for r in server.requests[n:] if r[1].startswith("/v1/classify")]


def test_session_expiry_reload_and_other_origins(page, server, site, reports_dir):
    open_medlens(page, server)
    page.reload()  # the session lives on in this tab: no token needed again
    page.wait_for_selector("#server[data-state=ok]")
    # The server "restarts": the page's session no longer matches; the page says to open it again.
    page.evaluate("sessionStorage.setItem('medlens-session', 'stale-' + 'x'.repeat(40))")
    page.reload()
    page.wait_for_selector("#server[data-state=session]")
    paste_urls(page, [site.image(XRAY)], kind="image")
    page.wait_for_selector(".message.error:has-text('medlens page')")
    wait_idle(page, 1)
    assert "unauthorized" in cards(page)[0]["text"]
    page.screenshot(path=str(reports_dir / "web-page-session-expired.png"), full_page=True)
    open_medlens(page, server)  # `medlens page` again
    paste_urls(page, [site.image(XRAY)], kind="image")
    wait_idle(page, 1)
    assert cards(page)[0]["category"] == "medical"

    # A page of another loopback origin, in the same browser that holds the page's session.
    other = page.context.new_page()
    other.goto(site.add_page("neighbour.html", "<!doctype html><title>neighbour</title><p>another local site</p>"))
    n = len(server.requests)
    body = json.dumps({"urls": [site.image(XRAY)]})
    answers = other.evaluate("""async ([base, body]) => {
        const tryFetch = async (path, init) => { try { const r = await fetch(base + path, init); return 'status ' + r.status + ' ' + (await r.text()).slice(0, 60); }
                                                 catch (e) { return String(e.name); } };
        return {
          simple: await tryFetch('/v1/classify', {method: 'POST', body, credentials: 'include', headers: {'Content-Type': 'text/plain'}}),
          json: await tryFetch('/v1/classify', {method: 'POST', body, credentials: 'include', headers: {'Content-Type': 'application/json'}}),
          page: await tryFetch('/', {credentials: 'include'}),
          healthNoCors: await tryFetch('/v1/health', {mode: 'no-cors', credentials: 'include'}),
        }; }""", [server.url, body])
    assert answers["simple"] == "TypeError" and answers["page"] == "TypeError", answers
    assert answers["healthNoCors"] == "TypeError", answers  # CORP same-origin: not even an opaque answer
    seen = [r for r in server.requests[n:] if r[1] == "/v1/classify"]
    assert seen and all(status in (403,) for *_x, status in seen), seen  # refused: forbidden_origin
    assert all(origin == site.base for _m, _p, origin, _s in seen)
    other.close()


def test_choose_image_files_in_dark_mode(browser, server, shared_data, reports_dir):
    """The file button (what a keyboard user reaches with Tab) uploads real images; the previews
    are the chosen files themselves. Dark colour scheme, to look at it too."""
    ctx = browser.new_context(color_scheme="dark", viewport={"width": 1100, "height": 900})
    try:
        page = ctx.new_page()
        open_medlens(page, server)
        files = [shared_data / "images" / XRAY, shared_data / "images" / CHART]
        page.set_input_files("#files", [str(f) for f in files])
        wait_idle(page, 2)
        got = cards(page)
        assert [c["source"] for c in got] == [f"upload:{f.name}" for f in files]
        assert [c["category"] for c in got] == ["medical", "non-medical"]
        assert all(c["thumb"].startswith("blob:") and c["thumbLoaded"] for c in got)
        assert page.eval_on_selector_all(".group-heading", "hs => hs.map(h => h.textContent)") == ["Uploaded: 2 images"]
        page.keyboard.press("Tab")  # the skip link, then the file input: reachable without a mouse
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "files"
        page.screenshot(path=str(reports_dir / "web-page-dark-upload.png"), full_page=True)
    finally:
        ctx.close()


def test_fetch_refused_and_server_gone_are_explained(page, classifier, site, tmp_path, reports_dir):
    """A server with its default address policy refuses loopback and private addresses by
    itself (nothing is fetched): the page says so in words, not just a code."""
    guarded = MedLensServer(classifier, tmp_path / "config")
    guarded.settings = guarded.settings.replace(allow_private=False)
    guarded.start()
    stopped = False
    try:
        open_medlens(page, guarded)
        n = len(site.log)
        paste_urls(page, [site.image(XRAY), "http://localhost:1/scan.png"])
        wait_idle(page, 2)
        got = cards(page)
        assert all(c["category"] == "error" and "address_not_allowed" in c["text"] for c in got), got
        assert all("does not fetch addresses on this computer or a private network" in c["text"] for c in got)
        assert len(site.log) == n  # refused before connecting: the site saw nothing
        page.screenshot(path=str(reports_dir / "web-page-fetch-refused.png"), full_page=True)

        guarded.stop()  # the server goes away under the open page
        stopped = True
        paste_urls(page, [site.image(XRAY)], kind="image")
        wait_idle(page, 3)
        assert "server_down" in cards(page)[-1]["text"] and "Is `medlens serve` still running?" in cards(page)[-1]["text"]
        page.wait_for_selector("#server[data-state=down]")
        assert not page.is_visible("#server-details")  # no stale model or queue shown for a gone server
        page.screenshot(path=str(reports_dir / "web-page-server-gone.png"), full_page=True)
    finally:
        if not stopped:
            guarded.stop()

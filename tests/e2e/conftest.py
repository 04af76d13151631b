"""Browser fixtures for the extension's end-to-end tests (see shared/docs/e2e-testing.md).

Real browser (Debian chromium via Playwright, firefox-esr via Selenium in test_firefox.py), the
unpacked extension (manifest.json + extension/ copied to a temp folder), the REAL MedLens server
started in-process on a free port with the shipped model, and a loopback site whose pages are
built from the real images in shared/data.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from e2e.site import Site
from fixtures.data import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
FIREFOX = "/usr/bin/firefox-esr"
REPORTS = REPO_ROOT / "reports" / "e2e"  # git-ignored: screenshots and lint output
DEFAULT_SETTINGS = {"threshold": None, "medicalMode": "badge", "offSites": [], "siteStrictness": {}, "autoScan": False,
                    "mark": "auto"}


def chromium_args(ext_dir: Path) -> list[str]:
    return [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
        f"--disable-extensions-except={ext_dir}", f"--load-extension={ext_dir}",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def reports_dir() -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    return REPORTS


@pytest.fixture(scope="session")
def ext_dir(tmp_path_factory) -> Path:
    """Only what ships: manifest.json + extension/ (not .venv, node_modules, server, tests)."""
    root = tmp_path_factory.mktemp("medlens-ext")
    shutil.copy2(REPO_ROOT / "manifest.json", root / "manifest.json")
    shutil.copytree(REPO_ROOT / "extension", root / "extension")
    return root


@pytest.fixture(scope="session")
def site(shared_data) -> Site:
    s = Site(shared_data).start()
    yield s
    s.stop()


# ---------------------------------------------------------------- the real MedLens server

class MedLensServer:
    """The real aiohttp app from medlens.serve.app with the shipped model, on its own loop/thread.

    `requests` records (method, path, Origin, status) of every request; `urls` every URL the
    extension asked /v1/classify for."""

    def __init__(self, classifier, config_dir: Path, **overrides) -> None:
        from medlens.settings import Settings

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        overrides = {"allow_private": True, **overrides}  # the test site is on loopback
        self.settings = Settings(port=self.port, token_required=True, config_dir=str(config_dir), **overrides)
        self.classifier = classifier
        self.requests: list[tuple[str, str, str | None, int]] = []
        self.urls: list[str] = []
        self.uploads = 0
        self.token = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="medlens-server", daemon=True)

    def _run(self) -> None:
        from aiohttp import web
        from medlens.serve.app import init_app

        asyncio.set_event_loop(self._loop)

        @web.middleware
        async def record(request, handler):
            if request.method == "POST" and request.path == "/v1/classify/image":
                self.uploads += 1
            status = 500
            try:
                resp = await handler(request)
                status = resp.status
                # the URLs asked for, from the answer (one result per URL, in order): reading the
                # request's body here would leave the route an empty stream
                if request.method == "POST" and request.path == "/v1/classify" and resp.status == 200:
                    self.urls.extend(r["source"] for r in json.loads(resp.body)["results"])
                return resp
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.requests.append((request.method, request.path, request.headers.get("Origin"), status))

        try:
            app = init_app(self.settings, classifier=self.classifier)
            app.middlewares.insert(0, record)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> "MedLensServer":
        try:  # the same helper the server and `medlens token` use; idempotent
            from medlens.serve.security import load_or_create_token

            load_or_create_token(self.settings.config_dir)
        except ImportError:
            pass
        self._thread.start()
        self._ready.wait(60)
        if self._error:
            raise self._error
        self.token = (Path(self.settings.config_dir) / "token").read_text().strip()
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@pytest.fixture(scope="session")
def classifier():
    """The shipped model, loaded once per session."""
    try:
        from medlens.model.classifier import Classifier
        from medlens.serve.app import init_app  # noqa: F401 - checked here so the failure says what is missing
    except ImportError as exc:
        pytest.fail(f"the MedLens server is not importable ({exc}); the extension e2e tests need the real server")
    from medlens.settings import Settings

    return Classifier.from_settings(Settings())


# Package scope: the server's warm PDF workers are children of this test process, and the PDF
# tests outside tests/e2e count those children, so the server must be gone when they run.
@pytest.fixture(scope="package")
def server(classifier, tmp_path_factory) -> MedLensServer:
    srv = MedLensServer(classifier, tmp_path_factory.mktemp("medlens-config")).start()
    yield srv
    srv.stop()


# ---------------------------------------------------------------- Chromium with the extension

# Package scope, not session: Playwright's sync API keeps an event loop running in the main
# thread while it is open, and the async tests outside tests/e2e need that thread's loop free.
@pytest.fixture(scope="package")
def pw():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def context(pw, ext_dir):
    profile = tempfile.mkdtemp(prefix="medlens-chromium-")
    ctx = pw.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=chromium_args(ext_dir),
        viewport={"width": 1100, "height": 900})
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="package")
def sw(context):
    """The extension's service worker (Playwright Worker)."""
    workers = [w for w in context.service_workers if w.url.startswith("chrome-extension://")]
    return workers[0] if workers else context.wait_for_event(
        "serviceworker", predicate=lambda w: w.url.startswith("chrome-extension://"), timeout=20_000)


@pytest.fixture(scope="package")
def ext_id(sw) -> str:
    return sw.url.split("/")[2]


@pytest.fixture
def paired(sw, server):
    """The extension paired with the real server, default preferences, fresh per test."""
    values = {"serverUrl": server.url, "token": server.token, **DEFAULT_SETTINGS}
    sw.evaluate("v => chrome.storage.local.set(v)", values)
    return server


def set_settings(sw, **values) -> None:
    sw.evaluate("v => chrome.storage.local.set(v)", values)


def tab_for(sw, url: str) -> dict:
    """The tabs.Tab of a page, as the action / menu listeners receive it (filtered by hand: see
    e2e-testing.md §8 about ports in match patterns)."""
    return sw.evaluate("async url => (await chrome.tabs.query({})).find(t => t.url === url)", url)


def open_page(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.wait_for_load_state("load")
    return page


def scan(sw, page) -> dict:
    """The toolbar trigger: exactly what the popup / action listener calls."""
    return sw.evaluate("async t => await scanTab(t)", tab_for(sw, page.url))


def badges(page) -> list[dict]:
    """Every medlens-badge host (top document and same-origin frames) with its attributes: the
    shadow roots are closed, so the page (and a test acting as the page) sees only these."""
    js = """() => [...document.querySelectorAll('medlens-badge')].map(b => ({
        label: b.getAttribute('data-medlens-label'), src: b.getAttribute('data-medlens-src'),
        probability: b.getAttribute('data-medlens-probability'), action: b.getAttribute('data-medlens-action'),
        text: b.getAttribute('data-medlens-text'), form: b.getAttribute('data-medlens-form'),
        corner: b.getAttribute('data-medlens-corner'), mode: b.shadowRoot ? 'open' : 'closed'}))"""
    out = page.evaluate(js)
    for frame in page.frames[1:]:
        out += frame.evaluate(js)
    return out


def in_extension_world(page, expression: str):
    """Evaluate `expression` in the extension's isolated world of the page's top frame (Chromium,
    over CDP): where the content script's MedLens namespace, and so the closed shadow roots
    (MedLens.badge.rootOf), are reachable. The page's own scripts cannot do this."""
    cdp = page.context.new_cdp_session(page)
    contexts: list[dict] = []
    cdp.on("Runtime.executionContextCreated", lambda e: contexts.append(e["context"]))
    try:
        cdp.send("Runtime.enable")
        top_id = cdp.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
        top = [c for c in contexts if c.get("auxData", {}).get("frameId") == top_id
               and c.get("auxData", {}).get("type") == "isolated" and c.get("origin", "").startswith("chrome-extension://")]
        assert top, f"no extension world in the top frame: {contexts}"
        got = cdp.send("Runtime.evaluate", {"expression": expression, "contextId": top[0]["id"], "returnByValue": True,
                                            "awaitPromise": True})
        assert "exceptionDetails" not in got, got["exceptionDetails"]
        return got["result"].get("value")
    finally:
        cdp.detach()


def wait_badges(page, n: int, timeout_s: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = badges(page)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        page.wait_for_timeout(100)


def dump(obj) -> str:
    def short(o):
        if isinstance(o, dict):
            return {k: short(v) for k, v in o.items()}
        if isinstance(o, list):
            return [short(v) for v in o]
        return o[:90] if isinstance(o, str) else o

    return json.dumps(short(obj), indent=1)[:6000]

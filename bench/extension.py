"""Extension benchmark: toolbar trigger -> last badge on a local page with 100 real images, next to
the server's own throughput on the same 100 images measured in the same run.

    .venv/bin/python bench/extension.py [--images 100] [--runs 2]

Headless Debian chromium with the unpacked extension, the real server (medlens.serve.app) with the
shipped model in-process, a loopback site serving shared/data. The server's result cache is off
(it keys on content as well as URL), so every run does the full fetch + decode + model work. Prints figures; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "server")]

from e2e.conftest import CHROMIUM, MedLensServer, chromium_args  # noqa: E402
from e2e.site import Site  # noqa: E402
from fixtures.data import SHARED_DATA, pick_real_images  # noqa: E402


def server_direct(server: MedLensServer, urls: list[str]) -> float:
    body = json.dumps({"urls": urls}).encode()
    req = urllib.request.Request(server.url + "/v1/classify", data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {server.token}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        results = json.loads(resp.read())["results"]
    dt = time.perf_counter() - t0
    ok = sum(r["status"] == "ok" for r in results)
    assert ok >= len(urls) * 0.9, f"only {ok}/{len(urls)} classified"
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright
    from medlens.model.classifier import Classifier
    from medlens.settings import Settings

    rels = pick_real_images(args.images)
    work = Path(tempfile.mkdtemp(prefix="medlens-bench-"))
    ext = work / "ext"
    ext.mkdir()
    shutil.copy2(REPO / "manifest.json", ext / "manifest.json")
    shutil.copytree(REPO / "extension", ext / "extension")
    site = Site(SHARED_DATA).start()
    t = time.perf_counter()
    # The result cache is off: it keys on content too, so a second look at the same bytes (under a
    # new query string) would be a cache hit and not a measurement.
    server = MedLensServer(Classifier.from_settings(Settings()), work / "config", cache_entries=0).start()
    print(f"model + server ready in {time.perf_counter() - t:.1f}s on {server.url}")
    ext_times, srv_times = [], []
    try:
        # warm-up: the model's first batches and the browser's first page are not what we measure
        server_direct(server, [site.image(r) + "?warm" for r in rels[:16]])
        state = urllib.request.Request(server.url + "/v1/health", headers={"Authorization": f"Bearer {server.token}"})
        with urllib.request.urlopen(state, timeout=10) as resp:  # without the token: only {status, api}
            health = json.loads(resp.read())
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(work / "profile"), executable_path=CHROMIUM, headless=True,
                                                       args=chromium_args(ext), viewport={"width": 1280, "height": 900})
            sw = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker")
            sw.evaluate("v => chrome.storage.local.set(v)", {"serverUrl": server.url, "token": server.token})
            for run in range(args.runs):
                if run % 2 == 0:  # alternate which side goes first
                    srv_times.append(server_direct(server, [site.image(r) + f"?srv={run}" for r in rels]))
                imgs = "\n".join(f'<img src="{site.image(r)}?ext={run}" width="160" height="160" loading="eager">' for r in rels)
                page = ctx.new_page()
                page.goto(site.add_page(f"bench{run}.html", f"<!doctype html><body><h1>Bench</h1>{imgs}</body>"))
                page.wait_for_load_state("load")
                tab = sw.evaluate("async url => (await chrome.tabs.query({})).find(t => t.url === url)", page.url)
                t0 = time.perf_counter()
                summary = sw.evaluate("async t => await scanTab(t)", tab)  # resolves after the last badge is drawn
                dt = time.perf_counter() - t0
                n = page.evaluate("document.querySelectorAll('medlens-badge').length")
                assert summary["status"] == "done" and n == len(rels), (summary, n)
                ext_times.append(dt)
                page.close()
                if run % 2 == 1:
                    srv_times.append(server_direct(server, [site.image(r) + f"?srv={run}" for r in rels]))
                print(f"run {run + 1}: server direct {srv_times[-1]:.2f}s, extension trigger->last badge {dt:.2f}s "
                      f"({summary['counts']})")
            ctx.close()
    finally:
        server.stop()
        site.stop()
        shutil.rmtree(work, ignore_errors=True)
    n = len(rels)
    e, s = statistics.median(ext_times), statistics.median(srv_times)
    print(f"\n{n} real images, median of {args.runs} run(s), server {health.get('version')} "
          f"model {health.get('model', {}).get('backbone')} on {health.get('device')}:")
    print(f"  server /v1/classify alone : {s:6.2f} s  ({n / s:6.1f} images/s)")
    print(f"  extension, toolbar->badge : {e:6.2f} s  ({n / e:6.1f} images/s)")
    print(f"  extension overhead ratio  : {e / s:6.2f} x the server's own time")


if __name__ == "__main__":
    main()

"""Native host benchmark: from a toolbar scan with no server running (and, the first time, no token)
to the first badge, through `medlens native-host` starting and pairing the server, against the same
scan with the server already running, measured in the same run.

    .venv/bin/python bench/native_start.py [--runs 3]

Headless Debian chromium with the unpacked extension, `medlens install` into a temporary HOME (the
profile is that HOME's default Chromium folder, where the host manifest is), a loopback site with
two real images per page. Three cases each run: cold (server killed, storage cleared: start + pair),
restart (server killed, token kept), warm (server running); and the host alone starting the server
(`connect` over pipes, no browser), which is most of the cold time. Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "server")]

from e2e.conftest import CHROMIUM, chromium_args, open_page, tab_for  # noqa: E402
from e2e.pages import CAT, XRAY  # noqa: E402
from e2e.site import Site  # noqa: E402
from fixtures.data import SHARED_DATA  # noqa: E402
from fixtures.native import NativeHome  # noqa: E402

LABELLED = "medlens-badge[data-medlens-label='medical'], medlens-badge[data-medlens-label='non-medical']"


def first_badge_s(ctx, sw, site: Site, name: str) -> float:
    url = site.add_page(f"{name}.html", "<!doctype html><body>" + "".join(
        f'<img src="{site.image(rel)}?{name}" width="200" height="160">' for rel in (XRAY, CAT)) + "</body>")
    page = open_page(ctx, url)
    tab = tab_for(sw, url)
    t0 = time.perf_counter()
    sw.evaluate("t => { globalThis.__benchScan = scanTab(t); return true; }", tab)  # the toolbar click
    page.wait_for_selector(LABELLED, timeout=180_000)
    elapsed = time.perf_counter() - t0
    page.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="medlens-bench-native-"))
    ext = work / "ext"
    ext.mkdir()
    shutil.copy2(REPO / "manifest.json", ext / "manifest.json")
    shutil.copytree(REPO / "extension", ext / "extension")
    home = NativeHome(work / "home")
    home.root.mkdir()
    home.env["MEDLENS_ALLOW_PRIVATE"] = "1"  # the site is on loopback
    subprocess.run([sys.executable, "-m", "medlens.cli", "install"], env=home.env, check=True, capture_output=True)
    site = Site(SHARED_DATA).start()
    times: dict[str, list[float]] = {"cold (start + pair)": [], "restart (start, token kept)": [], "warm (running)": [],
                                     "host alone: connect, server start": []}
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(str(home.root / ".config" / "chromium"), executable_path=CHROMIUM,
                                                        headless=True, args=chromium_args(ext), env=home.env)
            try:
                sw = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker")
                for run in range(args.runs):
                    home.kill_server()
                    sw.evaluate("chrome.storage.local.clear()")
                    times["cold (start + pair)"].append(first_badge_s(ctx, sw, site, f"cold{run}"))
                    home.kill_server()
                    times["restart (start, token kept)"].append(first_badge_s(ctx, sw, site, f"restart{run}"))
                    times["warm (running)"].append(first_badge_s(ctx, sw, site, f"warm{run}"))
                    home.kill_server()
                    t0 = time.perf_counter()
                    _, [reply] = home.host({"type": "connect"})  # what the browser's call costs, no browser
                    assert reply["ok"] and reply["started_now"], reply
                    times["host alone: connect, server start"].append(time.perf_counter() - t0)
                    print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
            finally:
                ctx.close()
    finally:
        home.kill_server()
        site.stop()
        shutil.rmtree(work, ignore_errors=True)
    warm = statistics.median(times["warm (running)"])
    print(f"\ntoolbar scan -> first badge (the host alone: -> its answer), median of {args.runs} (2 real images a page):")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:36s} {median:6.2f} s   ({median / warm:5.1f}x warm)")


if __name__ == "__main__":
    main()

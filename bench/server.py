"""Server benchmark: end-to-end throughput and latency of `medlens serve`, next to the model alone and
the original one-at-a-time design, all measured in the same run. Prints figures; never passes or
fails on time.

    .venv/bin/python bench/server.py [--images 200] [--device auto]

The server runs as a real `medlens serve` process (its own event loop, model thread and decode
threads), with the result cache off so every request does the full fetch + decode + model work.
A loopback site in this process serves shared/data. Figures:

- throughput: 200 distinct real image URLs in one /v1/classify request, images/s, next to the
  model alone (decoded images, batches of max_batch) in this process: the ratio is how much of the
  model's speed survives downloading, decoding and HTTP (target >= 0.7);
- baseline: the original project's way, one image at a time (sequential download, full decode,
  batch size 1), on the same URLs (target: the server >= 5x faster end to end);
- latency: one-image requests, warm and idle (p50, target <= 100 ms), then while page scans of
  page-basic.html run concurrently (p95);
- PDF: docs/many-images.pdf through /v1/classify/pdf, images/s, with extraction (child process)
  and model time measured separately.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "server")]

import aiohttp  # noqa: E402
from PIL import Image  # noqa: E402

from fixtures.data import SHARED_DATA, pick_real_images  # noqa: E402
from fixtures.site import TestSite  # noqa: E402
from medlens.ingest.decode import decode_image  # noqa: E402
from medlens.ingest.pdf import extract_pdf_images_limited  # noqa: E402
from medlens.model.classifier import Classifier  # noqa: E402
from medlens.settings import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------- the server process


class Server:
    def __init__(self, config_dir: Path, device: str, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "medlens.cli", "--config-dir", str(config_dir), "--device", device,
               "--set", "cache_entries=0", "serve", "--port", str(port), "--allow-private"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line:
                raise RuntimeError("medlens serve exited before it listened")
            if "Ctrl-C" in line:
                break
        self.token = (config_dir / "token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def classify(session: aiohttp.ClientSession, server: Server, urls: list[str]) -> list[dict[str, Any]]:
    async with session.post(server.url + "/v1/classify", json={"urls": urls}, headers=server.headers) as resp:
        body = await resp.json()
    assert resp.status == 200, body
    return body["results"]


async def page_scan(session: aiohttp.ClientSession, server: Server, url: str) -> int:
    async with session.post(server.url + "/v1/classify/page", json={"url": url}, headers=server.headers) as resp:
        body = await resp.json()
    assert resp.status == 200, body
    return len(body["results"])


async def delayed_site(delay_s: float) -> tuple[Any, str]:
    """shared/data/images on loopback, each answer after `delay_s`: a web host's latency, which the
    original design paid once per image and the server overlaps."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        path = (SHARED_DATA / "images" / request.match_info["rel"]).resolve()
        if SHARED_DATA.resolve() not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        await asyncio.sleep(delay_s)
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/images/{rel:.+}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


# ---------------------------------------------------------------- measurements


async def throughput(session: aiohttp.ClientSession, server: Server, urls: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    results = await classify(session, server, urls)
    dt = time.perf_counter() - t0
    ok = sum(r["status"] == "ok" for r in results)
    assert ok >= 0.95 * len(urls), f"only {ok}/{len(urls)} classified"
    return dt, ok


def model_only(classifier: Classifier, images: list[Image.Image], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        classifier.classify(images[i : i + batch])
    return time.perf_counter() - t0


def original_way(classifier: Classifier, urls: list[str]) -> float:
    """One at a time: download, full decode, batch of one (the design MedLens replaced)."""
    t0 = time.perf_counter()
    for url in urls:
        with urllib.request.urlopen(url, timeout=30) as resp:
            data = resp.read()
        img = Image.open(io.BytesIO(data)).convert("RGB")
        classifier.classify([img])
    return time.perf_counter() - t0


async def latency(session: aiohttp.ClientSession, server: Server, urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        t0 = time.perf_counter()
        (result,) = await classify(session, server, [url])
        times.append(time.perf_counter() - t0)
        assert result["status"] == "ok", result
    return times


async def latency_under_load(
    session: aiohttp.ClientSession, server: Server, urls: list[str], page_url: str, scanners: int
) -> tuple[list[float], int]:
    stop = asyncio.Event()
    scanned = 0

    async def scan_loop(k: int) -> None:
        nonlocal scanned
        i = 0
        while not stop.is_set():
            scanned += await page_scan(session, server, f"{page_url}?scan={k}-{i}")
            i += 1

    loops = [asyncio.ensure_future(scan_loop(k)) for k in range(scanners)]
    await asyncio.sleep(1.0)  # let the load build up
    try:
        times = await latency(session, server, urls)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return times, scanned


async def pdf_end_to_end(session: aiohttp.ClientSession, server: Server, data: bytes) -> tuple[float, int]:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="many-images.pdf", content_type="application/pdf")
    t0 = time.perf_counter()
    async with session.post(server.url + "/v1/classify/pdf", data=form, headers=server.headers) as resp:
        body = await resp.json()
    dt = time.perf_counter() - t0
    assert resp.status == 200, body
    return dt, body["images"]


# ---------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> None:
    import socket

    settings = Settings(device=args.device)
    rels = pick_real_images(args.images)
    site = TestSite()
    site.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="medlens-bench-"))
    t = time.perf_counter()
    server = Server(work / "config", args.device, port)
    print(f"medlens serve ready in {time.perf_counter() - t:.1f}s on {server.url}")
    classifier = Classifier.from_settings(settings)
    images = [decode_image((SHARED_DATA / "images" / r).read_bytes(), settings).image for r in rels]
    url = lambda rel, tag: site.url(f"/images/{rel}") + f"?{tag}"  # noqa: E731 - distinct URLs per run
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            async with session.get(server.url + "/v1/health", headers=server.headers) as resp:
                health = await resp.json()
            # warm-up: first batches, first connections, first decodes
            await classify(session, server, [url(r, "warm") for r in rels[:32]])
            model_only(classifier, images[:32], settings.max_batch)

            # Interleaved, so load from other processes on the machine hits all three alike.
            e2e, model, base = [], [], []
            base_n = min(len(rels), args.baseline_images)
            for run_no in range(args.runs):
                dt, ok = await throughput(session, server, [url(r, f"t{run_no}") for r in rels])
                e2e.append(dt)
                model.append(model_only(classifier, images, settings.max_batch))
                base.append(await asyncio.to_thread(original_way, classifier, [url(r, f"b{run_no}") for r in rels[:base_n]]))
                print(f"run {run_no + 1}: server {len(rels) / dt:6.1f} img/s ({ok} ok), "
                      f"model alone {len(rels) / model[-1]:6.1f} img/s, one at a time {base_n / base[-1]:6.1f} img/s")

            slow_runner, slow_base = await delayed_site(args.net_delay_ms / 1000)
            try:
                slow_urls = [f"{slow_base}/images/{r}?slow" for r in rels]
                slow_e2e, _ = await throughput(session, server, slow_urls)
                slow_n = min(len(rels), args.baseline_images // 2)
                slow_base_dt = await asyncio.to_thread(original_way, classifier, [u + "b" for u in slow_urls[:slow_n]])
            finally:
                await slow_runner.cleanup()

            idle = await latency(session, server, [url(r, f"lat{i}") for i, r in enumerate(rels[: args.latency_requests])])
            loaded, scanned = await latency_under_load(
                session, server, [url(r, f"load{i}") for i, r in enumerate(rels[: args.latency_requests])],
                site.url("/docs/page-basic.html"), args.scanners,
            )

            pdf = (SHARED_DATA / "docs" / "many-images.pdf").read_bytes()
            pdf_dt, pdf_images = await pdf_end_to_end(session, server, pdf)
            t0 = time.perf_counter()
            extraction = await extract_pdf_images_limited(pdf, settings)
            extract_dt = time.perf_counter() - t0
            pdf_imgs = [im.image for im in extraction.images]
            pdf_model_dt = model_only(classifier, pdf_imgs, settings.max_batch)
    finally:
        server.stop()
        site.stop()

    n = len(rels)
    e2e_rate = n / statistics.median(e2e)
    model_rate = n / statistics.median(model)
    base_rate = base_n / statistics.median(base)
    print(f"\nmedlens {health['version']}, {health['model']['backbone']} on {health['device']}, "
          f"max_batch {settings.max_batch}, {os.cpu_count()} CPUs, median of {args.runs} run(s)")
    print(f"throughput   server end to end : {e2e_rate:7.1f} images/s  ({n} URLs, one request)")
    print(f"             model alone       : {model_rate:7.1f} images/s  (decoded images, batches of {settings.max_batch})")
    print(f"             ratio             : {e2e_rate / model_rate:7.2f}   (target >= 0.7)")
    print(f"baseline     one at a time     : {base_rate:7.1f} images/s  ({base_n} URLs: sequential download, "
          f"full decode, batch 1)")
    print(f"             server speed-up   : {e2e_rate / base_rate:7.1f} x   (target >= 5)")
    slow_rate, slow_base_rate = n / slow_e2e, slow_n / slow_base_dt
    print(f"with {args.net_delay_ms:.0f} ms per image from the web host (simulated): server {slow_rate:.1f} images/s, "
          f"one at a time {slow_base_rate:.1f} images/s: {slow_rate / slow_base_rate:.1f} x")
    print(f"latency      idle, one image   : p50 {1000 * pct(idle, 50):6.1f} ms  p95 {1000 * pct(idle, 95):6.1f} ms"
          f"  ({len(idle)} requests; target p50 <= 100 ms)")
    print(f"             under page scans  : p50 {1000 * pct(loaded, 50):6.1f} ms  p95 {1000 * pct(loaded, 95):6.1f} ms"
          f"  ({args.scanners} concurrent scanners of a 12-image page, {scanned} page images meanwhile)")
    print(f"PDF          many-images.pdf   : {pdf_images / pdf_dt:7.1f} images/s end to end ({pdf_images} images in "
          f"{pdf_dt:.2f}s)")
    print(f"             extraction        : {extract_dt:7.2f} s  (child process, incl. ~1 s Python start-up)")
    print(f"             model             : {pdf_model_dt:7.2f} s  ({len(pdf_imgs) / pdf_model_dt:.1f} images/s, full-size images)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline-images", type=int, default=200)
    ap.add_argument("--latency-requests", type=int, default=40)
    ap.add_argument("--scanners", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--net-delay-ms", type=float, default=50.0, help="simulated web-host latency per image")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()

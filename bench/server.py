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
- fairness: one-image requests (a right-click) idle and while 4 clients scan pages of 100
  images each, on two servers started alike but for the model queue's order: first in, first
  out (the old design) and fair (round-robin across requests), measured in turns;
- PDF: docs/many-images.pdf through /v1/classify/pdf, images/s, with extraction (a warm worker
  process) and model time measured separately, and the answer time of broken PDFs with warm
  workers (pdf_workers=2) and with a fresh process per PDF (pdf_workers=0, the old design).

    .venv/bin/python bench/server.py --only fairness,pdf-errors   # just those sections
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
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
from serve_process import ServeProcess  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------- the server process


async def classify(session: aiohttp.ClientSession, server: ServeProcess, urls: list[str]) -> list[dict[str, Any]]:
    async with session.post(server.url + "/v1/classify", json={"urls": urls}, headers=server.headers) as resp:
        body = await resp.json()
    assert resp.status == 200, body
    return body["results"]


async def page_scan(session: aiohttp.ClientSession, server: ServeProcess, url: str) -> int:
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


async def scan_site(rels: list[str]) -> tuple[Any, str]:
    """shared/data/images on loopback, plus `/scan/<key>/<n>.html`: a page of n of them whose image
    URLs carry the key, so every scan fetches and classifies its own n images."""
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        key, n = request.match_info["key"], int(request.match_info["n"])
        imgs = "".join(f'<img src="/images/{rels[i % len(rels)]}?{key}-{i}" alt="">' for i in range(n))
        return web.Response(text=f"<!doctype html><html><body>{imgs}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/scan/{key}/{n}.html", page)
    app.router.add_static("/images/", SHARED_DATA / "images")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


# ---------------------------------------------------------------- measurements


async def throughput(session: aiohttp.ClientSession, server: ServeProcess, urls: list[str]) -> tuple[float, int]:
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


async def latency(session: aiohttp.ClientSession, server: ServeProcess, urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        t0 = time.perf_counter()
        (result,) = await classify(session, server, [url])
        times.append(time.perf_counter() - t0)
        assert result["status"] == "ok", result
    return times


async def latency_under_load(
    session: aiohttp.ClientSession, server: ServeProcess, urls: list[str], page_url: str, scanners: int
) -> tuple[list[float], int]:
    """One-image latencies while `scanners` clients scan pages back to back. `page_url` may hold
    `{key}`, filled per scan (distinct image URLs per scan); else a query string tells scans apart."""
    stop = asyncio.Event()
    scanned = 0

    async def scan_loop(k: int) -> None:
        nonlocal scanned
        i = 0
        while not stop.is_set():
            key = f"s{k}-{i}-{id(stop)}"
            url = page_url.format(key=key) if "{key}" in page_url else f"{page_url}?scan={key}"
            scanned += await page_scan(session, server, url)
            i += 1

    loops = [asyncio.ensure_future(scan_loop(k)) for k in range(scanners)]
    await asyncio.sleep(1.0)  # let the load build up
    try:
        times = await latency(session, server, urls)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return times, scanned


async def fairness(args: argparse.Namespace, rels: list[str], work: Path) -> None:
    """Right-click latency idle and under page scans, old FIFO queue vs fair queue, in turns."""
    runner, base = await scan_site(rels)
    servers = {}
    try:
        for order in ("fifo", "fair"):
            servers[order] = ServeProcess(work / f"config-{order}", free_port(), "cache_entries=0", f"queue_order={order}",
                                          flags=("--device", args.device))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            for server in servers.values():  # warm-up: first batches, connections, decodes
                await classify(session, server, [f"{base}/images/{r}?warm" for r in rels[:32]])
            idle: dict[str, list[float]] = {o: [] for o in servers}
            loaded: dict[str, list[float]] = {o: [] for o in servers}
            scanned: dict[str, int] = {o: 0 for o in servers}
            n = args.latency_requests
            for turn in range(args.fairness_turns):
                for order, server in servers.items():
                    urls = [f"{base}/images/{r}?{order}-{turn}-{i}" for i, r in enumerate(rels[:n])]
                    idle[order] += await latency(session, server, [u + "-idle" for u in urls])
                    times, count = await latency_under_load(
                        session, server, [u + "-load" for u in urls], f"{base}/scan/{{key}}/{args.scan_images}.html",
                        args.scanners,
                    )
                    loaded[order] += times
                    scanned[order] += count
    finally:
        for server in servers.values():
            server.stop()
        await runner.cleanup()
    print(f"\nfairness: one-image requests, idle and while {args.scanners} clients scan pages of "
          f"{args.scan_images} images back to back ({args.fairness_turns} turns of {n} requests per server)")
    for order, label in (("fifo", "first in, first out (old)"), ("fair", "fair, round-robin (new)")):
        print(f"  {label:26s} idle p50 {ms(idle[order], 50)} p95 {ms(idle[order], 95)}   under scans p50 "
              f"{ms(loaded[order], 50)} p95 {ms(loaded[order], 95)}  ({scanned[order]} page images meanwhile)")
    print(f"  under scans, fair / fifo : p50 {pct(loaded['fair'], 50) / pct(loaded['fifo'], 50):.2f}  "
          f"p95 {pct(loaded['fair'], 95) / pct(loaded['fifo'], 95):.2f}")


async def pdf_errors(args: argparse.Namespace, work: Path) -> None:
    """Answer time of PDFs that fail, warm workers vs a fresh process per PDF (the old design)."""
    broken = {
        "empty body": b"",
        "not a PDF": (SHARED_DATA / "docs" / "page-basic.html").read_bytes(),
        "garbage after %PDF-": b"%PDF-1.7\n" + bytes(range(256)) * 20,
        "encrypted": (SHARED_DATA / "docs" / "encrypted.pdf").read_bytes(),
        "report.pdf (16 images, ok)": (SHARED_DATA / "docs" / "report.pdf").read_bytes(),
    }
    servers = {
        "fresh process per PDF (old)": ServeProcess(work / "config-pdf0", free_port(), "cache_entries=0", "pdf_workers=0",
                                                     flags=("--device", args.device)),
        "warm workers (new)": ServeProcess(work / "config-pdf2", free_port(), "cache_entries=0", "pdf_workers=2",
                                            flags=("--device", args.device)),
    }
    times: dict[tuple[str, str], list[float]] = {}
    try:
        await asyncio.sleep(3)  # let the warm server's workers start, as they do after `medlens serve`
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            for _ in range(args.pdf_error_runs):
                for kind, data in broken.items():
                    for label, server in servers.items():
                        t0 = time.perf_counter()
                        async with session.post(server.url + "/v1/classify/pdf", data=data,
                                                headers={**server.headers, "Content-Type": "application/pdf"}) as resp:
                            await resp.read()
                        times.setdefault((kind, label), []).append(time.perf_counter() - t0)
    finally:
        for server in servers.values():
            server.stop()
    print(f"\nPDF answer time, median of {args.pdf_error_runs} (ms):")
    print(f"  {'':28s}" + "".join(f"{label:>30s}" for label in servers))
    for kind in broken:
        row = "".join(f"{1000 * statistics.median(times[(kind, label)]):30.1f}" for label in servers)
        print(f"  {kind:28s}{row}")


def ms(values: list[float], q: float) -> str:
    return f"{1000 * pct(values, q):6.1f} ms"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def pdf_end_to_end(session: aiohttp.ClientSession, server: ServeProcess, data: bytes) -> tuple[float, int]:
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
    sections = set(args.only.split(",")) if args.only else {"main", "fairness", "pdf-errors"}
    work = Path(tempfile.mkdtemp(prefix="medlens-bench-"))
    if "fairness" in sections:
        await fairness(args, rels, work)
    if "pdf-errors" in sections:
        await pdf_errors(args, work)
    if "main" not in sections:
        return
    site = TestSite()
    site.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    server = ServeProcess(work / "config", port, "cache_entries=0", flags=("--device", args.device))
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
    ap.add_argument("--scan-images", type=int, default=100, help="images per scanned page in the fairness section")
    ap.add_argument("--fairness-turns", type=int, default=2, help="turns of FIFO then fair measurements")
    ap.add_argument("--pdf-error-runs", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated sections: main, fairness, pdf-errors (default all)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--net-delay-ms", type=float, default=50.0, help="simulated web-host latency per image")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()

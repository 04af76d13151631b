"""Soak: a real `medlens serve` under a bounded mix of real traffic, with and without its cache.
Prints figures; never passes or fails on them.

    .venv/bin/python bench/soak.py [--requests 3000] [--clients 8] [--cache both|on|off]
                                   [--mix url=45,urls=15,upload=15,page=8,pdf=4,health=8,bad=5]

Everything stays on loopback: the server fetches from an image host in this process (shared/data
served by the tests' TestSite). Each client takes the next request number until `--requests` are
done; the route of each is drawn from the mix with a fixed seed, so two runs send the same
traffic. Routes:

- url: /v1/classify with one image URL (drawn from --images distinct URLs, so the cache can hit)
- urls: /v1/classify with 8 of them
- upload: /v1/classify/image, one multipart file
- page: /v1/classify/page on page-basic.html (12 images)
- pdf: /v1/classify/pdf with report.pdf (16 images)
- health: GET /v1/health
- bad: known-bad input (a corrupt image URL beside a good one, and a body that is not JSON): its
  expected codes are counted apart; anything else it gets is an error

Per run: requests/s, error counts by code (HTTP-level and per item, expected ones apart),
p50/p95/p99 latency per route, and the server's resident memory every 1,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "server")]

import aiohttp  # noqa: E402

from fixtures.data import SHARED_DATA, pick_real_images  # noqa: E402
from fixtures.site import TestSite  # noqa: E402
from serve_process import ServeProcess  # noqa: E402

DEFAULT_MIX = "url=45,urls=15,upload=15,page=8,pdf=4,health=8,bad=5"
EXPECTED_BAD = {"decode_failed", "invalid_json"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Traffic:
    """The requests of one run, drawn from the mix with a fixed seed."""

    def __init__(self, site: TestSite, images: int, mix: dict[str, int], seed: int) -> None:
        self.rels = pick_real_images(images)
        self.site = site
        self.mix = mix
        self.random = random.Random(seed)
        self.uploads = [(SHARED_DATA / "images" / r).read_bytes() for r in self.rels[:20]]
        self.pdf = (SHARED_DATA / "docs" / "report.pdf").read_bytes()

    def image_url(self) -> str:
        return self.site.url(f"/images/{self.random.choice(self.rels)}")

    def draw(self) -> tuple[str, Any]:
        route = self.random.choices(list(self.mix), weights=list(self.mix.values()))[0]
        if route == "url":
            return route, [self.image_url()]
        if route == "urls":
            return route, [self.image_url() for _ in range(8)]
        if route == "upload":
            return route, self.random.choice(self.uploads)
        if route == "bad":
            return route, self.random.random() < 0.5
        return route, None


async def send(session: aiohttp.ClientSession, server: ServeProcess, site: TestSite, route: str, arg: Any,
               pdf: bytes) -> tuple[int, dict[str, Any]]:
    """One request; (HTTP status, answer)."""
    h = server.headers
    if route in ("url", "urls"):
        resp = await session.post(server.url + "/v1/classify", json={"urls": arg}, headers=h)
    elif route == "upload":
        form = aiohttp.FormData()
        form.add_field("file", arg, filename="upload.jpg", content_type="application/octet-stream")
        resp = await session.post(server.url + "/v1/classify/image", data=form, headers=h)
    elif route == "page":
        resp = await session.post(server.url + "/v1/classify/page", json={"url": site.url("/docs/page-basic.html")}, headers=h)
    elif route == "pdf":
        resp = await session.post(server.url + "/v1/classify/pdf", data=pdf, headers={**h, "Content-Type": "application/pdf"})
    elif route == "health":
        resp = await session.get(server.url + "/v1/health", headers=h)
    elif arg:  # bad: a corrupt image beside a good one
        urls = [site.url("/special/corrupt.png"), site.url("/images/" + "medical/xray/pydicom-data_RG1_J2KI.jpg")]
        resp = await session.post(server.url + "/v1/classify", json={"urls": urls}, headers=h)
    else:  # bad: not JSON
        resp = await session.post(server.url + "/v1/classify", data=b"{not json",
                                  headers={**h, "Content-Type": "application/json"})
    async with resp:
        return resp.status, await resp.json()


def codes_of(status: int, answer: dict[str, Any]) -> list[str]:
    """Every error code in an answer: the request's, or each item's."""
    if status >= 400:
        return [str(answer.get("error", {}).get("code", f"http_{status}"))]
    return [r["error"]["code"] for r in answer.get("results", []) if r.get("status") == "error"]


async def soak(args: argparse.Namespace, site: TestSite, cache_entries: int, work: Path) -> None:
    mix = {k: int(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    traffic = Traffic(site, args.images, mix, args.seed)
    plan = [traffic.draw() for _ in range(args.requests)]
    server = ServeProcess(work / f"config-{cache_entries}", free_port(), f"cache_entries={cache_entries}")
    pid = server.proc.pid
    latencies: dict[str, list[float]] = collections.defaultdict(list)
    errors: collections.Counter[str] = collections.Counter()
    expected: collections.Counter[str] = collections.Counter()
    rss: list[tuple[int, float]] = [(0, rss_mb(pid))]
    done = 0
    next_index = 0
    try:
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:

            async def client() -> None:
                nonlocal done, next_index
                while next_index < len(plan):
                    route, arg = plan[next_index]
                    next_index += 1
                    t0 = time.perf_counter()
                    try:
                        status, answer = await send(session, server, site, route, arg, traffic.pdf)
                        codes = codes_of(status, answer)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        codes = [f"client:{type(exc).__name__}"]
                    latencies[route].append(time.perf_counter() - t0)
                    for code in codes:
                        (expected if route == "bad" and code in EXPECTED_BAD else errors)[code] += 1
                    done += 1
                    if done % 1000 == 0:
                        rss.append((done, rss_mb(pid)))

            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(args.clients)))
            elapsed = time.perf_counter() - t0
        if rss[-1][0] != done:
            rss.append((done, rss_mb(pid)))
    finally:
        log = server.stop()
    label = f"cache on ({cache_entries} entries)" if cache_entries else "cache off"
    print(f"\nsoak, {label}: {done} requests from {args.clients} clients in {elapsed:.1f} s: "
          f"{done / elapsed:.1f} requests/s")
    print("  server RSS      : " + ", ".join(f"{mb:.0f} MB at {n}" for n, mb in rss))
    print(f"  errors by code  : {dict(errors) if errors else 'none'}")
    print(f"  expected errors : {dict(expected) if expected else 'none'} (the 'bad' route)")
    if "Traceback" in log:
        print("  server log has a traceback:\n" + log[-2000:])
    print(f"  {'route':8s} {'n':>6s} {'p50 ms':>9s} {'p95 ms':>9s} {'p99 ms':>9s}")
    for route in mix:
        values = latencies.get(route)
        if values:
            print(f"  {route:8s} {len(values):6d} {1000 * pct(values, 50):9.1f} {1000 * pct(values, 95):9.1f} "
                  f"{1000 * pct(values, 99):9.1f}")


async def main_async(args: argparse.Namespace) -> None:
    site = TestSite()
    site.start()
    work = Path(tempfile.mkdtemp(prefix="medlens-soak-"))
    try:
        runs = {"both": [4096, 0], "on": [4096], "off": [0]}[args.cache]
        print(f"{args.requests} requests per run, {args.clients} clients, mix {args.mix}, "
              f"{args.images} distinct image URLs, {os.cpu_count()} CPUs")
        for cache_entries in runs:
            await soak(args, site, cache_entries, work)
    finally:
        site.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--images", type=int, default=200, help="distinct image URLs the url/urls routes draw from")
    ap.add_argument("--cache", choices=("both", "on", "off"), default="both")
    ap.add_argument("--mix", default=DEFAULT_MIX)
    ap.add_argument("--seed", type=int, default=11)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()

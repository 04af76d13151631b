"""Soak: a real `medlens serve` under a bounded mix of real traffic, with and without its cache.
Prints figures; never passes or fails on them.

    .venv/bin/python bench/soak.py [--requests 3000] [--clients 8] [--cache both|on|off|none]
                                   [--mix url=45,urls=15,upload=15,page=8,pdf=4,health=8,bad=5]
                                   [--hostile [--bombs N] [--page-kib 5000]]

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

`--hostile` adds the security audit's hostile-input families (issue 20; bytes from
tests/fixtures/bombs.py), on a fresh server: first `/v1/health` alone (the idle baseline), then
while a hostile page (`--page-kib` of `<a`) and two progressive-scan bombs are processed (the
p99 ratio to idle is the figure), then `--bombs N` rounds of every family at once (scan bombs, a scan-less
JPEG, a 7000^2 16-bit PNG, a PDF of ten 49-Mpx images, the hostile page, a `charset=idna` page,
a 30 MB flat JSON body, a multipart body padded past max_body_bytes, idle connections) with the
server's peak resident memory (its PDF workers included) and what each family got back. Point
PYTHONPATH at another checkout's `server/` to measure that code with the same traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
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

from fixtures.bombs import (  # noqa: E402
    hostile_page,
    jpeg_without_scan_data,
    pdf_of_large_images,
    progressive_scan_bomb,
    sixteen_bit_png,
)
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


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the server and its PDF workers)."""
    total = rss_mb(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += rss_mb(int(child))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


class Bombs:
    """The audit's families, built once (the PDF takes a few seconds)."""

    def __init__(self, site: TestSite, page_kib: int) -> None:
        self.scan = progressive_scan_bomb(6000)
        self.scan2 = progressive_scan_bomb(5999)  # other bytes: not answered from the first one's cache
        self.no_scan = jpeg_without_scan_data()
        self.png16 = [sixteen_bit_png(7000 - n) for n in range(4)]  # distinct bytes: four decodes, not one
        self.pdf = pdf_of_large_images(10, 7000)
        self.page = site.serve("hostile.html", hostile_page(page_kib), "text/html")
        self.idna = site.serve("idna.html", f'<img src="{site.url("/images/medical/xray/pydicom-data_RG1_J2KI.jpg")}">'.encode(),
                               "text/html; charset=idna")
        self.flat_json = b'{"urls": [' + b"1," * (15 * 1024 * 1024) + b"1]}"


async def _answer(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> str:
    """What one hostile request got: the HTTP status and the codes in it, or the client's error."""
    t0 = time.perf_counter()
    try:
        async with session.request(method, url, **kw) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = {}
            codes = codes_of(resp.status, body if isinstance(body, dict) else {})
            what = f"{resp.status} {','.join(sorted(set(codes))) or 'ok'}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        what = f"client:{type(exc).__name__}"
    return f"{what} in {time.perf_counter() - t0:.1f} s"


def _upload(data: bytes, name: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return form


async def _probe_health(session: aiohttp.ClientSession, server: ServeProcess, stop: asyncio.Event,
                        every_s: float = 0.05) -> list[float]:
    """One /v1/health every `every_s` on a fixed schedule, each timed on its own: a server that
    freezes for 10 s shows as 200 slow answers, not one."""

    async def one() -> float:
        t0 = time.perf_counter()
        try:
            async with session.get(server.url + "/v1/health", headers=server.headers) as resp:
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return float("inf")  # refused or dropped (a frozen server's backlog overflows): a failed probe
        return time.perf_counter() - t0

    probes = []
    while not stop.is_set():
        probes.append(asyncio.ensure_future(one()))
        await asyncio.sleep(every_s)
    return list(await asyncio.gather(*probes))


async def _while_probing(session: aiohttp.ClientSession, server: ServeProcess, work: Any,
                         seconds: float | None = None) -> tuple[Any, list[float], float]:
    """Run `work` (or just wait `seconds`) while probing health and sampling RSS; (result, latencies, peak MB)."""
    stop = asyncio.Event()
    peak = 0.0
    probe_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=session.timeout)

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_mb(server.proc.pid))
            await asyncio.sleep(0.1)

    probe = asyncio.ensure_future(_probe_health(probe_session, server, stop))
    sampler = asyncio.ensure_future(sample())
    try:
        result = await work if work is not None else await asyncio.sleep(seconds or 0)
    finally:
        stop.set()
        latencies = await probe
        await sampler
        await probe_session.close()
    return result, latencies, peak


def _latency_line(name: str, values: list[float], idle_p99: float | None = None) -> str:
    failed = sum(v == float("inf") for v in values)
    p50, p99 = 1000 * pct(values, 50), 1000 * pct(values, 99)
    answered = [v for v in values if v != float("inf")] or [float("nan")]
    ratio = f", p99 {p99 / (1000 * idle_p99):.2f}x idle" if idle_p99 else ""
    return (f"  {name:34s} n={len(values):4d}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max answered "
            f"{1000 * max(answered):7.1f} ms  failed {failed}{ratio}")


async def bomb_soak(args: argparse.Namespace, site: TestSite, work: Path) -> None:
    bombs = Bombs(site, args.page_kib)
    server = ServeProcess(work / "config-bombs", free_port(), "decode_workers=2")
    url, h = server.url, server.headers
    json_h = {**h, "Content-Type": "application/json"}
    try:
        timeout = aiohttp.ClientTimeout(total=args.bomb_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            print(f"\nbombs: server RSS at start {tree_rss_mb(server.proc.pid):.0f} MB "
                  f"(hostile page {args.page_kib} KiB, per-request client timeout {args.bomb_timeout_s:g} s)")
            _, idle, _ = await _while_probing(session, server, None, seconds=10)
            print(_latency_line("/v1/health, idle", idle))

            async def page_and_scans() -> list[str]:
                answers: list[str] = []
                for _ in range(args.trio_repeats):  # one after another, so the probe sees the whole time
                    answers = list(await asyncio.gather(
                        _answer(session, "POST", url + "/v1/classify/page", json={"url": bombs.page}, headers=h),
                        _answer(session, "POST", url + "/v1/classify/image", data=_upload(bombs.scan, "scan1.jpg"), headers=h),
                        _answer(session, "POST", url + "/v1/classify/image", data=_upload(bombs.scan2, "scan2.jpg"), headers=h),
                    ))
                return answers

            answers, busy, peak = await _while_probing(session, server, page_and_scans())
            print(_latency_line("/v1/health, page + 2 scan bombs", busy, pct(idle, 99)))
            print(f"  {'':34s} p50 {pct(busy, 50) / pct(idle, 50):.2f}x idle; last of {args.trio_repeats}: hostile page "
                  f"{answers[0]}; scan bombs {answers[1]}; {answers[2]}")
            for round_no in range(1, args.bombs + 1):
                idle_conns = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(200)]
                families = {
                    "scan bomb": _answer(session, "POST", url + "/v1/classify/image?name=s.jpg", data=bombs.scan,
                                         headers={**h, "Content-Type": "image/jpeg"}),
                    "JPEG without scan data": _answer(session, "POST", url + "/v1/classify/image",
                                                      data=_upload(bombs.no_scan, "empty.jpg"), headers=h),
                    "16-bit 7000^2 PNG x4": _answer(session, "POST", url + "/v1/classify/image",
                                                    data=_multi(bombs.png16), headers=h),
                    "PDF, ten 49-Mpx images": _answer(session, "POST", url + "/v1/classify/pdf", data=bombs.pdf,
                                                      headers={**h, "Content-Type": "application/pdf"}),
                    "hostile page": _answer(session, "POST", url + "/v1/classify/page", json={"url": bombs.page}, headers=h),
                    "charset=idna page": _answer(session, "POST", url + "/v1/classify/page", json={"url": bombs.idna}, headers=h),
                    "30 MB flat JSON": _answer(session, "POST", url + "/v1/classify", data=bombs.flat_json, headers=json_h),
                    "multipart padded to 100 MB": _answer(session, "POST", url + "/v1/classify/image",
                                                          data=_padded(bombs.no_scan, 100 * 1024 * 1024), headers=h),
                }
                answers, during, peak = await _while_probing(session, server, asyncio.gather(*families.values()))
                await asyncio.sleep(args.idle_wait_s)
                still_open = sum(not reader.at_eof() for reader, _w in idle_conns)
                for _reader, writer in idle_conns:
                    writer.close()
                print(f"round {round_no}: peak RSS {peak:.0f} MB (server + PDF workers), "
                      f"RSS after {tree_rss_mb(server.proc.pid):.0f} MB; idle connections still open after "
                      f"{args.idle_wait_s:g} s more: {still_open} of 200")
                print(_latency_line("/v1/health, every family at once", during, pct(idle, 99)))
                for name, answer in zip(families, answers):
                    print(f"  {name:34s} {answer}")
    finally:
        log = server.stop()
    tracebacks = log.count("Traceback")
    print(f"  server log: {tracebacks} tracebacks, {log.count('WARNING')} WARNING lines, {log.count('ERROR')} ERROR lines")


def _multi(files: list[bytes]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for n, data in enumerate(files):
        form.add_field("file", data, filename=f"{n}.png", content_type="application/octet-stream")
    return form


def _padded(data: bytes, padding: int) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    writer.append(io.BytesIO(b"x" * padding)).set_content_disposition("form-data", name="padding")
    writer.append(io.BytesIO(data)).set_content_disposition("form-data", name="file", filename="f.jpg")
    return writer


async def main_async(args: argparse.Namespace) -> None:
    site = TestSite()
    site.start()
    work = Path(tempfile.mkdtemp(prefix="medlens-soak-"))
    try:
        runs = {"both": [4096, 0], "on": [4096], "off": [0], "none": []}[args.cache]
        print(f"{args.requests} requests per run, {args.clients} clients, mix {args.mix}, "
              f"{args.images} distinct image URLs, {os.cpu_count()} CPUs")
        for cache_entries in runs:
            await soak(args, site, cache_entries, work)
        if args.hostile:
            await bomb_soak(args, site, work)
    finally:
        site.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--images", type=int, default=200, help="distinct image URLs the url/urls routes draw from")
    ap.add_argument("--cache", choices=("both", "on", "off", "none"), default="both",
                    help="none: no ordinary traffic (with --bombs, the bomb phase only)")
    ap.add_argument("--hostile", action="store_true", help="add the audit's hostile families (on a server of their own)")
    ap.add_argument("--bombs", type=int, default=1, metavar="N", help="with --hostile: rounds of every family at once "
                    "(0 = only the hostile page and two scan bombs)")
    ap.add_argument("--page-kib", type=int, default=5000, help="size of the hostile page of `<a` (under max_html_bytes)")
    ap.add_argument("--bomb-timeout-s", type=float, default=180.0, help="client timeout for one hostile request")
    ap.add_argument("--trio-repeats", type=int, default=8, help="times the hostile page and two scan bombs are sent")
    ap.add_argument("--idle-wait-s", type=float, default=20.0, help="how long idle connections are watched after a round")
    ap.add_argument("--mix", default=DEFAULT_MIX)
    ap.add_argument("--seed", type=int, default=11)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()

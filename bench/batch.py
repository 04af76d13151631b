"""`medlens batch` benchmark: images/s of the local engine and of Ray Data on the same images in one
run, Ray given as a ratio to the local engine measured beside it; a load worker's memory; and, with
--urls, a URL corpus served by a loopback host with a delay per request, projected to 100 M URLs.
Prints figures; never passes or fails on time.

    .venv/bin/python bench/batch.py                                  # files: local, Ray 1 node (load in
                                                                     # actors / in tasks), Ray 2 simulated nodes
    .venv/bin/python bench/batch.py --urls 600 --delay-ms 50         # URL corpus from 127.0.0.x
    .venv/bin/python bench/batch.py --images 4000 --gpus-per-worker 0.5 --engines local,ray   # on a GPU node

The images are shared/data's, linked (files) or served (URLs) under distinct names until there
are enough, so every engine reads, decodes and classifies each one. Two figures per engine:
end to end (start-up and model loading included, as a user sees it) and marginal (the extra
images over the extra time against a short run of the first --startup-images, start-up left
out, as a long job runs). Simulated nodes share this machine's cores: two of
them measure Ray's overhead across nodes, not more hardware. The URL host listens on several
loopback addresses (--hosts) so the per-host cap acts as it does in a crawl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "server")]

from fixtures.batch import CorpusHost  # noqa: E402
from fixtures.data import manifest_items  # noqa: E402
from medlens.batch.job import BatchOptions, run_batch  # noqa: E402
from medlens.settings import Settings  # noqa: E402

OBJECT_STORE = 300 * 1024 * 1024
ENGINES = ("local", "ray", "ray-tasks", "ray-2nodes")
PROJECTED_URLS = 100_000_000
PROJECTED_CORES = 16
PROJECTED_NODES = 10


def file_corpus(folder: Path, count: int) -> list[str]:
    items = [item.path for item in manifest_items()]
    sources = []
    for i in range(count):
        original = items[i % len(items)]
        link = folder / f"{i:06d}{original.suffix.lower()}"
        link.symlink_to(original)
        sources.append(str(link))
    return sources


def url_corpus(host: CorpusHost, count: int) -> list[str]:
    """`count` distinct URLs of real images, spread over the host's addresses (a query makes each distinct)."""
    items = [item.path for item in manifest_items()]
    return [f"{host.image_url(items[i % len(items)], host=i)}?n={i}" for i in range(count)]


def timed_run(sources: list[str], settings: Settings, opts: BatchOptions, **kw: Any) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="medlens-bench-out-") as out:
        start = time.perf_counter()
        summary = run_batch([], out, settings, opts, sources=sources, **kw)
        return time.perf_counter() - start, summary


def engine(name: str, sources: list[str], small: int, settings: Settings, opts: BatchOptions, **kw: Any) -> dict[str, Any]:
    """End-to-end images/s over all sources, and the marginal rate: the extra images over the extra
    time against a run of the first `small` sources, which leaves out start-up (Ray, actors,
    model loading) the way a long job does."""
    small_wall, _ = timed_run(sources[:small], settings, opts, **kw)
    wall, summary = timed_run(sources, settings, opts, **kw)
    run = summary["run"]
    marginal = (len(sources) - small) / (wall - small_wall) if wall > small_wall else None
    figure = {"engine": name, "rows": summary["rows"], "status": summary["status"], "wall_s": round(wall, 2),
              "images_per_s": round(summary["rows"] / wall, 2), "startup_run_s": round(small_wall, 2),
              "marginal_images_per_s": round(marginal, 2) if marginal else None,
              "workers": run["workers"], "nodes": len(run["nodes"]) or 1, "load_in": run.get("load_in")}
    print(json.dumps(figure), flush=True)
    return figure


def load_worker_memory() -> dict[str, float]:
    """RSS (MiB) of a fresh process holding a started Loader: the load side now, and with what each
    load task imported before this version (the classifier and torch, through serve.pipeline)."""
    probe = (
        "import sys; sys.path.insert(0, {server!r})\n"
        "from medlens.batch.loading import Loader\nfrom medlens.settings import Settings\n"
        "loader = Loader(Settings())\n{extra}\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
    )
    figures = {}
    with_model = "import medlens.model.classifier\ntry:\n    import torch\nexcept ImportError:\n    pass"
    for name, extra in (("now", ""), ("before (+ classifier, torch)", with_model)):
        code = probe.format(server=str(REPO / "server"), extra=extra)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
        figures[name] = round(int(out.stdout.split()[-1]) / 1024, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images for the file corpus")
    parser.add_argument("--urls", type=int, default=0, help="benchmark a URL corpus of this many URLs instead of files")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="URL host: delay before each answer")
    parser.add_argument("--hosts", type=int, default=4, help="URL host: loopback addresses it listens on")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, from {', '.join(ENGINES)}")
    parser.add_argument("--startup-images", type=int, default=200, help="the short run the marginal rate subtracts")
    parser.add_argument("--local-threads", default="0,1", help="model threads of the local engine's runs (0 = the "
                        "runtime's default); the faster run is the baseline")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sources-per-task", type=int, default=32)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPU per Ray actor (fractions share one)")
    parser.add_argument("--device", default="auto", help="model device for the local engine: auto, cpu or cuda")
    args = parser.parse_args()
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(wanted) - set(ENGINES)
    if unknown or "local" not in wanted:  # the local engine is the baseline every ratio needs
        parser.error(f"--engines needs 'local' (the baseline) and only {', '.join(ENGINES)}; got {args.engines}")

    import ray
    from ray.cluster_utils import Cluster

    cores = os.cpu_count() or 1
    settings = Settings(device="cpu" if args.device == "auto" and not args.gpus_per_worker else args.device,
                        max_batch=args.batch_size, allow_private=bool(args.urls))
    print(f"machine: {cores} CPU cores, load average {os.getloadavg()[0]:.1f} at start; "
          f"{args.urls or args.images} {'URLs' if args.urls else 'images'}, batch {args.batch_size}, "
          f"{args.gpus_per_worker:g} GPU per Ray actor", flush=True)
    memory = load_worker_memory()
    print(json.dumps({"load_worker_rss_mib": memory}), flush=True)

    host = CorpusHost(delay_s=args.delay_ms / 1000, hosts=args.hosts).start() if args.urls else None
    ray_opts = dict(engine="ray", progress=False, batch_size=args.batch_size, sources_per_task=args.sources_per_task,
                    cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker)
    figures: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="medlens-bench-") as tmp:
            sources = url_corpus(host, args.urls) if host else file_corpus(Path(tmp), args.images)
            small = min(args.startup_images, len(sources) // 2)
            for threads in sorted({int(t) for t in args.local_threads.split(",")}):
                figures[f"local-{threads}"] = engine(
                    f"local, model threads {threads or 'default'}", sources, small, settings.replace(model_threads=threads),
                    BatchOptions(progress=False, batch_size=args.batch_size, sources_per_task=args.sources_per_task))
            if {"ray", "ray-tasks"} & set(wanted):
                ray.init(address="local", num_cpus=cores, object_store_memory=OBJECT_STORE, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
                if "ray" in wanted:
                    figures["ray"] = engine("ray 1 node, load in actors", sources, small, settings, BatchOptions(**ray_opts))
                if "ray-tasks" in wanted:
                    # A quarter of each actor's CPU goes to the load tasks, so both stages fit on the cores.
                    tasks_opts = {**ray_opts, "cpus_per_worker": 0.75 * args.cpus_per_worker}
                    figures["ray-tasks"] = engine("ray 1 node, load in tasks", sources, small, settings, BatchOptions(
                        **tasks_opts, load_in="tasks", load_cpus=0.25 * args.cpus_per_worker))
                ray.shutdown()
            if "ray-2nodes" in wanted:
                half = max(1, cores // 2)
                gpus = {"num_gpus": int(ray_gpus())} if args.gpus_per_worker else {}
                cluster = Cluster(initialize_head=True, head_node_args={
                    "num_cpus": half, "object_store_memory": OBJECT_STORE, "include_dashboard": False, **gpus})
                cluster.add_node(num_cpus=max(1, cores - half), object_store_memory=OBJECT_STORE)
                cluster.wait_for_nodes()
                ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
                figures["ray-2nodes"] = engine("ray 2 simulated nodes, load in actors", sources, small, settings,
                                               BatchOptions(**ray_opts))
                ray.shutdown()
                cluster.shutdown()
    finally:
        if host is not None:
            host.stop()
    report(figures, memory, args, cores)


def ray_gpus() -> float:
    try:
        import torch

        return float(torch.cuda.device_count())
    except ImportError:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        return float(len(out.stdout.splitlines())) if out.returncode == 0 else 0.0


def report(figures: dict[str, dict[str, Any]], memory: dict[str, float], args: Any, cores: int) -> None:
    def rate(fig: dict[str, Any]) -> float:
        return fig["marginal_images_per_s"] or fig["images_per_s"]

    local = max((f for k, f in figures.items() if k.startswith("local")), key=rate)

    print(f"\nsummary (same machine, same {'URLs' if args.urls else 'images'}, one run; marginal rate, start-up left "
          f"out; end to end in brackets; baseline: {local['engine']}):")
    for key, fig in figures.items():
        line = f"  {fig['engine']:<40} {rate(fig):8.2f} images/s  ({fig['images_per_s']:.2f})  {fig['workers']} worker(s)"
        if not key.startswith("local"):
            line += f"   ray/local = {rate(fig) / rate(local):.2f}x  (end to end {fig['images_per_s'] / local['images_per_s']:.2f}x)"
        print(line)
    if "ray" in figures and "ray-2nodes" in figures:
        print(f"  two simulated nodes / one node = {rate(figures['ray-2nodes']) / rate(figures['ray']):.2f}x")
    if "ray" in figures and "ray-tasks" in figures:
        print(f"  load in actors / load in tasks = {rate(figures['ray']) / rate(figures['ray-tasks']):.2f}x")
    print(f"  load worker memory: {memory['now']:.0f} MiB now, {memory['before (+ classifier, torch)']:.0f} MiB with the "
          "classifier and torch it used to import")
    best = max((rate(f) for k, f in figures.items() if k.startswith("ray")), default=rate(local))
    per_core = best / cores
    what = "URLs" if args.urls else "images"
    print(f"\nprojection for {PROJECTED_URLS:,} {what} from the best Ray marginal rate here ({per_core:.2f} {what}/s per "
          f"core on {cores} shared cores; assumes linear scaling per core, enough distinct hosts for the per-host cap "
          f"and bandwidth that keeps up{'' if args.urls else '; fetching adds no CPU'}):")
    for label, total_cores in ((f"one {PROJECTED_CORES}-core machine", PROJECTED_CORES),
                               (f"{PROJECTED_NODES} such nodes", PROJECTED_CORES * PROJECTED_NODES)):
        hours = PROJECTED_URLS / (per_core * total_cores) / 3600
        print(f"  {label:<24} {hours:8.1f} h  ({per_core * total_cores:.0f} {what}/s)")
    if args.urls:
        per_worker_cap = Settings().batch_fetch_concurrency / (args.delay_ms / 1000) if args.delay_ms else float("inf")
        print(f"  (latency bound per worker at {args.delay_ms:g} ms: {per_worker_cap:.0f} URLs/s with "
              f"batch_fetch_concurrency={Settings().batch_fetch_concurrency}; above the CPU rate, so the CPU decides)")


if __name__ == "__main__":
    main()

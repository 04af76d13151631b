"""`medlens batch` benchmark: images/s of the local engine and of Ray Data (one node, and two nodes
simulated on this machine with ray.cluster_utils.Cluster) on the same images, next to the model
alone, all in one run; then a projection of the wall time for 1M images. Prints figures; never
passes or fails on time.

    .venv/bin/python bench/batch.py [--images 1000] [--batch-size 16]

The images are shared/data's, linked under distinct names in a temporary folder until there are
--images of them (the data set has fewer), so every engine reads, decodes and classifies each
one. Simulated nodes share this machine's cores: two of them measure Ray's overhead across
nodes, not more hardware. No GPU is used (none is available to this benchmark); the projection
is for CPU workers like the ones measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "server")]

from fixtures.data import manifest_items  # noqa: E402
from medlens.batch.job import BatchOptions, run_batch  # noqa: E402
from medlens.ingest.decode import decode_image  # noqa: E402
from medlens.model.classifier import Classifier  # noqa: E402
from medlens.pipeline.pipeline import MODEL_SIDE  # noqa: E402
from medlens.settings import Settings  # noqa: E402

OBJECT_STORE = 300 * 1024 * 1024


def corpus(folder: Path, count: int) -> list[str]:
    items = [item.path for item in manifest_items()]
    sources = []
    for i in range(count):
        original = items[i % len(items)]
        link = folder / f"{i:06d}{original.suffix.lower()}"
        link.symlink_to(original)
        sources.append(str(link))
    return sources


def model_only(classifier: Classifier, images: list[Any], batch: int, threads: int) -> float:
    """Decoded images through the Classifier alone, with `threads` torch threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        classifier.classify(images[:batch])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            classifier.classify(images[i:i + batch])
        return len(images) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def engine(name: str, sources: list[str], settings: Settings, opts: BatchOptions, **kw: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="medlens-bench-out-") as out:
        start = time.perf_counter()
        summary = run_batch([], out, settings, opts, sources=sources, **kw)
        wall = time.perf_counter() - start
    run = summary["run"]
    ok = summary["status"].get("ok", 0)
    figure = {"engine": name, "rows": summary["rows"], "ok": ok, "wall_s": round(wall, 2),
              "images_per_s": round(summary["rows"] / wall, 2), "pipeline_s": run["wall_s"],
              "workers": run["workers"], "nodes": len(run["nodes"]) or 1}
    print(json.dumps(figure), flush=True)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model-images", type=int, default=320, help="images for the model-alone figures")
    args = parser.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    settings = Settings(device="cpu", max_batch=args.batch_size)
    cores = os.cpu_count() or 1
    print(f"machine: {cores} CPU cores, no GPU used; {args.images} images, batch {args.batch_size}", flush=True)
    with tempfile.TemporaryDirectory(prefix="medlens-bench-") as tmp:
        sources = corpus(Path(tmp), args.images)
        classifier = Classifier.from_settings(settings)
        threads = __import__("torch").get_num_threads()
        images = [decode_image(Path(s).read_bytes(), settings, target_side=MODEL_SIDE).image
                  for s in sources[: args.model_images]]
        model_rate = model_only(classifier, images, args.batch_size, threads)
        # What one CPU worker (a Ray actor runs torch with one thread per reserved CPU) can do.
        model_1t = model_only(classifier, images, args.batch_size, 1)
        del images
        print(json.dumps({"model_only_images_per_s": round(model_rate, 2), "torch_threads": threads,
                          "model_only_1_thread_images_per_s": round(model_1t, 2)}), flush=True)

        local = engine("local", sources, settings, BatchOptions(progress=False, workers=2), classifier=classifier)
        del classifier

        ray_opts = dict(engine="ray", progress=False, cpus_per_worker=0.75, load_cpus=0.25)
        ray.init(address="local", num_cpus=cores, object_store_memory=OBJECT_STORE, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        one = engine("ray 1 node", sources, settings, BatchOptions(**ray_opts, workers=cores))
        ray.shutdown()

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": max(1, cores // 2),
                          "object_store_memory": OBJECT_STORE, "include_dashboard": False})
        cluster.add_node(num_cpus=max(1, cores // 2), object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        two = engine("ray 2 simulated nodes", sources, settings, BatchOptions(**ray_opts, workers=2 * max(1, cores // 2)))
        ray.shutdown()
        cluster.shutdown()

    print("\nsummary (same machine, same images, one run):")
    print(f"  model alone, {threads} torch threads  {model_rate:8.2f} images/s")
    print(f"  model alone, 1 torch thread   {model_1t:8.2f} images/s")
    print(f"  local engine ({threads} threads)    {local['images_per_s']:8.2f} images/s   "
          f"({local['images_per_s'] / model_rate:.2f} of the model alone at {threads} threads)")
    for fig in (one, two):
        ideal = fig["workers"] * model_1t
        print(f"  {fig['engine']:<22}        {fig['images_per_s']:8.2f} images/s   ({fig['workers']} actors x 1 thread; "
              f"{fig['workers']} x model alone at 1 thread (no reading/decoding) / ray = {ideal / fig['images_per_s']:.2f}x; "
              f"Ray's overhead over the local engine: local/ray = {local['images_per_s'] / fig['images_per_s']:.2f}x)")
    per_worker = max(one["images_per_s"] / one["workers"], two["images_per_s"] / two["workers"])
    print(f"\nprojection for 1,000,000 images from the measured Ray per-worker throughput ({per_worker:.2f} images/s "
          "per CPU worker of one thread; assumes linear scaling, loading keeping up and storage/network not "
          "limiting; no GPU was available to this benchmark, so these are CPU workers):")
    for workers in (8, 64):
        hours = 1_000_000 / (per_worker * workers) / 3600
        print(f"  {workers:3d} workers: {hours:6.2f} h")


if __name__ == "__main__":
    main()

"""Model speed: images/s of the model's graph alone (network and image statistics in one ONNX
graph) and of the whole model path (decode, one resize, graph, heads), each end-to-end figure as
a ratio to the graph alone at the same batch, measured in the same run. Figures, not pass/fail.

    .venv/bin/python bench/model.py [--quick] [--images N] [--against MODEL_DIR]
    .venv/bin/python bench/model.py --device cuda --workers 16 --images 4096   # GPU machine

`--against` times another model folder's whole path in the same rounds (e.g. the last release's,
from `git show`), as a ratio: this model against that one, on the same images.

On the CPU everything runs in this process with ONNX Runtime, as `medlens serve` does. With
`--device cuda`, decoding and resizing run in `--workers` processes (as a GPU host must, or the
GPU starves), and the report adds the host's decode-and-resize limit: the most the GPU could be
fed. The graph runs in ONNX Runtime's CUDA provider when installed, else in torch on the GPU
(needs medlens[train] and the weights).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from medlens.model.classifier import Classifier
from medlens.model.preprocess import model_batch, model_input, log_aspect, open_for_model

DATA = Path(os.environ.get("MEDLENS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
BATCHES = (1, 8, 32)


def images_per_second(fn: Callable[[], object], n_images: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def real_blobs(n: int) -> list[bytes]:
    """Real encoded images from shared/data, JPEG and PNG, medical and not, cycled up to n."""
    paths = sorted((DATA / "images").rglob("*.jpg"))[::3] + sorted((DATA / "images").rglob("*.png"))[::6]
    blobs = [p.read_bytes() for p in paths]
    return [blobs[i % len(blobs)] for i in range(n)]


def prepare(data: bytes) -> tuple[np.ndarray, float]:
    """What a decode worker hands the GPU process: the model's pixels and the log aspect ratio."""
    img = open_for_model(data)
    return model_input(img), log_aspect(img.width, img.height)


def cpu_report(classifier: Classifier, blobs: Sequence[bytes], repeats: int, against: Classifier | None = None) -> None:
    ex = classifier.extractor
    pixels, aspects = model_batch([open_for_model(b) for b in blobs[:32]])
    print("the model's graph alone (shipped ONNX: network + image statistics, uint8 in) and the whole path, images/s;")
    print("rounds alternate between the two, so a busy machine slows both alike (ratio: median of the rounds')")
    print(f"{'':<34}" + "".join(f"{'batch ' + str(b):>18}" for b in BATCHES))
    alone_row, e2e_row = f"{'graph alone (baseline)':<34}", f"{'decode+resize+graph+heads':<34}"
    other_row, versus_row = f"{'--against: the whole path':<34}", f"{'this model / --against':<34}"
    for b in BATCHES:
        x = np.ascontiguousarray(np.resize(pixels, (b, *pixels.shape[1:])))
        a = np.resize(aspects, b).astype(np.float32)
        reps = max(1, len(blobs) // b)

        def graph() -> None:
            for _ in range(reps):
                ex.features(x, a)

        def run(model: Classifier = classifier) -> None:
            for i in range(0, len(blobs), b):
                model.classify([open_for_model(d) for d in blobs[i : i + b]])

        graph(), run()  # warm-up
        if against is not None:
            run(against)
        alone, whole, other = [], [], []
        for _ in range(repeats):
            alone.append(reps * b / _seconds(graph))
            whole.append(len(blobs) / _seconds(run))
            if against is not None:
                other.append(len(blobs) / _seconds(lambda: run(against)))
        ratio = statistics.median(w / g for w, g in zip(whole, alone))
        alone_row += f"{statistics.median(alone):>10.1f} (1.00x)"
        e2e_row += f"{statistics.median(whole):>10.1f} ({ratio:.2f}x)"
        if against is not None:
            other_row += f"{statistics.median(other):>10.1f}{'':>8}"
            versus_row += f"{statistics.median(w / o for w, o in zip(whole, other)):>17.2f}x"
    print(alone_row)
    print(e2e_row, flush=True)
    if against is not None:
        print(other_row)
        print(versus_row, flush=True)

    # where one image's time goes, at batch 8
    n = len(blobs)
    t0 = time.perf_counter()
    imgs = [open_for_model(d) for d in blobs]
    t_decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    arrays = [model_input(i) for i in imgs]
    t_resize = time.perf_counter() - t0
    px = np.stack(arrays)
    asp = np.array([log_aspect(i.width, i.height) for i in imgs], dtype=np.float32)
    t0 = time.perf_counter()
    full = [ex.features(px[i : i + 8], asp[i : i + 8]) for i in range(0, n, 8)]
    t_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in full:
        classifier.head.predict(f)
    t_heads = time.perf_counter() - t0
    total = t_decode + t_resize + t_graph + t_heads
    print(f"\nper image at batch 8 ({n} real images): " + ", ".join(
        f"{name} {t / n * 1e3:.2f} ms ({t / total:.0%})"
        for name, t in (("decode", t_decode), ("resize", t_resize), ("graph", t_graph), ("heads", t_heads))
    ))
    t0 = time.perf_counter()
    for d in blobs:
        Image.open(io.BytesIO(d)).convert("RGB")
    t_full = time.perf_counter() - t0
    print(f"decode: full size {n / t_full:.0f} img/s, reduced (draft) {n / t_decode:.0f} img/s ({t_full / t_decode:.2f}x)")


def gpu_report(classifier: Classifier | None, blobs: Sequence[bytes], workers: int, batch: int, torch_net: object | None) -> None:
    """Decode-and-resize limit of the host, the graph alone on the GPU, and the whole path with decode workers."""
    chunk = max(1, len(blobs) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(prepare, blobs[: workers * 2], chunksize=1))  # start the workers
        t0 = time.perf_counter()
        prepared = list(pool.map(prepare, blobs, chunksize=chunk))
        decode_rate = len(blobs) / (time.perf_counter() - t0)
    print(f"host decode + resize limit: {decode_rate:,.0f} img/s on {workers} processes")
    px = np.stack([p for p, _ in prepared])
    asp = np.array([a for _, a in prepared], dtype=np.float32)

    if torch_net is not None:
        import torch

        net, dev = torch_net

        def features(x: np.ndarray, a: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                return net(torch.from_numpy(x).to(dev, non_blocking=True), torch.from_numpy(a).to(dev)).float().cpu().numpy()
    else:
        features = classifier.extractor.features
    x, a = np.ascontiguousarray(px[:batch]), asp[:batch]
    alone = images_per_second(lambda: features(x, a), len(x), 5)
    print(f"graph alone on the GPU, batch {batch}: {alone:,.0f} img/s")

    def end_to_end() -> float:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(prepare, blobs[:workers], chunksize=1))
            t0 = time.perf_counter()
            pending: list[tuple[np.ndarray, float]] = []
            for item in pool.map(prepare, blobs, chunksize=chunk):
                pending.append(item)
                if len(pending) == batch:
                    _classify(pending)
                    pending = []
            if pending:
                _classify(pending)
            return time.perf_counter() - t0

    def _classify(items: list[tuple[np.ndarray, float]]) -> None:
        feats = features(np.stack([p for p, _ in items]), np.array([a for _, a in items], dtype=np.float32))
        if classifier is not None:
            classifier.head.predict(feats)

    seconds = end_to_end()
    rate = len(blobs) / seconds
    print(f"end to end (decode workers -> batch {batch} -> GPU -> heads): {rate:,.0f} img/s "
          f"= {rate / decode_rate:.2f}x the decode limit, {rate / alone:.2f}x the graph alone")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--images", type=int, default=64, help="real images used for the end-to-end rows")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode processes with --device cuda")
    parser.add_argument("--batch", type=int, default=256, help="GPU batch with --device cuda")
    parser.add_argument("--torch", action="store_true", help="with --device cuda: run the network in torch")
    parser.add_argument("--against", type=Path, help="another model folder, timed end to end in the same rounds (CPU)")
    args = parser.parse_args()
    blobs = real_blobs(args.images)
    if args.device == "cpu":
        classifier = Classifier.load(device="cpu")
        against = Classifier.load(args.against, device="cpu") if args.against else None
        print(f"{os.cpu_count()} cores; model {classifier.info['backbone']} + heads, ONNX Runtime on the CPU"
              + (f"; against {args.against}" if against else "") + "\n")
        cpu_report(classifier, blobs, 2 if args.quick else 4, against)
        return 0
    torch_net = None
    classifier = None
    if args.torch:
        import torch

        from medlens.errors import ModelError
        from medlens.model.preprocess import INPUT_SIDE
        from medlens.training.backbones import FeatureNet, get_spec, load_feature_net
        from medlens.training.graph import ModelGraph

        try:
            net, _, _ = load_feature_net("mobilenet_v2")
        except ModelError as exc:  # speed does not depend on the weights' values
            print(f"weights not installed ({exc.code}): timing the same network with random weights")
            spec = get_spec("mobilenet_v2")
            net = FeatureNet(spec, spec.build()).eval()
        dev = torch.device("cuda")
        torch_net = (ModelGraph(net, INPUT_SIDE).eval().to(dev), dev)
        try:
            classifier = Classifier.load(device="cpu")
        except Exception as exc:  # the heads still run on the CPU; report if they cannot load
            print(f"heads not loaded ({exc}); timing the network and statistics only")
    else:
        classifier = Classifier.load(device="cuda")
    print(f"{os.cpu_count()} cores; {args.images} real images; network on the GPU via {'torch' if args.torch else 'ONNX Runtime CUDA'}")
    gpu_report(classifier, blobs, args.workers, args.batch, torch_net)
    return 0


if __name__ == "__main__":
    sys.exit(main())

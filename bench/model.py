"""Model speed on this machine: images/s for the backbone alone and for decode + features + head.

Prints a table per lever (threads, memory format, TorchScript, torch.compile, ONNX Runtime,
reduced-size JPEG decode), each as a ratio to the plain baseline measured in the same run
(torch eager, NCHW, default threads), next to the arithmetic limit: FLOPs per image against
the cores' peak. Figures, not pass/fail.

    .venv/bin/python bench/model.py [--quick] [--images N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from medlens.model.backbones import load_backbone
from medlens.model.classifier import Classifier

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


def peak_gflops() -> tuple[float, str]:
    """Measured sgemm rate on all threads: the practical ceiling for dense FP32 maths here."""
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(5):
        torch.mm(a, b)
    dt = (time.perf_counter() - t0) / 5
    return 2 * 2048**3 / dt / 1e9, f"sgemm 2048^2 on {torch.get_num_threads()} threads"


def backbone_flops(module: torch.nn.Module) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(torch.randn(1, 3, 224, 224))
    return float(counter.get_total_flops())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip torch.compile")
    parser.add_argument("--images", type=int, default=64, help="real JPEGs used for the end-to-end rows")
    args = parser.parse_args()
    repeats = 2 if args.quick else 4
    warnings.filterwarnings("ignore")

    print(f"torch {torch.__version__}, {os.cpu_count()} cores, default threads {torch.get_num_threads()}")
    extractor = load_backbone("mobilenet_v2", device="cpu")
    module = extractor._module
    flops = backbone_flops(module)
    peak, how = peak_gflops()
    print(f"mobilenet_v2 features: {flops / 1e9:.3f} GFLOP/image; measured peak {peak:.0f} GFLOP/s ({how})")
    print(f"arithmetic limit: {peak * 1e9 / flops:.0f} images/s\n")

    variants: dict[str, Callable[[torch.Tensor], object]] = {}
    nchw = module.to(memory_format=torch.contiguous_format)

    def eager_nchw(x: torch.Tensor) -> object:
        with torch.inference_mode():
            return nchw(x)

    variants["eager NCHW (baseline)"] = eager_nchw
    cl = load_backbone("mobilenet_v2", device="cpu")._module  # channels_last on CPU by construction

    def eager_cl(x: torch.Tensor) -> object:
        with torch.inference_mode():
            return cl(x.contiguous(memory_format=torch.channels_last))

    variants["eager channels_last (runtime=torch)"] = eager_cl
    with torch.inference_mode():
        traced = torch.jit.freeze(torch.jit.trace(cl, torch.randn(8, 3, 224, 224).contiguous(memory_format=torch.channels_last)))

    def jit_cl(x: torch.Tensor) -> object:
        with torch.inference_mode():
            return traced(x.contiguous(memory_format=torch.channels_last))

    variants["torch.jit trace+freeze"] = jit_cl
    if not args.quick:
        try:
            compiled = torch.compile(cl)
            with torch.inference_mode():
                compiled(torch.randn(8, 3, 224, 224).contiguous(memory_format=torch.channels_last))

            def comp(x: torch.Tensor) -> object:
                with torch.inference_mode():
                    return compiled(x.contiguous(memory_format=torch.channels_last))

            variants["torch.compile"] = comp
        except Exception as exc:  # compile needs a working toolchain; report instead of failing
            print(f"torch.compile unavailable: {exc.__class__.__name__}: {str(exc)[:100]}")
    try:
        import onnxruntime as ort

        onnx_path = Path(tempfile.mkdtemp()) / "mobilenet_v2.onnx"
        torch.onnx.export(nchw, torch.randn(1, 3, 224, 224), str(onnx_path), input_names=["x"], output_names=["f"],
                          dynamic_axes={"x": {0: "n"}}, opset_version=17, dynamo=False)
        sessions: dict[int, object] = {}

        def ort_session() -> object:
            threads = torch.get_num_threads()  # one session per thread count, so the [1t] row is one thread
            if threads not in sessions:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads
                sessions[threads] = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            return sessions[threads]

        variants["onnxruntime (shipped on CPU)"] = lambda x: ort_session().run(None, {"x": x.numpy()})
        session = ort_session()
        x = torch.randn(4, 3, 224, 224)
        diff = float(np.abs(session.run(None, {"x": x.numpy()})[0] - eager_nchw(x).numpy()).max())
        print(f"onnxruntime vs torch: max |feature difference| {diff:.2e}")
    except ImportError:
        print("onnxruntime not installed: skipped")

    print(f"\nbackbone alone, images/s (ratio to baseline at the same batch)")
    print(f"{'variant':<32}" + "".join(f"{'batch ' + str(b):>18}" for b in BATCHES))
    base: dict[int, float] = {}
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}, reverse=True):
        torch.set_num_threads(threads)
        for name, fn in variants.items():
            row = f"{name + f' [{threads}t]':<32}"
            for b in BATCHES:
                x = torch.randn(b, 3, 224, 224)
                ips = images_per_second(lambda: fn(x), b, repeats if b < 32 else max(2, repeats // 2))
                if name.startswith("eager NCHW") and threads == default_threads:
                    base[b] = ips
                row += f"{ips:>10.1f} ({ips / base[b]:.2f}x)"
            print(row, flush=True)
    torch.set_num_threads(default_threads)

    jpegs = sorted((DATA / "images" / "medical" / "fundus").glob("*.jpg"))[: args.images // 2]
    jpegs += sorted((DATA / "images" / "non-medical" / "photo").glob("*.jpg"))[: args.images - len(jpegs)]
    blobs = [p.read_bytes() for p in jpegs]
    classifier = Classifier.load(device="cpu")

    def decode(data: bytes, draft: bool) -> Image.Image:
        img = Image.open(io.BytesIO(data))
        if draft:
            img.draft("RGB", (256, 256))
        return img.convert("RGB")

    print(f"\ndecode + features + head (shipped Classifier), {len(blobs)} real JPEGs, images/s")
    print(f"{'decode':<32}" + "".join(f"{'batch ' + str(b):>18}" for b in BATCHES))
    base_e2e: dict[int, float] = {}
    for label, draft in (("full-size decode (baseline)", False), ("Image.draft reduced decode", True)):
        row = f"{label:<32}"
        for b in BATCHES:
            def run() -> None:
                for i in range(0, len(blobs), b):
                    classifier.classify([decode(d, draft) for d in blobs[i : i + b]])

            ips = images_per_second(run, len(blobs), max(1, repeats // 2))
            base_e2e.setdefault(b, ips)
            row += f"{ips:>10.1f} ({ips / base_e2e[b]:.2f}x)"
        print(row, flush=True)
    t0 = time.perf_counter()
    for d in blobs:
        decode(d, True)
    t_dec = (time.perf_counter() - t0) / len(blobs)
    t0 = time.perf_counter()
    for d in blobs:
        decode(d, False)
    t_full = (time.perf_counter() - t0) / len(blobs)
    print(f"\ndecode alone: full {1 / t_full:.0f} img/s, draft {1 / t_dec:.0f} img/s ({t_full / t_dec:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

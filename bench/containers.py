"""Images per second through `medlens classify` for each container kind, against the same images
as plain files in the same run (the ratio is the figure; absolute rates depend on the machine).

Each kind is built from the same N images of ../shared/data (fixtures/containers.py, the
builders the tests use); the baseline is those N images as plain JPEG files in a folder. Both go
through `classify_inputs` (what `medlens classify` runs) with one loaded model, cache off, each
timed `--repeats` times in alternation (best kept). Like a `medlens classify` run, each call
starts its own extraction processes, so PDF-engine kinds (EPUB, CBZ) and video pay a process
start (about a second, more on a loaded machine) inside their figure. Videos and animations are measured in the
frames they are sampled to, DICOM as N variants of pydicom's CT_small.dcm against the same
slices as N PNGs.

    .venv/bin/python bench/containers.py [--images 24] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image  # noqa: E402

from fixtures import containers as build  # noqa: E402
from fixtures.data import manifest_items  # noqa: E402
from medlens.commands.classify import classify_inputs  # noqa: E402
from medlens.ingest.sources import expand_inputs  # noqa: E402
from medlens.model.classifier import Classifier  # noqa: E402
from medlens.settings import Settings  # noqa: E402


def pick_images(count: int) -> list[str]:
    items = manifest_items()
    step = max(1, len(items) // count)
    rels = [str(item.path.relative_to(item.path.parents[2])) for item in items[::step][:count]]
    return [rel.split("images/", 1)[-1] for rel in rels]


def distinct_dicoms(count: int) -> list[bytes]:
    """`count` copies of pydicom's CT_small.dcm, each with one pixel changed (so no two share a
    content hash: the pipeline would classify identical plain copies once)."""
    import numpy as np
    import pydicom

    out = []
    for n in range(count):
        ds = pydicom.dcmread(build.pydicom_file("CT_small.dcm"))
        pixels = ds.pixel_array.copy()
        pixels.flat[n] = np.int16(pixels.flat[n] + 200)
        ds.PixelData = pixels.tobytes()
        buf = io.BytesIO()
        ds.save_as(buf)
        out.append(buf.getvalue())
    return out


def dicom_png(data: bytes) -> bytes:
    from medlens.ingest.dicom import extract_dicom

    return _png(extract_dicom(data, Settings()).items[0].image)


def plain_folder(folder: Path, images: list[bytes], suffix: str) -> Path:
    folder.mkdir(parents=True)
    for n, data in enumerate(images):
        (folder / f"{n:03d}{suffix}").write_bytes(data)
    return folder


def cases(work: Path, rels: list[str]) -> dict[str, tuple[Path, Path, int]]:
    """kind -> (container file, plain folder of the same images, images classified)."""
    jpegs = [build.jpeg(rel) for rel in rels]
    plain = plain_folder(work / "plain", jpegs, ".jpg")
    out: dict[str, tuple[Path, Path, int]] = {}

    def add(kind: str, name: str, data: bytes, baseline: Path = plain, count: int = len(rels)) -> None:
        path = work / name
        path.write_bytes(data)
        out[kind] = (path, baseline, count)

    add("docx", "c.docx", build.docx(rels))
    add("pptx", "c.pptx", build.pptx(rels))
    add("odp", "c.odp", build.odp(rels))
    add("epub", "c.epub", build.epub(rels))
    add("cbz", "c.cbz", build.zip_of({f"{n:03d}.jpg": d for n, d in enumerate(jpegs)}))
    add("zip", "c.zip", build.zip_of({f"{n:03d}.jpg": d for n, d in enumerate(jpegs)}))
    add("tar.gz", "c.tgz", build.tar_of({f"{n:03d}.jpg": d for n, d in enumerate(jpegs)}))
    add("tiff pages", "c.tif", build.multipage_tiff(rels))
    frames = Settings().frames_per_image
    small = [Image.open(io.BytesIO(d)).convert("RGB").resize((160, 160)) for d in jpegs[:frames]]
    gif_plain = plain_folder(work / "plain-gif", [_png(img) for img in small], ".png")
    add("gif frames", "c.gif", build.animation(rels[:frames], "GIF"), gif_plain, frames)
    count = Settings().video_frames
    video_plain = plain_folder(work / "plain-video", [_png(Image.open(io.BytesIO(d)).convert("RGB").resize((320, 240)))
                                                      for d in jpegs[:count]], ".png")
    add("mp4 frames", "c.mp4", build.video(rels[:count]), video_plain, count)
    slices = distinct_dicoms(len(rels))
    dicoms = plain_folder(work / "dicom", slices, ".dcm")
    out["dicom"] = (dicoms, plain_folder(work / "plain-dicom", [dicom_png(d) for d in slices], ".png"), len(rels))
    return out


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def timed(path: Path, settings: Settings, classifier: Classifier) -> tuple[float, int]:
    started = time.perf_counter()
    rows = await classify_inputs(expand_inputs([str(path)]), settings, classifier=classifier)
    return time.perf_counter() - started, sum(1 for r in rows if r["status"] == "ok" and r.get("role") != "summary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    settings = Settings(cache_entries=0)
    classifier = Classifier.from_settings(settings)
    with tempfile.TemporaryDirectory() as tmp:
        built = cases(Path(tmp), pick_images(args.images))
        print(f"{'kind':<12} {'images':>6} {'container img/s':>16} {'plain img/s':>12} {'ratio':>6}")
        for kind, (container, plain, count) in built.items():
            best_c = best_p = float("inf")
            ok_c = ok_p = 0
            for _ in range(args.repeats):
                seconds, ok_c = asyncio.run(timed(container, settings, classifier))
                best_c = min(best_c, seconds)
                seconds, ok_p = asyncio.run(timed(plain, settings, classifier))
                best_p = min(best_p, seconds)
            rate_c, rate_p = count / best_c, count / best_p
            print(f"{kind:<12} {count:>6} {rate_c:>16.1f} {rate_p:>12.1f} {rate_c / rate_p:>6.2f}"
                  + ("" if ok_c >= (1 if kind.endswith("frames") and kind.startswith("gif") else count) else
                     f"  (only {ok_c} classified)"))


if __name__ == "__main__":
    main()

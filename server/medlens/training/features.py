"""Feature tables for training: every sample's plain, augmented and framed views rendered and run
through the model's ONNX graph, cached on disk by content.

Training extracts features through the same ONNX file and the same preprocessing as serving, so
the heads learn exactly the numbers they will be shown.
"""

from __future__ import annotations

import hashlib
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from medlens.training.augment import augment, augment_key, view_rng
from medlens.training.composite import FRAME_KINDS, LAYOUTS, compose, composite_key
from medlens.training.dataset import Frame, Sample
from medlens.model.card import file_sha256
from medlens.training.image_stats import STATS_VERSION
from medlens.model.onnx_features import OnnxFeatures
from medlens.model.preprocess import model_batch, open_for_model

log = logging.getLogger(__name__)

TRAINING_SIDE = 512  # training images are decoded at up to this side so augmented crops keep detail


@dataclass
class FeatureTable:
    """Features of every readable sample: `features[i, v]` is view v of sample i."""

    samples: list[Sample]
    features: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def y(self) -> np.ndarray:
        return np.array([s.y for s in self.samples], dtype=int)

    @property
    def views(self) -> int:
        return int(self.features.shape[1])

    def subset(self, idx: Sequence[int]) -> "FeatureTable":
        idx = np.asarray(idx, dtype=int)
        return FeatureTable([self.samples[i] for i in idx], self.features[idx], [])

    def without_sources(self, sources: set[str] | frozenset[str]) -> "FeatureTable":
        return self.subset([i for i, s in enumerate(self.samples) if not (s.sources & sources)])


_file_sha256 = lru_cache(maxsize=4096)(file_sha256)


def sample_key(sample: Sample) -> str:
    """Content address of a sample: its image's sha256, plus the frame's parts for a composite."""
    if sample.frame is None:
        return _file_sha256(sample.path)
    f = sample.frame
    parts = [_file_sha256(sample.path), f.layout, _file_sha256(f.canvas), *(_file_sha256(p) for p in f.more), composite_key()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@lru_cache(maxsize=128)
def _canvas(path: Path) -> Image.Image:
    return open_for_model(path.read_bytes(), TRAINING_SIDE)


def render(sample: Sample, view: int, seed: int) -> Image.Image:
    """View 0 is the image as it is (or plainly framed); later views are seeded random augmentations."""
    key = sample_key(sample)
    content = open_for_model(sample.path.read_bytes(), TRAINING_SIDE)
    if view:
        content = augment(content, view_rng(key, view, seed))
    if sample.frame is None:
        return content
    f = sample.frame
    more = [open_for_model(p.read_bytes(), TRAINING_SIDE) for p in f.more]
    return compose([content, *more], _canvas(f.canvas), f.layout, random.Random(f"{seed}:{key}:{view}:frame"))


def framed_samples(samples: Sequence[Sample], seed: int = 0) -> list[Sample]:
    """One composite per content image (see training/composite.py), on a canvas from another source.

    A content image is framed only on a canvas of a different source, so holding a source out
    removes all of its pixels from training.
    """
    canvases = {kind: [s for s in samples if s.modality == kind and s.label != "medical"] for kind in FRAME_KINDS}
    by_source: dict[str, list[Sample]] = {}
    for s in samples:
        by_source.setdefault(s.source, []).append(s)
    rng = random.Random(f"frames:{seed}")
    out = []
    for s in samples:
        if s.modality in FRAME_KINDS:
            continue
        layout = LAYOUTS[rng.randrange(len(LAYOUTS))]
        pool = [c for c in canvases["screenshot" if layout == "window" else "document"] if c.source != s.source]
        pool = pool or [c for kind in FRAME_KINDS for c in canvases[kind] if c.source != s.source]
        if not pool:
            continue
        canvas = pool[rng.randrange(len(pool))]
        more: tuple[Path, ...] = ()
        if layout == "grid":
            siblings = [o.path for o in by_source[s.source] if o.path != s.path and o.label == s.label]
            more = tuple(rng.sample(siblings, min(3, len(siblings))))
        out.append(Sample(s.path, s.label, s.modality, s.source, Frame(layout, canvas.path, canvas.source, more)))
    return out


class FeatureCache:
    """One .npy per (feature extractor, augmentation, composites, statistics, seed, sample, view)."""

    def __init__(self, root: Path, extractor: OnnxFeatures, seed: int):
        name = f"onnx-{extractor.sha256[:12]}"
        self.dir = root / "features" / name / f"aug-{augment_key()}-comp-{composite_key()}-stats{STATS_VERSION}-seed{seed}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str, view: int) -> Path:
        return self.dir / f"{key}_{view}.npy"

    def get(self, key: str, view: int) -> np.ndarray | None:
        path = self.path(key, view)
        if not path.is_file():
            return None
        try:
            return np.load(path)
        except (OSError, ValueError):
            return None

    def put(self, key: str, view: int, vec: np.ndarray) -> None:
        path = self.path(key, view)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vec.astype(np.float32))
        tmp.replace(path)


def extract_features(
    samples: Sequence[Sample],
    extractor: OnnxFeatures,
    *,
    views: int,
    seed: int = 0,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "features",
) -> FeatureTable:
    """Features of `views` views of every sample; unreadable images are skipped and listed."""
    cache = FeatureCache(cache_dir, extractor, seed) if cache_dir else None
    width = extractor.feature_size
    rows: dict[int, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    todo: list[tuple[int, int, str]] = []
    for i, sample in enumerate(samples):
        try:
            key = sample_key(sample)
        except OSError as exc:
            skipped.append((str(sample.path), f"{exc.__class__.__name__}: {exc}"))
            continue
        rows[i] = np.zeros((views, width), dtype=np.float32)
        for view in range(views):
            hit = cache.get(key, view) if cache else None
            if hit is not None and hit.shape == (width,):
                rows[i][view] = hit
            else:
                todo.append((i, view, key))

    def rendered(item: tuple[int, int, str]) -> tuple[int, int, str, Image.Image | None, str]:
        i, view, key = item
        try:
            return i, view, key, render(samples[i], view, seed), ""
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            return i, view, key, None, f"{exc.__class__.__name__}: {exc}"

    bad: set[int] = set()
    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(
        total=len(todo), desc=desc, unit="view", disable=not progress, leave=False
    ) as bar:
        # a window at a time, so rendered images never pile up faster than the network takes them
        windows = (pool.map(rendered, todo[k : k + 4 * batch_size]) for k in range(0, len(todo), 4 * batch_size))
        for chunk in (c for window in windows for c in _chunks(window, batch_size)):
            good = [c for c in chunk if c[3] is not None]
            for i, _, _, _, why in chunk:
                if why and i not in bad:
                    bad.add(i)
                    skipped.append((str(samples[i].path), why))
            if good:
                feats = extractor.features(*model_batch([c[3] for c in good], extractor.side))
                for (i, view, key, _, _), vec in zip(good, feats):
                    rows[i][view] = vec
                    if cache:
                        cache.put(key, view, vec)
            bar.update(len(chunk))
    if skipped:
        log.warning("skipped %d unreadable image(s)", len(skipped))
    kept = [i for i in sorted(rows) if i not in bad]
    features = np.stack([rows[i] for i in kept]) if kept else np.zeros((0, views, width), dtype=np.float32)
    return FeatureTable([samples[i] for i in kept], features, skipped)


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

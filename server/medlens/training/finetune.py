"""Fine-tuning the backbone's last blocks on cached activations of the frozen ones.

The frozen trunk (blocks before `first_block`) runs once per view through ONNX Runtime and its
output is cached with the other feature tables (training/features.py), so each epoch only runs
the tail (blocks `first_block`.. and a linear head) forward and backward: minutes on two cores.

Batches are drawn source-balanced (the label / modality / source weights of the heads), from
real augmented views (crop, flip, colour, grayscale, blur, JPEG, downscale: training/augment.py)
and, when asked, framed composites; targets are label-smoothed; the batch-norm statistics stay
frozen (a few thousand images would only add noise to ImageNet's). Depth, learning rate and
epochs are chosen by source-grouped validation (`validation_curves`), never on one source.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from medlens.training.image_stats import STATS_SIZE
from medlens.model.onnx_features import OnnxFeatures
from medlens.model.preprocess import INPUT_SIDE
from medlens.training.backbones import FeatureNet, load_feature_net
from medlens.training.dataset import Sample
from medlens.training.export import onnx_export
from medlens.training.features import FeatureTable
from medlens.training.graph import Tail, Trunk
from medlens.training.metrics import balanced_accuracy, roc_auc
from medlens.training.train import FRAMED_WEIGHT, TrainingSet, extract_training_set, sample_weights

log = logging.getLogger(__name__)

TUNE_DEFAULTS: dict[str, Any] = {
    "first_block": 14,
    "lr": 1e-4,
    "head_lr_factor": 10.0,
    "weight_decay": 1e-4,
    "epochs": 3,
    "draws_per_epoch": 2048,
    "batch": 32,
    "label_smoothing": 0.1,
    "framed": True,
}


@dataclass(frozen=True)
class TrunkLayout:
    """How a trunk's cached row splits: the cut activation, the frozen taps' statistics, the image statistics."""

    first_block: int
    cut_shape: tuple[int, int, int]
    frozen_taps: tuple[int, ...]
    tap_channels: tuple[int, ...]
    all_taps: tuple[int, ...]

    @property
    def cut_size(self) -> int:
        c, h, w = self.cut_shape
        return c * h * w

    @property
    def frozen_size(self) -> int:
        return 2 * sum(ch for t, ch in zip(self.all_taps, self.tap_channels) if t in self.frozen_taps)

    @property
    def width(self) -> int:
        return self.cut_size + self.frozen_size + STATS_SIZE


def trunk_layout(net: FeatureNet, first_block: int) -> TrunkLayout:
    with torch.no_grad():
        x = net.normalise(torch.zeros(1, INPUT_SIDE, INPUT_SIDE, 3, dtype=torch.uint8))
        x, _, _ = net.run_blocks(x, 0, first_block)
    taps = net.spec.taps
    return TrunkLayout(first_block, tuple(x.shape[1:]), tuple(t for t in taps if t < first_block),
                       tuple(net.spec.tap_channels), tuple(taps))


def trunk_extractor(net: FeatureNet, first_block: int, path: Path) -> tuple[OnnxFeatures, TrunkLayout]:
    """The frozen trunk as an ONNX file (fast on the CPU) that `extract_features` can run and cache."""
    layout = trunk_layout(net, first_block)
    onnx_export(Trunk(net, first_block, INPUT_SIDE).eval(), path)
    return OnnxFeatures(path, sha256=None, feature_size=layout.width, device="cpu", threads=1), layout


class Tuner(nn.Module):
    """The tail of the network and a linear medical/non-medical head on its pooled output."""

    def __init__(self, net: FeatureNet, first_block: int):
        super().__init__()
        self.tail = Tail(net, first_block)
        self.head = nn.Linear(net.spec.last_size, 1)

    def forward(self, cut: torch.Tensor) -> torch.Tensor:
        pooled, _, _ = self.tail(cut)
        return self.head(pooled).squeeze(1)


def _cut(table: FeatureTable, layout: TrunkLayout, rows: np.ndarray, views: np.ndarray) -> torch.Tensor:
    flat = table.features[rows, views, : layout.cut_size]
    return torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32)).view(-1, *layout.cut_shape)


def _pool(acts: TrainingSet, train_idx: Sequence[int], framed: bool) -> list[tuple[FeatureTable, np.ndarray, np.ndarray]]:
    """(table, row indices, sampling weights) of what a tuner may see: the real training samples
    and, with `framed`, the composites whose every source is among theirs."""
    idx = np.asarray(train_idx, dtype=int)
    real = [acts.real.samples[i] for i in idx]
    w = sample_weights(real)
    parts = [(acts.real, idx, w)]
    if framed and acts.framed is not None:
        keep = {s.source for s in real}
        by_path = {s.path: wi for s, wi in zip(real, w)}
        rows = np.array([i for i, s in enumerate(acts.framed.samples) if s.sources <= keep and s.path in by_path], dtype=int)
        if len(rows):
            parts.append((acts.framed, rows, np.array([by_path[acts.framed.samples[i].path] for i in rows]) * FRAMED_WEIGHT))
    return parts


def fine_tune(
    net: FeatureNet, layout: TrunkLayout, acts: TrainingSet, train_idx: Sequence[int], spec: dict[str, Any], *,
    seed: int = 0, eval_idx: Sequence[int] | None = None,
) -> list[dict[str, float]]:
    """Tune `net`'s tail in place on the training samples; the held-out curve per epoch if `eval_idx`."""
    torch.manual_seed(seed)
    tuner = Tuner(net, layout.first_block)
    tail_params = [p for p in tuner.tail.parameters()]
    opt = torch.optim.AdamW(
        [{"params": tail_params, "lr": spec["lr"]},
         {"params": tuner.head.parameters(), "lr": spec["lr"] * spec["head_lr_factor"]}],
        weight_decay=spec["weight_decay"],
    )
    parts = _pool(acts, train_idx, spec["framed"])
    weights = np.concatenate([w for _, _, w in parts])
    which = np.concatenate([np.full(len(r), k) for k, (_, r, _) in enumerate(parts)])
    rows = np.concatenate([r for _, r, _ in parts])
    probs = weights / weights.sum()
    rng = np.random.default_rng(seed)
    eps = spec["label_smoothing"]
    curve = []
    for epoch in range(spec["epochs"]):
        tuner.eval()  # batch norm keeps ImageNet's statistics; gradients still flow
        draws = rng.choice(len(rows), size=spec["draws_per_epoch"], p=probs)
        total = 0.0
        for start in range(0, len(draws), spec["batch"]):
            chosen = draws[start : start + spec["batch"]]
            cuts, ys = [], []
            for k in np.unique(which[chosen]):
                table, _, _ = parts[k]
                mine = chosen[which[chosen] == k]
                views = rng.integers(0, table.views, size=len(mine))
                cuts.append(_cut(table, layout, rows[mine], views))
                ys.append(torch.tensor([table.samples[i].y for i in rows[mine]], dtype=torch.float32))
            x, y = torch.cat(cuts), torch.cat(ys)
            target = y * (1 - eps) + eps / 2
            loss = nn.functional.binary_cross_entropy_with_logits(tuner(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
        point = {"epoch": epoch + 1, "train_loss": total / len(draws)}
        if eval_idx is not None and len(eval_idx):
            point.update(_held_out(tuner, layout, acts.real, np.asarray(eval_idx, dtype=int)))
        curve.append(point)
        log.info("epoch %s %s", epoch + 1, point)
    return curve


def _held_out(tuner: Tuner, layout: TrunkLayout, table: FeatureTable, idx: np.ndarray) -> dict[str, float]:
    with torch.inference_mode():
        logits = torch.cat([tuner(_cut(table, layout, idx[k : k + 64], np.zeros(len(idx[k : k + 64]), dtype=int)))
                            for k in range(0, len(idx), 64)]).numpy()
    y = table.y[idx]
    p = 1 / (1 + np.exp(-logits))
    return {"auc": roc_auc(y, p) or float("nan"), "balanced_accuracy": balanced_accuracy(y, (p >= 0.5).astype(int)),
            "logloss": float(-np.mean(y * np.log(p + 1e-7) + (1 - y) * np.log(1 - p + 1e-7)))}


def tuned_features(net: FeatureNet, layout: TrunkLayout, table: FeatureTable, views: int = 1, batch: int = 64) -> FeatureTable:
    """What the exported graph of the tuned `net` gives for the first `views` views of each sample,
    computed from the cached trunk rows (the same arithmetic, in torch)."""
    tail = Tail(net, layout.first_block).eval()
    n = len(table.samples)
    out = np.zeros((n, views, net.spec.feature_size + STATS_SIZE), dtype=np.float32)
    frozen_means = layout.frozen_size // 2
    for v in range(views):
        for k in range(0, n, batch):
            rows = np.arange(k, min(n, k + batch))
            with torch.inference_mode():
                pooled, means, stds = tail(_cut(table, layout, rows, np.full(len(rows), v)))
            rest = table.features[rows, v, layout.cut_size :]
            frozen, stats = rest[:, : layout.frozen_size], rest[:, layout.frozen_size :]
            out[rows, v] = np.concatenate(
                [pooled.numpy(), frozen[:, :frozen_means], *[m.numpy() for m in means],
                 frozen[:, frozen_means:], *[s.numpy() for s in stds], stats], axis=1)
    return FeatureTable(table.samples, out, table.skipped)


def tuned_training_set(net: FeatureNet, layout: TrunkLayout, acts: TrainingSet, framed: bool) -> TrainingSet:
    """Plain views of the real samples (and, with `framed`, of the composites) through the tuned net."""
    real = tuned_features(net, layout, acts.real)
    return TrainingSet(real, tuned_features(net, layout, acts.framed) if framed and acts.framed is not None else None)


def snapshot(net: FeatureNet) -> dict[str, torch.Tensor]:
    return copy.deepcopy(net.state_dict())


def trunk_activations(
    samples: Sequence[Sample], cache_dir: Path, *, first_block: int, views: int, framed_views: int, seed: int = 0,
    backbone: str = "mobilenet_v2", weights_path: str | Path | None = None, progress: bool = True,
) -> tuple[FeatureNet, str, TrunkLayout, TrainingSet]:
    """The verified pretrained net, its weights' sha256, and the cached trunk rows of every view."""
    net, _, weights_sha = load_feature_net(backbone, weights_path)
    extractor, layout = trunk_extractor(net, first_block, cache_dir / "trunks" / f"{backbone}-{first_block}.onnx")
    acts = extract_training_set(samples, extractor, views=views, seed=seed, cache_dir=cache_dir, framed=framed_views > 0,
                                progress=progress, framed_views=max(framed_views, 1))
    return net, weights_sha, layout, acts


def advance(net: FeatureNet, layout: TrunkLayout, acts: TrainingSet, first_block: int, batch: int = 64) -> tuple[TrunkLayout, TrainingSet]:
    """Cached trunk rows for a later `first_block`: the frozen blocks in between run once here, so
    one cache (e.g. of block 13) serves every depth from there on."""
    new = trunk_layout(net, first_block)
    tables = []
    for table in (acts.real, acts.framed):
        if table is None:
            tables.append(None)
            continue
        n, views = len(table.samples), table.views
        out = np.zeros((n, views, new.width), dtype=np.float32)
        for v in range(views):
            for k in range(0, n, batch):
                rows = np.arange(k, min(n, k + batch))
                with torch.inference_mode():
                    x, means, stds = net.run_blocks(_cut(table, layout, rows, np.full(len(rows), v)), layout.first_block, first_block)
                rest = table.features[rows, v, layout.cut_size :]
                half = layout.frozen_size // 2
                frozen = [rest[:, :half], *[m.numpy() for m in means], rest[:, half : layout.frozen_size], *[s.numpy() for s in stds]]
                out[rows, v] = np.concatenate([x.flatten(1).numpy(), *frozen, rest[:, layout.frozen_size :]], axis=1)
        tables.append(FeatureTable(table.samples, out, table.skipped))
    return new, TrainingSet(tables[0], tables[1])

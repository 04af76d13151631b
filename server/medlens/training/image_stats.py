"""Hand-made colour, tone, grain and layout statistics that sit beside the CNN features.

ImageNet features say what an image shows, in ImageNet's terms; medical images show nothing
ImageNet names. What they share is physics: grey-level radiographs on black, the pink-purple of
H&E stains, the orange disc of a fundus photo, few saturated hues, dark borders, the fine grain
of a detector rather than a lens. These numbers give the head that directly, so it need not
learn it from a handful of sources.

Computed for a whole batch at once from the same small uint8 array the network reads
(`model.preprocess.model_batch`), so statistics cost one pass of numpy, not a second resize.
"""

from __future__ import annotations

import numpy as np

STATS_VERSION = 2
HUE_BINS = 12
STAT_NAMES = (
    ["sat_mean", "sat_std", "sat_p90", "val_mean", "val_std", "gray_share", "exact_gray_share", "dark_share",
     "bright_share", "border_val", "centre_val", "border_minus_centre", "edge_mean", "edge_p90", "lap_mean",
     "grain_ratio", "colour_count_log", "entropy", "rg_corr", "aspect_log"]
    + [f"hue_{i}" for i in range(HUE_BINS)]
)
STATS_SIZE = len(STAT_NAMES)


def batch_statistics(pixels: np.ndarray, aspects: np.ndarray) -> np.ndarray:
    """(N, STATS_SIZE) float32 for (N, S, S, 3) uint8 pixels and the originals' log aspect ratios."""
    n = len(pixels)
    if n == 0:
        return np.zeros((0, STATS_SIZE), dtype=np.float32)
    full = pixels.astype(np.float32) / 255.0
    side = full.shape[1] // 2 * 2
    # statistics of tone and colour on a 2x2-averaged copy: the same numbers, a quarter of the work.
    # Written as explicit channel and neighbour arithmetic rather than reductions over tiny axes:
    # several times faster, and bit-identical to them (tests/test_image_stats.py checks).
    top, bottom = full[:, 0:side:2, :side], full[:, 1:side:2, :side]
    arr = (((top[:, :, 0::2] + top[:, :, 1::2]) + bottom[:, :, 0::2]) + bottom[:, :, 1::2]) / np.float32(4)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    v = mx
    s = np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    h = _hue(r, g, b, mx, mn)
    half = side // 2
    m = half // 8
    border = np.ones((half, half), dtype=bool)
    border[m:-m, m:-m] = False
    gray = (r + g + b) / np.float32(3)
    gx = np.abs(np.diff(gray, axis=2)).reshape(n, -1)
    gy = np.abs(np.diff(gray, axis=1)).reshape(n, -1)
    edges = np.concatenate([gx, gy], axis=1)
    full_gray = (full[..., 0] + full[..., 1] + full[..., 2]) / np.float32(3)
    lap = np.abs(
        4 * full_gray[:, 1:-1, 1:-1] - full_gray[:, :-2, 1:-1] - full_gray[:, 2:, 1:-1]
        - full_gray[:, 1:-1, :-2] - full_gray[:, 1:-1, 2:]
    ).reshape(n, -1).mean(axis=1)
    edge_mean = edges.mean(axis=1)
    flat_s = s.reshape(n, -1)
    flat_v = v.reshape(n, -1)
    exact_gray = ((pixels[..., 0] == pixels[..., 1]) & (pixels[..., 1] == pixels[..., 2])).reshape(n, -1).mean(axis=1)
    quant = (arr[:, ::2, ::2] * 15.99).astype(np.int32)
    codes = (quant[..., 0] * 256 + quant[..., 1] * 16 + quant[..., 2]).reshape(n, -1)
    colours = np.array([np.count_nonzero(np.bincount(c, minlength=4096)) for c in codes])
    gray_bins = np.minimum((gray * 32).astype(np.int32), 31).reshape(n, -1)
    hist = np.stack([np.bincount(g, minlength=32) for g in gray_bins]).astype(np.float64)
    hist /= hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(hist > 0, hist * np.log2(hist), 0.0).sum(axis=1)
    rg_corr = _row_corr(r.reshape(n, -1), g.reshape(n, -1))
    hue_bins = np.minimum((h * HUE_BINS).astype(np.int32), HUE_BINS - 1).reshape(n, -1)
    hue_hist = np.stack([np.bincount(b, weights=w, minlength=HUE_BINS) for b, w in zip(hue_bins, flat_s)])
    hue_hist /= np.maximum(flat_s.sum(axis=1, keepdims=True), 1e-6)
    border_v = v[:, border].mean(axis=1)
    centre_v = v[:, ~border].mean(axis=1)
    columns = [
        flat_s.mean(axis=1), flat_s.std(axis=1), np.percentile(flat_s, 90, axis=1),
        flat_v.mean(axis=1), flat_v.std(axis=1), (flat_s < 0.08).mean(axis=1), exact_gray,
        (flat_v < 0.06).mean(axis=1), (flat_v > 0.94).mean(axis=1),
        border_v, centre_v, border_v - centre_v,
        edge_mean, np.percentile(edges, 90, axis=1), lap, lap / np.maximum(edge_mean, 1e-4),
        np.log1p(colours), entropy, rg_corr, np.asarray(aspects, dtype=np.float64),
    ]
    return np.concatenate([np.stack(columns, axis=1), hue_hist], axis=1).astype(np.float32)


def _hue(r: np.ndarray, g: np.ndarray, b: np.ndarray, mx: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Hue in [0, 1) as in the HSV colour model (0 for greys)."""
    delta = np.maximum(mx - mn, 1e-6)
    h = np.where(mx == r, ((g - b) / delta) % 6, np.where(mx == g, (b - r) / delta + 2, (r - g) / delta + 4))
    return np.where(mx - mn > 1e-6, h / 6.0, 0.0) % 1.0


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(denom > 1e-9, (a * b).sum(axis=1) / np.maximum(denom, 1e-9), 1.0)

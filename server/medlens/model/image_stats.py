"""Hand-made colour and layout statistics that sit beside the CNN features.

ImageNet features say what an image shows, in ImageNet's terms; medical images show nothing
ImageNet names. What they share is physics: grey-level radiographs on black, the pink-purple of
H&E stains, the orange disc of a fundus photo, few saturated hues, dark borders. These numbers
give the head that directly, so it need not learn it from a handful of sources.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from medlens.image_modes import to_rgb

STATS_VERSION = 1
HUE_BINS = 12
STAT_NAMES = (
    ["sat_mean", "sat_std", "val_mean", "val_std", "gray_share", "dark_share", "bright_share",
     "border_val", "centre_val", "border_minus_centre", "edge_mean", "edge_p90", "colour_count_log",
     "entropy", "rg_corr", "aspect_log"]
    + [f"hue_{i}" for i in range(HUE_BINS)]
)
STATS_SIZE = len(STAT_NAMES)


def image_statistics(img: Image.Image, side: int = 128) -> np.ndarray:
    """STATS_SIZE float32 numbers describing colour, tone and layout of `img`."""
    rgb = to_rgb(img)
    aspect = np.log(max(rgb.width, 1) / max(rgb.height, 1))
    small = rgb.resize((side, side), Image.Resampling.BILINEAR)
    arr = np.asarray(small, dtype=np.float32) / 255.0
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    border = np.ones((side, side), dtype=bool)
    m = side // 8
    border[m:-m, m:-m] = False
    gray = arr.mean(axis=2)
    gx, gy = np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=0))
    edges = np.concatenate([gx.ravel(), gy.ravel()])
    quant = (arr[::2, ::2] * 15.99).astype(np.int32)
    colours = np.unique(quant[..., 0] * 256 + quant[..., 1] * 16 + quant[..., 2]).size
    hist = np.histogram(gray, bins=32, range=(0, 1))[0].astype(np.float64)
    hist /= hist.sum()
    entropy = float(-(hist[hist > 0] * np.log2(hist[hist > 0])).sum())
    r, g = arr[..., 0].ravel(), arr[..., 1].ravel()
    rg_corr = float(np.corrcoef(r, g)[0, 1]) if r.std() > 1e-6 and g.std() > 1e-6 else 1.0
    hue_hist = np.histogram(h, bins=HUE_BINS, range=(0, 1), weights=s)[0]
    hue_hist = hue_hist / max(float(s.sum()), 1e-6)
    values = [
        s.mean(), s.std(), v.mean(), v.std(), (s < 0.08).mean(), (v < 0.06).mean(), (v > 0.94).mean(),
        v[border].mean(), v[~border].mean(), v[border].mean() - v[~border].mean(),
        edges.mean(), np.percentile(edges, 90), np.log1p(colours), entropy, rg_corr, aspect,
        *hue_hist,
    ]
    return np.asarray(values, dtype=np.float32)

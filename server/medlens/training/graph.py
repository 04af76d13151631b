"""The one graph that serving runs, as a torch module: uint8 pixels and the log aspect ratio in,
everything the heads read out (the network's pooled features, its tapped blocks' statistics and
the 32 image statistics), so the host only decodes and resizes.

`ImageStatistics` is `medlens.training.image_stats.batch_statistics` (the numpy reference) written
as tensor operations that export to ONNX: percentiles by top-k, histograms and distinct colours by
scatter-add into bins, channels by one split. tests/test_graph.py holds the two equal on real
images within float tolerance. What ONNX Runtime's profile showed to be slow on the CPU is avoided:
one-hot comparisons with every bin, a full sort, and a Gather per channel of the NHWC image.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medlens.training.image_stats import HUE_BINS, STATS_SIZE
from medlens.training.backbones import FeatureNet

_GRAY_BINS = 32
_COLOUR_LEVELS = 15.99  # 16 levels per channel
_COLOURS = 16 ** 3


def _upper_percentile(x: torch.Tensor, q: float) -> torch.Tensor:
    """np.percentile(x, q, axis=1) with linear interpolation, from the top-k values only."""
    n = x.shape[1]
    pos = q / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    frac = pos - lo
    k = n - lo
    top = torch.topk(x, k, dim=1, largest=True, sorted=True).values  # top[:, k-1] is sorted[lo]
    low = top[:, k - 1]
    high = top[:, k - 2] if k >= 2 else low
    return low + frac * (high - low)


def _channels(x: torch.Tensor) -> list[torch.Tensor]:
    """The three planes of an (..., 3) tensor: one Split, not a strided Gather each."""
    return [c.squeeze(-1) for c in torch.split(x, 1, dim=-1)]


def _bin_counts(bins: torch.Tensor, n_bins: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(N, ...) integral bin indices -> (N, n_bins) counts (or sums of `weights`), as np.bincount."""
    idx = bins.reshape(bins.shape[0], -1).long()
    src = torch.ones(idx.shape, dtype=torch.float32) if weights is None else weights.reshape(idx.shape)
    return torch.zeros(idx.shape[0], n_bins, dtype=torch.float32).scatter_add(1, idx, src)


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(dim=1)
    std = torch.sqrt(((x - mean[:, None]) ** 2).mean(dim=1))
    return mean, std


def _hue(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor, mx: torch.Tensor, mn: torch.Tensor) -> torch.Tensor:
    delta = torch.clamp(mx - mn, min=1e-6)
    h = torch.where(
        mx == r, torch.remainder((g - b) / delta, 6.0), torch.where(mx == g, (b - r) / delta + 2, (r - g) / delta + 4)
    )
    return torch.remainder(torch.where(mx - mn > 1e-6, h / 6.0, torch.zeros_like(h)), 1.0)


class ImageStatistics(nn.Module):
    """(N, S, S, 3) uint8 pixels and (N,) log aspect ratios -> (N, 32) statistics, as in numpy."""

    def __init__(self, side: int):
        super().__init__()
        half = side // 2
        m = half // 8
        border = torch.ones(half, half, dtype=torch.bool)
        border[m:-m, m:-m] = False
        self.register_buffer("border", border.reshape(-1).float(), persistent=False)
        self.side = side

    def forward(self, pixels: torch.Tensor, aspects: torch.Tensor) -> torch.Tensor:
        n = pixels.shape[0]
        full = pixels.float() / 255.0
        side = self.side // 2 * 2
        top, bottom = full[:, 0:side:2, :side], full[:, 1:side:2, :side]
        arr = (((top[:, :, 0::2] + top[:, :, 1::2]) + bottom[:, :, 0::2]) + bottom[:, :, 1::2]) / 4.0
        r, g, b = _channels(arr)
        mx, mn = torch.maximum(torch.maximum(r, g), b), torch.minimum(torch.minimum(r, g), b)
        v = mx
        s = torch.where(mx > 1e-6, (mx - mn) / torch.clamp(mx, min=1e-6), torch.zeros_like(mx))
        h = _hue(r, g, b, mx, mn)
        gray = (r + g + b) / 3.0
        gx = torch.abs(gray[:, :, 1:] - gray[:, :, :-1]).reshape(n, -1)
        gy = torch.abs(gray[:, 1:, :] - gray[:, :-1, :]).reshape(n, -1)
        edges = torch.cat([gx, gy], dim=1)
        fg = pixels.float().sum(dim=3) / (3 * 255.0)
        lap = torch.abs(
            4 * fg[:, 1:-1, 1:-1] - fg[:, :-2, 1:-1] - fg[:, 2:, 1:-1] - fg[:, 1:-1, :-2] - fg[:, 1:-1, 2:]
        ).reshape(n, -1).mean(dim=1)
        edge_mean = edges.mean(dim=1)
        flat_s, flat_v = s.reshape(n, -1), v.reshape(n, -1)
        p0, p1, p2 = _channels(pixels)
        exact_gray = ((p0 == p1) & (p1 == p2)).reshape(n, -1).float().mean(dim=1)
        quant = torch.floor(arr[:, ::2, ::2] * _COLOUR_LEVELS)
        codes = (quant[..., 0] * 256 + quant[..., 1] * 16 + quant[..., 2]).reshape(n, -1)
        colours = (_bin_counts(codes, _COLOURS) > 0).float().sum(dim=1)
        hist = _bin_counts(torch.clamp(torch.floor(gray * _GRAY_BINS), max=_GRAY_BINS - 1), _GRAY_BINS)
        hist = hist / hist.sum(dim=1, keepdim=True)
        entropy = -torch.where(hist > 0, hist * torch.log(torch.clamp(hist, min=1e-12)) / math.log(2.0), torch.zeros_like(hist)).sum(dim=1)
        rf, gf = r.reshape(n, -1), g.reshape(n, -1)
        rc, gc = rf - rf.mean(dim=1, keepdim=True), gf - gf.mean(dim=1, keepdim=True)
        denom = torch.sqrt((rc * rc).sum(dim=1) * (gc * gc).sum(dim=1))
        rg_corr = torch.where(denom > 1e-9, (rc * gc).sum(dim=1) / torch.clamp(denom, min=1e-9), torch.ones_like(denom))
        hue_hist = _bin_counts(torch.clamp(torch.floor(h * HUE_BINS), max=HUE_BINS - 1), HUE_BINS, flat_s)
        hue_hist = hue_hist / torch.clamp(flat_s.sum(dim=1, keepdim=True), min=1e-6)
        border_v = (flat_v * self.border).sum(dim=1) / self.border.sum()
        centre_v = (flat_v * (1 - self.border)).sum(dim=1) / (1 - self.border).sum()
        sat_mean, sat_std = _mean_std(flat_s)
        val_mean, val_std = _mean_std(flat_v)
        columns = [
            sat_mean, sat_std, _upper_percentile(flat_s, 90),
            val_mean, val_std, (flat_s < 0.08).float().mean(dim=1), exact_gray,
            (flat_v < 0.06).float().mean(dim=1), (flat_v > 0.94).float().mean(dim=1),
            border_v, centre_v, border_v - centre_v,
            edge_mean, _upper_percentile(edges, 90), lap, lap / torch.clamp(edge_mean, min=1e-4),
            torch.log(1.0 + colours), entropy, rg_corr, aspects.float(),
        ]
        out = torch.cat([torch.stack(columns, dim=1), hue_hist], dim=1)
        assert out.shape[1] == STATS_SIZE
        return out


class ModelGraph(nn.Module):
    """The exported graph: a FeatureNet (pooled last block and tapped blocks) and the statistics."""

    def __init__(self, net: FeatureNet, side: int):
        super().__init__()
        self.net = net
        self.stats = ImageStatistics(side)

    def forward(self, pixels: torch.Tensor, aspects: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(pixels), self.stats(pixels, aspects)], dim=1)


class Trunk(nn.Module):
    """The frozen blocks `[0, first)`, for caching: their last output (flattened), the statistics
    of the taps inside them, and the image statistics. Fine-tuning then runs only `Tail`."""

    def __init__(self, net: FeatureNet, first: int, side: int):
        super().__init__()
        self.net, self.first = net, first
        self.stats = ImageStatistics(side)

    def forward(self, pixels: torch.Tensor, aspects: torch.Tensor) -> torch.Tensor:
        x, means, stds = self.net.run_blocks(self.net.normalise(pixels), 0, self.first)
        return torch.cat([x.flatten(1), *means, *stds, self.stats(pixels, aspects)], dim=1)


class Tail(nn.Module):
    """The blocks `[first, end)` of a FeatureNet (shared, not copied: tuning the tail tunes the net)."""

    def __init__(self, net: FeatureNet, first: int):
        super().__init__()
        self.net, self.first = net, first

    def forward(self, cut: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        x, means, stds = self.net.run_blocks(cut, self.first, len(self.net.blocks))
        return x.mean(dim=(2, 3)), means, stds

"""Line plots: the series drawn as an anti-aliased dark line on a white canvas.

Geometry (pixel centres at integer coordinates, ``S = size``):
point t sits at column ``c_t = t (S - 1) / (T - 1)`` (a single point: the middle) and row
``r_t = (1 - y_t) (S - 1)`` with ``y_t = margin + (1 - 2 margin) (x_t - min) / (max - min)``
(0.5 for a constant series). A pixel's coverage is ``clip(w / 2 + 0.5 - d, 0, 1)``, d its distance
to the polyline; the pixel value is ``1 - coverage``. Only segments whose column span comes
within ``w / 2 + 0.5`` of a pixel's column can cover it, so each column checks a few segments.
The series is first multiplied by a power of two (``_scale``: no rounding changes), so that
``max - min`` of values near float64's largest stays finite.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from renderers import _alloc
from renderers._config import LinePlotConfig
from renderers._scale import pow2_scale, pow2_scale_torch

_BAND_GROUP = 32  # series per pass: grouped by band height, so a steep series widens only its group's band

if TYPE_CHECKING:
    import torch


def geometry(x: np.ndarray, cfg: LinePlotConfig, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cols, rows)``: float64 pixel coordinates of the points of one series."""
    x = np.asarray(x, dtype=np.float64)
    x = x * pow2_scale(x)[0]  # exact; 1e308 - -1e308 would be inf
    t = len(x)
    low, high = x.min(), x.max()
    y = np.full(t, 0.5) if high == low else cfg.margin + (1 - 2 * cfg.margin) * (x - low) / (high - low)
    cols = np.arange(t) * ((size - 1) / (t - 1)) if t > 1 else np.full(1, (size - 1) / 2)
    return cols, (1 - y) * (size - 1)


def ink_reach(cfg: LinePlotConfig, size: int) -> float:
    """``w / 2 + 0.5``, the farthest a pixel the line inks can be from it, capped at ``2 size``: no
    pixel centre is farther than ``sqrt(2) (size - 1)`` from the line, so any wider line inks every
    pixel fully as well (and a huge width would overflow the segment indices)."""
    return min(cfg.line_width / 2 + 0.5, 2.0 * size)


def segment_range(length: int, size: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """First and last segment (inclusive, int64 ``(size,)``) that can reach each column."""
    if length < 2 or size < 2:
        return np.zeros(size, np.int64), np.full(size, max(length - 2, 0), np.int64)
    step = (size - 1) / (length - 1)
    j = np.arange(size)
    first = np.clip(np.floor((j - reach) / step).astype(np.int64) - 1, 0, length - 2)
    last = np.clip(np.floor((j + reach) / step).astype(np.int64) + 1, 0, length - 2)
    return first, last


def _distance(px, py, ax, ay, bx, by):
    """Distance from points ``(px, py)`` to segments ``a -> b`` (works for numpy and torch)."""
    dx, dy = bx - ax, by - ay
    norm = dx * dx + dy * dy
    norm = norm + (norm == 0)  # a zero-length segment is its end point
    t = ((px - ax) * dx + (py - ay) * dy) / norm
    t = t.clip(0, 1)
    ex, ey = px - ax - t * dx, py - ay - t * dy
    return (ex * ex + ey * ey) ** 0.5


def numpy_image(x: np.ndarray, cfg: LinePlotConfig, size: int) -> np.ndarray:
    """Reference: one series -> ``(size, size)`` image in [0, 1] (white = 1)."""
    cols, rows = geometry(x, cfg, size)
    reach = ink_reach(cfg, size)
    first, last = segment_range(len(cols), size, reach)
    pixel_rows = np.arange(size, dtype=np.float64)
    image = np.ones((size, size))
    for j in range(size):
        if len(cols) == 1:
            d = np.hypot(pixel_rows - rows[0], j - cols[0])
        else:
            seg = np.arange(first[j], last[j] + 1)
            d = _distance(j, pixel_rows[:, None], cols[seg], rows[seg], cols[seg + 1], rows[seg + 1]).min(axis=1)
        image[:, j] = 1 - np.clip(reach - d, 0, 1)
    return image.astype(np.float32)


def torch_images(x: "torch.Tensor", cfg: LinePlotConfig, size: int) -> "torch.Tensor":
    """Batched: ``(g, T)`` series of one length -> ``(g, size, size)`` float32.

    A line inks a band of rows in each column: the rows its nearby segments span, plus the reach.
    Distances are computed on a band of ``B`` rows per column, for groups of series with similar
    bands, each as tall as its tallest (``B = size`` at worst); every pixel outside a band is
    white, as the full computation gives.
    """
    import torch

    g, t = x.shape
    dev = x.device
    x = x.double()
    x = x * pow2_scale_torch(x)  # exact; 1e308 - -1e308 would be inf
    low, high = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    span = high - low
    y = cfg.margin + (1 - 2 * cfg.margin) * (x - low) / torch.where(span > 0, span, torch.ones_like(span))
    y = torch.where(span > 0, y, torch.full_like(y, 0.5))
    rows = ((1 - y) * (size - 1)).float()  # (g, t)
    cols = torch.from_numpy(geometry(np.zeros(t), cfg, size)[0]).float().to(dev)
    reach = ink_reach(cfg, size)
    pc = torch.arange(size, dtype=torch.float32, device=dev)[None, None, :]  # pixel columns
    if t == 1:
        pr = torch.arange(size, dtype=torch.float32, device=dev)[None, :, None]
        d2 = (pr - rows[:, :, None]) ** 2 + (pc - cols[0]) ** 2
        return 1 - torch.clamp(reach - d2.sqrt_(), 0, 1)
    first, last = (torch.from_numpy(a).to(dev) for a in segment_range(t, size, reach))
    segments = [torch.minimum(first + k, last) for k in range(int((last - first).max()) + 1)]  # per column
    ends = torch.stack([rows[:, seg] for seg in segments] + [rows[:, segments[-1] + 1]])  # (offsets + 1, g, size)
    top = ends.amin(0).sub_(reach).floor_().clamp_(min=0)  # first row a segment can ink, per series and column
    heights = (ends.amax(0) + reach).ceil_().sub_(top).amax(1).long() + 1  # (g,) rows each series' band needs
    image = _alloc.empty((g, size, size), dtype=torch.float32, device=dev)
    if bool((heights < size).any()):
        image.fill_(1.0)
    per_pass = _BAND_GROUP if dev.type == "cpu" else g  # a GPU takes the batch in one pass
    for group in torch.argsort(heights).split(per_pass):  # series with similar bands share a pass
        band = min(size, max(1, int(heights[group].max())))
        pr = top[group].clamp(max=size - band)[:, None, :]  # (G, 1, size): the band stays inside the image
        pr = pr + torch.arange(band, dtype=torch.float32, device=dev)[None, :, None]  # (G, band, size) pixel rows
        values = _band_values(rows[group], cols, segments, pr, pc, reach)
        if band == size:
            image.index_copy_(0, group, values)
        else:
            pixel = (group[:, None, None] * size + pr.long()) * size + pc.long()
            image.view(-1).scatter_(0, pixel.view(-1), values.view(-1))
    return image


def _band_values(rows, cols, segments, pr, pc, reach: float) -> "torch.Tensor":
    """Pixel values ``1 - coverage`` at pixel rows ``pr`` ``(G, band, size)`` of series with point rows
    ``rows`` ``(G, T)``: the least distance to the segments each column can reach."""
    import torch

    d2 = torch.full(pr.shape, math.inf, dtype=pr.dtype, device=pr.device)
    for seg in segments:
        ax, dx = cols[seg], cols[seg + 1] - cols[seg]  # (size,): columns are shared by all series
        ay = rows[:, seg][:, None, :]
        dy = rows[:, seg + 1][:, None, :] - ay
        norm = dx * dx + dy * dy
        norm = norm + (norm == 0)
        ux = pc - ax  # (1, 1, size)
        uy = pr - ay  # (G, band, size)
        proj = torch.addcmul(ux * dx, uy, dy).div_(norm).clamp_(0, 1)
        ex = ux - proj * dx
        ey = uy.sub_(proj.mul_(dy))
        d2 = torch.minimum(d2, torch.addcmul(ex * ex, ey, ey))
    return 1 - torch.clamp(reach - d2.sqrt_(), 0, 1)

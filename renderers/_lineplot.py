"""Line plots: the series drawn as an anti-aliased dark line on a white canvas.

Geometry (pixel centres at integer coordinates, ``S = size``):
point t sits at column ``c_t = t (S - 1) / (T - 1)`` (a single point: the middle) and row
``r_t = (1 - y_t) (S - 1)`` with ``y_t = margin + (1 - 2 margin) (x_t - min) / (max - min)``
(0.5 for a constant series). A pixel's coverage is ``clip(w / 2 + 0.5 - d, 0, 1)``, d its distance
to the polyline; the pixel value is ``1 - coverage``. Only segments whose column span comes
within ``w / 2 + 0.5`` of a pixel's column can cover it, so each column checks a few segments.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from renderers import _alloc
from renderers._config import LinePlotConfig

if TYPE_CHECKING:
    import torch


def geometry(x: np.ndarray, cfg: LinePlotConfig, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cols, rows)``: float64 pixel coordinates of the points of one series."""
    x = np.asarray(x, dtype=np.float64)
    t = len(x)
    low, high = x.min(), x.max()
    y = np.full(t, 0.5) if high == low else cfg.margin + (1 - 2 * cfg.margin) * (x - low) / (high - low)
    cols = np.arange(t) * ((size - 1) / (t - 1)) if t > 1 else np.full(1, (size - 1) / 2)
    return cols, (1 - y) * (size - 1)


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
    reach = cfg.line_width / 2 + 0.5
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
    Distances are computed on a band of ``B`` rows per column, as tall as the tallest band of the
    batch (``B = size`` at worst); every pixel outside it is white, as the full computation gives.
    """
    import torch

    g, t = x.shape
    dev = x.device
    x = x.double()
    low, high = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    span = high - low
    y = cfg.margin + (1 - 2 * cfg.margin) * (x - low) / torch.where(span > 0, span, torch.ones_like(span))
    y = torch.where(span > 0, y, torch.full_like(y, 0.5))
    rows = ((1 - y) * (size - 1)).float()  # (g, t)
    cols = torch.from_numpy(geometry(np.zeros(t), cfg, size)[0]).float().to(dev)
    reach = cfg.line_width / 2 + 0.5
    pc = torch.arange(size, dtype=torch.float32, device=dev)[None, None, :]  # pixel columns
    if t == 1:
        pr = torch.arange(size, dtype=torch.float32, device=dev)[None, :, None]
        d2 = (pr - rows[:, :, None]) ** 2 + (pc - cols[0]) ** 2
        return 1 - torch.clamp(reach - d2.sqrt_(), 0, 1)
    first, last = (torch.from_numpy(a).to(dev) for a in segment_range(t, size, reach))
    segments = [torch.minimum(first + k, last) for k in range(int((last - first).max()) + 1)]  # per column
    ends = torch.stack([rows[:, seg] for seg in segments] + [rows[:, segments[-1] + 1]])  # (offsets + 1, g, size)
    top = ends.amin(0).sub_(reach).floor_().clamp_(min=0)  # first row a segment can ink, per series and column
    height = int((ends.amax(0) + reach).ceil_().sub_(top).max()) + 1
    band = min(size, max(1, height))
    top = top.clamp_(max=size - band)[:, None, :]  # (g, 1, size): the band stays inside the image
    pr = top + torch.arange(band, dtype=torch.float32, device=dev)[None, :, None]  # (g, band, size) pixel rows
    d2 = torch.full((g, band, size), math.inf, device=dev)
    for seg in segments:
        ax, dx = cols[seg], cols[seg + 1] - cols[seg]  # (size,): columns are shared by all series
        ay = rows[:, seg][:, None, :]
        dy = rows[:, seg + 1][:, None, :] - ay
        norm = dx * dx + dy * dy
        norm = norm + (norm == 0)
        ux = pc - ax  # (1, 1, size)
        uy = pr - ay  # (g, band, size)
        proj = torch.addcmul(ux * dx, uy, dy).div_(norm).clamp_(0, 1)
        ex = ux - proj * dx
        ey = uy.sub_(proj.mul_(dy))
        d2 = torch.minimum(d2, torch.addcmul(ex * ex, ey, ey))
    values = 1 - torch.clamp(reach - d2.sqrt_(), 0, 1)
    if band == size:
        return values
    image = _alloc.empty((g, size, size), dtype=torch.float32, device=dev).fill_(1.0)
    return image.scatter_(1, pr.long(), values)

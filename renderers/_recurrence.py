"""Recurrence plots, as pyts defines them (``pyts.image.RecurrencePlot``), of the raw series.

Trajectories of dimension m and delay tau, ``N = T - (m - 1) tau`` of them; ``D[a, b]`` is the
Euclidean distance between trajectories a and b. The image is

- ``threshold=None``: ``D / max(D)`` (pyts returns D itself; the division puts it in [0, 1];
  an all-zero D stays 0);
- a float eps: ``D < eps``; ``"point"``: ``D <`` the ``percentage`` percentile of D (numpy's
  linear percentile); ``"distance"``: ``D < percentage / 100 * max(D)``;

then resized from N to ``size`` (``box``: block means, i.e. the share of recurrences in a block).
Every backend holds a series' N x N distances (the ``point`` threshold is a percentile of all of
them): memory grows with N^2, about 3 GB at N = 20,000.
Thresholded plots are computed in float64 so that no comparison flips against pyts. Every backend
first multiplies the series by a power of two (``_scale``; the threshold too): no rounding changes,
and squared differences of values near float64's limits neither overflow nor underflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from renderers import _alloc
from renderers._config import RecurrenceConfig
from renderers._resize import resize_numpy, resize_torch
from renderers._scale import pow2_scale, pow2_scale_torch

if TYPE_CHECKING:
    import torch


def n_trajectories(length: int, cfg: RecurrenceConfig) -> int:
    """How many trajectories a series of ``length`` has; raises when it has none."""
    n = length - (cfg.dimension - 1) * cfg.time_delay
    if n < 1:
        raise ValueError(
            f"a series of length {length} is too short for a recurrence plot with dimension "
            f"{cfg.dimension} and time_delay {cfg.time_delay} (needs length >= {(cfg.dimension - 1) * cfg.time_delay + 1})"
        )
    return n


def numpy_image(x: np.ndarray, cfg: RecurrenceConfig, size: int) -> np.ndarray:
    """Reference: one series -> ``(size, size)`` image in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    scale = pow2_scale(x)[0]  # exact: the same pixels, without (1e300)**2 = inf
    x = x * scale
    n = n_trajectories(len(x), cfg)
    traj = np.stack([x[k * cfg.time_delay : k * cfg.time_delay + n] for k in range(cfg.dimension)], axis=1)
    dist = np.sqrt(((traj[:, None, :] - traj[None, :, :]) ** 2).sum(axis=2))
    if cfg.threshold is None:
        image = dist / dist.max() if dist.max() > 0 else np.zeros_like(dist)
    elif cfg.threshold == "point":
        image = dist < np.percentile(dist, cfg.percentage)
    elif cfg.threshold == "distance":
        image = dist < cfg.percentage / 100 * dist.max()
    else:
        image = dist < cfg.threshold * scale
    return resize_numpy(image.astype(np.float64), size, cfg.resize).astype(np.float32)


def _percentile_torch(values: "torch.Tensor", percentage: float) -> "torch.Tensor":
    """numpy's linear percentile of each row, from two order statistics (no full sort)."""
    import torch

    n = values.shape[1]
    pos = percentage / 100 * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    t = pos - lo
    a = torch.kthvalue(values, lo + 1, dim=1).values
    b = a if hi == lo else torch.kthvalue(values, hi + 1, dim=1).values
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def torch_images(x: "torch.Tensor", cfg: RecurrenceConfig, size: int) -> "torch.Tensor":
    """Batched: ``(g, T)`` series of one length -> ``(g, size, size)`` float32."""
    import torch

    n = n_trajectories(x.shape[1], cfg)
    tau = cfg.time_delay
    x = x.double()
    scale = pow2_scale_torch(x)
    if cfg.threshold is None:  # D / max D: scale the series to [0, 1] (float64, as the reference)
        y = _unit_range_torch(x * scale)
        if cfg.dimension == 1:  # then one float32 difference per pixel
            if n != size:
                return resize_torch(torch.sub(y[:, :, None], y[:, None, :]).abs_(), size, cfg.resize).clamp_(0, 1)
            # straight into the output, a few images (about 1 MiB) at a time so abs_ runs in cache
            image = _alloc.empty((len(y), n, n), dtype=torch.float32, device=y.device)
            for chunk, column, row in _alloc.cache_chunks(image, y[:, :, None], y[:, None, :]):
                torch.sub(column, row, out=chunk).abs_()
            return image
        x = y  # float32 squares of differences within [-1, 1] neither overflow nor underflow
    else:
        x = x * scale  # exact: the same comparisons, without (1e300)**2 = inf
    if cfg.dimension == 1:
        dist = torch.sub(x[:, :, None], x[:, None, :]).abs_()
    else:
        dist = torch.zeros(x.shape[0], n, n, dtype=x.dtype, device=x.device)
        for k in range(cfg.dimension):
            part = x[:, k * tau : k * tau + n]
            dist += (part[:, :, None] - part[:, None, :]) ** 2
        dist = dist.sqrt_()
    if cfg.threshold is None:
        top = dist.amax(dim=(1, 2), keepdim=True)
        image = (dist / torch.where(top > 0, top, torch.ones_like(top))).clamp_(0, 1)
    else:
        if cfg.threshold == "point":
            limit = _percentile_torch(dist.reshape(dist.shape[0], -1), cfg.percentage)[:, None, None]
        elif cfg.threshold == "distance":
            limit = cfg.percentage / 100 * dist.amax(dim=(1, 2), keepdim=True)
        else:
            limit = cfg.threshold * scale[:, :, None]
        image = (dist < limit).float()
    # a shrink averages blocks with float32 weights fl(1/k): a block of ones can sum to 1 + 1 ulp
    return image if n == size else resize_torch(image.float(), size, cfg.resize).clamp_(0, 1)


def _unit_range_torch(x: "torch.Tensor") -> "torch.Tensor":
    """``(x - min) / (max - min)`` of float64 rows as float32 (0 for a constant row): the
    differences keep the digits of a series far from zero, and D / max D does not change."""
    import torch

    low, high = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    span = high - low
    return ((x - low) / torch.where(span > 0, span, torch.ones_like(span))).float()

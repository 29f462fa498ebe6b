"""Markov transition fields, as pyts defines them (``pyts.image.MarkovTransitionField``).

Per series of length T with Q quantile bins:

- bin edges: ``np.percentile(x, linspace(0, 100, Q + 1)[1:-1])``; with Q > 2, an edge within 1e-8
  of the next is dropped; ``q_t = searchsorted(edges, x_t, side="left")``;
- W[u, v]: count of transitions ``q_t = u -> q_{t+1} = v``, each row divided by its sum (rows
  summing to 0 stay 0);
- MTF[a, b] = W[q_a, q_b]; shrunk to ``m = min(T, size)`` by block means over
  ``floor(linspace(0, T, m + 1))``, then grown to ``size`` by pixel replication.

The block mean factorises: with H[i, u] = the share of block i's points in bin u,
``image = H W H^T``, so the batched backends never build the T x T field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from renderers import _alloc
from renderers._config import MTFConfig
from renderers._resize import bounds, resize_numpy

if TYPE_CHECKING:
    import torch


def levels(n_bins: int) -> np.ndarray:
    """The quantile levels of the inner bin edges, as ``np.percentile`` takes pyts's
    ``linspace(0, 100, Q + 1)[1:-1]``: every backend uses these doubles, since a level one rounding
    step off (``linspace(0, 1, Q + 1)``, ``e / Q``) moves a value that sits on an edge to the next bin."""
    return np.linspace(0, 100, n_bins + 1)[1:-1] / 100


def _bins(x: np.ndarray, n_bins: int) -> np.ndarray:
    edges = np.quantile(x, levels(n_bins))
    if n_bins > 2:
        edges = edges[np.r_[~np.isclose(0, np.diff(edges), rtol=0, atol=1e-8), True]]
    return np.searchsorted(edges, x, side="left")


def numpy_image(x: np.ndarray, cfg: MTFConfig, size: int) -> np.ndarray:
    """Reference: one series -> ``(size, size)`` image in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    q = _bins(x, cfg.n_bins)
    w = np.zeros((cfg.n_bins, cfg.n_bins))
    np.add.at(w, (q[:-1], q[1:]), 1)
    total = w.sum(axis=1, keepdims=True)
    w /= np.where(total == 0, 1, total)
    field = w[q][:, q]
    m = min(len(x), size)
    image = resize_numpy(resize_numpy(field, m, "box"), size, cfg.resize)
    return image.astype(np.float32)


def torch_images(x: "torch.Tensor", cfg: MTFConfig, size: int) -> "torch.Tensor":
    """Batched: ``(g, T)`` series of one length -> ``(g, size, size)`` float32."""
    import torch

    x = x.double()
    g, t = x.shape
    nb = cfg.n_bins
    edges = torch.quantile(x, torch.from_numpy(levels(nb)).to(x.device), dim=1).T  # (g, nb - 1)
    keep = torch.ones_like(edges, dtype=torch.bool)
    if nb > 2:
        keep[:, :-1] = (edges[:, 1:] - edges[:, :-1]).abs() > 1e-8
    # searchsorted(left) over the kept edges = how many kept edges lie strictly below x
    q = ((x[:, :, None] > edges[:, None, :]) & keep[:, None, :]).sum(dim=2)

    pairs = q[:, :-1] * nb + q[:, 1:]
    counts = torch.zeros(g, nb * nb, dtype=torch.float64, device=x.device)
    counts.scatter_add_(1, pairs, torch.ones_like(pairs, dtype=torch.float64))
    w = counts.view(g, nb, nb)
    total = w.sum(dim=2, keepdim=True)
    w = w / torch.where(total == 0, torch.ones_like(total), total)

    m = min(t, size)
    start, end = bounds(t, m, "box")
    block = torch.from_numpy(np.repeat(np.arange(m), end - start)).to(x.device)  # block of each time step
    weight = torch.from_numpy(1.0 / (end - start)[np.repeat(np.arange(m), end - start)]).to(x.device)
    shares = torch.zeros(g, m * nb, dtype=torch.float64, device=x.device)
    shares.scatter_add_(1, block[None, :] * nb + q, weight.expand(g, t).contiguous())
    shares = shares.view(g, m, nb)  # H: share of each block's values in each bin
    if m < size:
        shares = shares[:, torch.from_numpy(bounds(m, size, cfg.resize)[0]).to(x.device)]
    left, right = (shares @ w).float(), shares.float().transpose(1, 2)
    # into huge-page memory, a few images at a time, each clamped while in cache (see _alloc)
    out = _alloc.empty((g, size, size), dtype=torch.float32, device=x.device)
    for chunk, lhs, rhs in _alloc.cache_chunks(out, left, right):
        torch.bmm(lhs, rhs, out=chunk).clamp_(0, 1)
    return out

"""Gramian angular fields, as pyts defines them (``pyts.image.GramianAngularField``).

Per series: PAA down to ``m = min(T, size)`` points (block means over ``floor(linspace(0, T, m+1))``),
min-max scaling to [-1, 1] (scikit-learn's ``MinMaxScaler``; a constant series maps to -1),
``cos = x``, ``sin = sqrt(clip(1 - x^2, 0, 1))``, and

    GASF[i, j] = cos_i cos_j - sin_i sin_j        GADF[i, j] = sin_i cos_j - cos_i sin_j

The image is ``(G + 1) / 2`` in [0, 1], grown to ``size`` by pixel replication when T < size.
Block means are taken of ``x - x[0]`` and ``x[0]`` added back: the same means, but a constant series
gives exactly equal ones (the min-max step divides by their range, so rounding noise in the means of
a flat series far from zero became a full-contrast noise image), and a series far from zero keeps its
digits.
The per-series vectors are computed in float64 (``sin`` near ``cos = +-1`` is ill-conditioned),
the ``size x size`` products in float32. A series with values near float64's largest is first
brought down by a power of two (``_scale.pow2_limit``), so that its block sums and range stay finite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from renderers import _alloc
from renderers._config import GAFConfig
from renderers._resize import bounds, resize_numpy
from renderers._scale import pow2_limit, pow2_limit_torch

if TYPE_CHECKING:
    import torch

# On the CPU the factors are scaled by (1 - _SHRINK) so that the product alone stays in [0, 1] and
# no clamp pass is needed (10-15 % of the render). Why it suffices: with a = cos/sqrt(2), c = sin/sqrt(2)
# (cos^2 + sin^2 = 1 in float64; a, c each rounded once to float32),
# a_i^2 + c_i^2 <= (1 - s)^2 (1 + u)^2 / 2 (u = 2^-24), so by
# Cauchy-Schwarz |a_i b_j -/+ c_i d_j| <= (1 - s)^2 (1 + u)^2 / 2, and a length-3 dot product
# (0.5 * 1 included) is computed with an error of at most 3u (1 + ...) times the sum of its
# |terms| <= 1 + 2u, whatever the order or FMA use. (1 - s)^2 (1 + u)^2 / 2 + 3.1u <= 1/2 needs
# s >= 2.5e-7; s = 2^-21 = 4.8e-7 leaves a factor 2. Pixels move by at most s (pyts: 1e-5 asked).
_SHRINK = 2.0**-21


def _minmax_scale(p: np.ndarray) -> np.ndarray:
    """scikit-learn's MinMaxScaler to (-1, 1) along the last axis (a zero range counts as 1)."""
    low, high = p.min(axis=-1, keepdims=True), p.max(axis=-1, keepdims=True)
    span = high - low
    span = np.where(span < 10 * np.finfo(np.float64).eps, 1.0, span)
    scale = 2.0 / span
    return p * scale + (-1.0 - low * scale)


def numpy_image(x: np.ndarray, cfg: GAFConfig, size: int) -> np.ndarray:
    """Reference: one series -> ``(size, size)`` image in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    x = x * pow2_limit(x)[0]  # values near float64's largest: sums and the range stay finite
    m = min(len(x), size)
    start, end = bounds(len(x), m, "box")
    rel = x - x[0]  # finite: pow2_limit leaves every |value| below 2**900
    paa = x[0] + np.array([rel[a:b].mean() for a, b in zip(start, end)])
    cos = _minmax_scale(paa)
    sin = np.sqrt(np.clip(1 - cos**2, 0, 1))
    if cfg.kind == "summation":
        field = np.outer(cos, cos) - np.outer(sin, sin)
    else:
        field = np.outer(sin, cos) - np.outer(cos, sin)
    image = resize_numpy((field + 1) / 2, size, cfg.resize)
    return np.clip(image, 0, 1).astype(np.float32)


def paa_torch(x: "torch.Tensor", m: int) -> "torch.Tensor":
    """Block means of ``(g, T)`` rows over pyts's ``m`` segments, from float64 prefix sums (O(T)).

    Segment ``k`` sums to ``prefix[end_k - 1] - prefix[start_k - 1]`` (the first segment starts at 0,
    so it is the prefix alone); the columns are picked with ``gather``, faster here than
    ``index_select`` along dim 1 or advanced indexing. The prefix sums are made a few rows at a time, in cache: one
    float64 copy of a whole large batch costs more in fresh pages than the sums themselves.
    """
    import torch

    t = x.shape[1]
    if m == t:
        return x.double()
    start, end = (torch.from_numpy(a).to(x.device) for a in bounds(t, m, "box"))
    last, before = (end - 1)[None, :], (start[1:] - 1)[None, :]
    out = torch.empty((x.shape[0], m), dtype=torch.float64, device=x.device)
    for sums, rows in _alloc.cache_chunks(out, x, pixels=2 * t):
        rows = rows.double()
        prefix = torch.cumsum(rows - rows[:, :1], dim=1)  # sums of x - x[0]: see the module docstring
        torch.gather(prefix, 1, last.expand(len(rows), -1), out=sums)
        sums[:, 1:] -= torch.gather(prefix, 1, before.expand(len(rows), -1))
        sums.div_(end - start).add_(rows[:, :1])
    return out


def vectors_torch(x: "torch.Tensor", size: int, resize: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(cos, sin)``: float64 ``(g, size)`` per-series vectors, already grown to ``size``."""
    import torch

    m = min(x.shape[1], size)
    p = paa_torch(x, m)
    low, high = p.amin(dim=1, keepdim=True), p.amax(dim=1, keepdim=True)
    span = high - low
    if not bool(torch.isfinite(span).all()):  # values near float64's largest: their sums or range overflowed
        p = paa_torch(x.double() * pow2_limit_torch(x.double()), m)
        low, high = p.amin(dim=1, keepdim=True), p.amax(dim=1, keepdim=True)
        span = high - low
    span = torch.where(span < 10 * np.finfo(np.float64).eps, torch.ones_like(span), span)
    scale = 2.0 / span
    cos = p * scale + (-1.0 - low * scale)
    sin = torch.sqrt(torch.clamp(1 - cos**2, 0, 1))
    if m < size:
        grow = torch.from_numpy(bounds(m, size, resize)[0]).to(x.device)
        cos, sin = cos[:, grow], sin[:, grow]
    return cos, sin


def torch_images(x: "torch.Tensor", cfg: GAFConfig, size: int) -> "torch.Tensor":
    """Batched: ``(g, T)`` series of one length -> ``(g, size, size)`` float32.

    ``(G + 1) / 2`` with ``G = a (x) b -/+ c (x) d`` is computed from float32 vectors pre-scaled by
    ``sqrt(1/2)``, chunk by chunk of a few images (about 1 MiB) so that every pass runs in cache and
    the output is written from memory once. On the CPU each image is one rank-3 product
    ``[a, c, 1] @ [b; -d; 0.5]`` (``bmm`` writes the final values in one pass; the factors are
    shrunk by ``_SHRINK`` so that no clamp is needed); elsewhere ``mul``, ``addcmul_``, ``add_``,
    ``clamp_`` (no TF32 setting can touch those).
    """
    import torch

    cos, sin = vectors_torch(x, size, cfg.resize)
    half = float(np.sqrt(0.5)) * (1 - _SHRINK if x.device.type == "cpu" else 1.0)
    g = x.shape[0]
    # GASF = cos (x) cos - sin (x) sin; GADF = sin (x) cos - cos (x) sin (a, c are rows of ``left``)
    left = torch.empty((g, 3, size), dtype=torch.float32, device=x.device)
    a, c = left[:, 0], left[:, 1]
    torch.mul(cos if cfg.kind == "summation" else sin, half, out=a)
    torch.mul(sin if cfg.kind == "summation" else cos, half, out=c)
    b, d = (a, c) if cfg.kind == "summation" else (c, a)
    out = _alloc.empty((g, size, size), dtype=torch.float32, device=x.device)
    if x.device.type == "cpu":
        left[:, 2] = 1.0
        right = torch.empty_like(left)
        right[:, 0] = b
        torch.neg(d, out=right[:, 1])
        right[:, 2] = 0.5
        left = left.transpose(1, 2)  # (g, size, 3): bmm reads it transposed, no interleaving copy
        for chunk, lhs, rhs in _alloc.cache_chunks(out, left, right):
            torch.bmm(lhs, rhs, out=chunk)
        return out
    factors = (a[:, :, None], b[:, None, :], c[:, :, None], d[:, None, :])
    for chunk, a_, b_, c_, d_ in _alloc.cache_chunks(out, *factors):
        torch.mul(a_, b_, out=chunk).addcmul_(c_, d_, value=-1.0).add_(0.5).clamp_(0, 1)
    return out

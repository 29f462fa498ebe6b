"""Resizing as block means: every output row averages input rows ``[start, end)``.

One description serves every backend and every mode, so they cannot disagree:

- ``nearest``: torch's legacy nearest (``F.interpolate(mode="nearest")``, torchvision
  ``Resize(interpolation=NEAREST)``): ``src = min(floor(i * float32(n_in / n_out)), n_in - 1)``,
  in float32 exactly as torch computes it. Shrinking drops rows.
- ``box``: shrinking averages the blocks ``floor(linspace(0, n_in, n_out + 1))`` (pyts's
  segmentation, so MTF/GAF shrink exactly as pyts does); growing replicates the nearest pixel
  centre, ``src = floor((i + 1/2) * n_in / n_out)``. Every input row counts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from renderers import _alloc

if TYPE_CHECKING:
    import torch


@lru_cache(maxsize=512)
def bounds(n_in: int, n_out: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` int64 arrays of length ``n_out``: output i averages inputs ``start[i]:end[i]``.

    Args:
        n_in: input length (>= 1).
        n_out: output length (>= 1).
        mode: ``"nearest"`` or ``"box"``.
    """
    i = np.arange(n_out, dtype=np.int64)
    if n_in == n_out:
        start = i
    elif mode == "nearest":
        scale = np.float32(n_in) / np.float32(n_out)
        start = np.minimum(np.floor(i.astype(np.float32) * scale).astype(np.int64), n_in - 1)
    elif mode == "box" and n_out < n_in:
        edges = np.linspace(0, n_in, n_out + 1).astype(np.int64)
        start, end = edges[:-1], edges[1:]
        return start, end
    elif mode == "box":
        start = ((2 * i + 1) * n_in) // (2 * n_out)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    end = start + 1
    return start, end


@lru_cache(maxsize=512)
def weights(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """The same resize as a float64 ``(n_out, n_in)`` matrix (rows sum to 1)."""
    start, end = bounds(n_in, n_out, mode)
    w = np.zeros((n_out, n_in))
    for row, (a, b) in enumerate(zip(start, end)):
        w[row, a:b] = 1.0 / (b - a)
    return w


def is_gather(n_in: int, n_out: int, mode: str) -> bool:
    """True when every output row copies one input row (no averaging)."""
    start, end = bounds(n_in, n_out, mode)
    return bool(np.all(end - start == 1))


def resize_numpy(image: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Resize a 2-D image to ``(size, size)`` by block means (the readable reference)."""
    rs, re_ = bounds(image.shape[0], size, mode)
    cs, ce = bounds(image.shape[1], size, mode)
    rows = np.stack([image[a:b].mean(axis=0) for a, b in zip(rs, re_)])
    return np.stack([rows[:, a:b].mean(axis=1) for a, b in zip(cs, ce)], axis=1)


def resize_torch(images: "torch.Tensor", size: int, mode: str) -> "torch.Tensor":
    """Block-mean resize of ``(g, h, w)`` images (a gather where no averaging is needed)."""
    import torch

    g, h, w = images.shape
    if is_gather(h, size, mode):
        index = torch.from_numpy(bounds(h, size, mode)[0]).to(images.device).view(1, size, 1)
        images = torch.gather(images, 1, index.expand(g, size, w))  # gather: far faster than index_select
    else:
        rows = torch.from_numpy(weights(h, size, mode)).to(images.device, images.dtype)
        images = torch.matmul(rows, images)
    if is_gather(w, size, mode):
        out = _alloc.empty((g, size, size), dtype=images.dtype, device=images.device)
        pick_columns_into(images.reshape(g * size, w), bounds(w, size, mode)[0], out.view(g * size, size))
        return out
    cols = torch.from_numpy(weights(w, size, mode)).to(images.device, images.dtype)
    return torch.matmul(images, cols.T)


def pick_columns_into(rows: "torch.Tensor", cols: np.ndarray, out: "torch.Tensor") -> None:
    """``out[:, j] = rows[:, cols[j]]`` for 2-D ``rows`` ``(m, w)`` and ``out`` ``(m, len(cols))``.

    On the CPU, for narrow ``rows``, the faster of two exact ways on this machine (see
    :func:`_product_is_faster`): ``index_select``, or a product with a 0/1 matrix (exact for finite
    values: one ``x * 1`` term plus zeros per element, no TF32 on the CPU). Elsewhere ``index_select``.
    """
    import torch

    w = rows.shape[1]
    if w == len(cols) and (cols == np.arange(w)).all():
        out.copy_(rows)
    elif out.device.type == "cpu" and w <= 64 and out.dtype == torch.float32 \
            and _product_is_faster(w, len(cols), torch.get_num_threads()):
        torch.mm(rows, _pick_matrix(cols, w, out.dtype), out=out)
    else:
        torch.index_select(rows, 1, torch.from_numpy(cols).to(out.device), out=out)


def _pick_matrix(cols: np.ndarray, w: int, dtype) -> "torch.Tensor":
    """The ``(w, len(cols))`` 0/1 matrix whose product picks the columns ``cols``."""
    import torch

    pick = torch.zeros((w, len(cols)), dtype=dtype)
    pick[torch.from_numpy(np.asarray(cols)), torch.arange(len(cols))] = 1
    return pick


@lru_cache(maxsize=64)
def _product_is_faster(w: int, n_out: int, threads: int) -> bool:
    """Whether, on this CPU with ``threads`` torch threads, the 0/1 product fills ``w -> n_out``
    columns faster than ``index_select``.

    Neither wins everywhere: with MKL on one thread, the product was about 2x faster than a gather
    on the machine of the project's earlier records, and is about 2x slower than ``index_select``
    on an AMD EPYC (Zen 4), where on two threads it wins again. Both give the same values, so the choice is
    timed once per shape and thread count (a few ms, on 2 MiB of output).
    """
    import time

    import torch

    m = max(1, (1 << 19) // n_out)
    rows = torch.arange(m * w, dtype=torch.float32).view(m, w)  # not torch.rand: the user's RNG stays untouched
    out = torch.empty(m, n_out, dtype=torch.float32)
    cols = np.minimum(np.arange(n_out) * w // n_out, w - 1)
    pick, index = _pick_matrix(cols, w, torch.float32), torch.from_numpy(cols)
    best = {"product": float("inf"), "index_select": float("inf")}
    for _ in range(3):  # alternating, best of three each: a load spike hits both alike
        for name in best:
            start = time.perf_counter()
            if name == "product":
                torch.mm(rows, pick, out=out)
            else:
                torch.index_select(rows, 1, index, out=out)
            best[name] = min(best[name], time.perf_counter() - start)
    return best["product"] < best["index_select"]

"""TiViT segment stacking: a series becomes a grey image whose rows are overlapping windows.

The published recipe (roschmsi/TiViT, ``ts2image_transformation``), per series of length T:

1. robust scaling ``z = (x - median) / (q75 - q25 + eps)``;
2. ``P = floor(sqrt(T))``; with ``0 < stride < 1`` the step is ``max(1, int(P * stride))``, the start is
   padded by repeating ``z[0]`` until ``(T' - P) % step == 0``, and window k (``z'[k*step : k*step+P]``)
   is image row k; with ``stride == 1`` the start is padded to a multiple of P and segment k is
   image COLUMN k;
3. ``v = ((img - min) / (max - min + eps)) ** gamma``;
4. resize to ``size x size`` (published: NEAREST without antialias).

Every pixel is a value of the scaled series, so the image is an index map into the series: the
batched backends scale the series once and gather (nearest) or block-average (box) it.
"""

from __future__ import annotations

from functools import lru_cache
from math import isqrt
from typing import TYPE_CHECKING

import numpy as np

from renderers import _alloc
from renderers._config import TiViTConfig
from renderers._resize import bounds, is_gather, pick_columns_into, resize_numpy, resize_torch
from renderers._series import SeriesError

if TYPE_CHECKING:
    import torch


def layout(length: int, cfg: TiViTConfig) -> tuple[int, int, int, bool]:
    """``(P, step, pad, columns)`` for a series of ``length`` values.

    Args:
        length: the series' own length T.
        cfg: the renderer config.
    """
    p = min(cfg.segment or isqrt(length), length)
    if cfg.stride == 1:
        return p, p, (-length) % p, True
    step = max(1, int(p * cfg.stride))
    remainder = (length - p) % step
    return p, step, (step - remainder) % step, False


@lru_cache(maxsize=256)
def index_map(length: int, cfg: TiViTConfig) -> np.ndarray:
    """``(h, w)`` int64: which value of the (unpadded) series each pixel of the stacked image shows."""
    p, step, pad, columns = layout(length, cfg)
    padded = length + pad
    if columns:
        idx = np.arange(padded).reshape(padded // p, p).T  # segment k -> column k
    else:
        rows = (padded - p) // step + 1
        idx = np.arange(rows)[:, None] * step + np.arange(p)[None, :]
    idx = np.maximum(idx - pad, 0)  # the start padding repeats the first value
    return idx


def image_shape(length: int, cfg: TiViTConfig) -> tuple[int, int]:
    """``(rows, columns)`` of the stacked image before the resize."""
    return index_map(length, cfg).shape


def numpy_image(x: np.ndarray, cfg: TiViTConfig, size: int) -> np.ndarray:
    """Reference: one series (its own length, finite) -> ``(size, size)`` image in [0, 1].

    With the published lower median (the ``paper`` preset) every step runs in float32, as the
    published code does (and the torch and CUDA backends); otherwise in float64.
    """
    z = _robust_scaled(x, cfg)
    real = z.dtype.type  # the constants in the arithmetic's own precision, as torch takes them

    p, step, pad, columns = layout(len(z), cfg)
    padded = np.concatenate([np.full(pad, z[0]), z])
    if columns:
        image = padded.reshape(-1, p).T
    else:
        image = np.lib.stride_tricks.sliding_window_view(padded, p)[::step]

    image = (image - image.min()) / (image.max() - image.min() + real(cfg.eps))
    image = resize_numpy(image ** real(cfg.gamma), size, cfg.resize)
    if cfg.quantize:
        image = np.floor(image * real(255)) / real(255)
    return image.astype(np.float32)


def _robust_scaled(x: np.ndarray, cfg: TiViTConfig) -> np.ndarray:
    """``z = (x - median) / (q75 - q25 + eps)``: float32 with the lower median (a float64 value beyond
    its range is an error, see :func:`check_float32_range`), else float64."""
    if cfg.median == "lower":
        with np.errstate(over="ignore"):
            x = np.asarray(x).astype(np.float32)
        check_float32_range(bool(np.isfinite(x).all()))
        ordered = np.sort(x)
        median = ordered[(len(x) - 1) // 2]
        q75, q25 = _sorted_quantile32(ordered, 0.75), _sorted_quantile32(ordered, 0.25)
    else:
        x = np.asarray(x, dtype=np.float64)
        median = np.quantile(x, 0.5)
        q75, q25 = np.quantile(x, [0.75, 0.25])
    with np.errstate(over="ignore"):
        z = (x - median) / ((q75 - q25) + x.dtype.type(cfg.eps))
        check_scaling_range(bool(np.isfinite(z.max() - z.min() + x.dtype.type(cfg.eps))), cfg)
    return z


def _sorted_quantile32(ordered: np.ndarray, q: float) -> np.float32:
    """torch's linear quantile of a sorted float32 series, in float32 as torch computes it:
    rank ``q (n - 1)``, then ``lerp`` between its neighbours (from the upper one when ``t >= 0.5``)."""
    n = len(ordered)
    pos = np.float32(q) * np.float32(n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    t = pos - np.float32(lo)
    a, b = ordered[lo], ordered[hi]
    return b - (b - a) * (np.float32(1) - t) if t >= 0.5 else a + (b - a) * t


def check_float32_range(finite_in_float32: bool) -> None:
    """The published recipe (lower median) computes in float32: a finite float64 value beyond its
    range is an error there, not an image of NaN (every backend checks through this)."""
    if not finite_in_float32:
        raise SeriesError(
            "series values exceed float32's range, in which the published recipe (median='lower', "
            "the 'paper' preset) computes; rescale them or use median='mid' (the 'default' preset)"
        )


def check_scaling_range(finite: bool, cfg: TiViTConfig) -> None:
    """The robust scaling ``(x - median) / (IQR + eps)`` must stay finite: with a zero interquartile
    range a single spike in a flat series reaches ``spike / eps``, beyond float32 in the published
    recipe (its images would be NaN). Every backend checks through this."""
    if not finite:
        where = "float32, in which the published recipe computes" if cfg.median == "lower" else "float64"
        raise SeriesError(
            f"the robust scaling (x - median) / (IQR + eps) of a series overflows {where}: its interquartile "
            f"range is (nearly) zero and some value lies far from the median (a spike in a flat series?); "
            + ("use the default preset (float64), " if cfg.median == "lower" else "")
            + "raise eps, or rescale the series"
        )


def _scaled_torch(x: "torch.Tensor", cfg: TiViTConfig) -> "torch.Tensor":
    """``(g, T)`` series -> their pixel values: robust scaling, min-max, gamma (float32 result).

    With the published lower median (the ``paper`` preset) every step is the published code's
    float32 operation, for its exact pixels; otherwise the scaling runs in float64, as the NumPy
    reference does, so that a series far from zero keeps its digits.
    """
    import torch

    published = cfg.median == "lower"
    if published:
        x32 = x.float()
        if x.dtype == torch.float64:
            check_float32_range(bool(torch.isfinite(x32).all()))
        x = x32
        median = x.median(dim=1, keepdim=True).values
    else:
        x = x.double()
        median = torch.quantile(x, 0.5, dim=1, keepdim=True)
    q75, q25 = torch.quantile(x, torch.tensor([0.75, 0.25], device=x.device, dtype=x.dtype), dim=1, keepdim=True)
    z = (x - median) / ((q75 - q25) + cfg.eps)
    low, high = z.amin(dim=1, keepdim=True), z.amax(dim=1, keepdim=True)
    check_scaling_range(bool(torch.isfinite(high - low + cfg.eps).all()), cfg)
    scaled = (z - low) / (high - low + cfg.eps)
    return _vector_pow(scaled if published else scaled.float(), cfg.gamma)


def _quantized(t: "torch.Tensor", cfg: TiViTConfig) -> "torch.Tensor":
    """The 8-bit levels of pixel values when the config asks for them (``floor(255 t) / 255``)."""
    import torch

    return torch.floor(t * 255) / 255 if cfg.quantize else t


def torch_images(x: "torch.Tensor", cfg: TiViTConfig, size: int) -> "torch.Tensor":
    """Batched: ``(g, T)`` series of one length -> ``(g, size, size)`` float32.

    The float32 operations are those of the published code, in its order, so that the ``paper``
    preset reproduces its pixels bit for bit (on the CPU, torch's vectorised ``pow`` and its scalar
    loop for the last < 32 elements of a tensor differ by 1 ulp; ``_vector_pow`` always takes the
    vectorised path, as the published code does for all but those last elements of a batch).
    """
    import torch

    v = _scaled_torch(x, cfg)
    parts = _gather_parts(x.shape[1], cfg, size)
    if parts is not None:  # nearest: every pixel is a series value (quantising commutes with picking)
        image = _alloc.empty((len(v), size, size), dtype=torch.float32, device=x.device)
        _nearest_into(_quantized(v, cfg), None, None, cfg, *parts, image.view(-1, size))
        return image
    idx = index_map(x.shape[1], cfg)
    stacked = v.index_select(1, torch.from_numpy(idx.reshape(-1)).to(x.device)).view(-1, *idx.shape)
    # a shrink averages blocks with float32 weights fl(1/k): a block of ones can sum to 1 + 1 ulp
    return _quantized(resize_torch(stacked, size, cfg.resize).clamp_(0, 1), cfg)


def torch_encoder_into(x: "torch.Tensor", cfg: TiViTConfig, size: int, mean: "torch.Tensor", std: "torch.Tensor",
                       out: "torch.Tensor") -> bool:
    """Write ``(g, 3, size, size)`` encoder input into contiguous float32 ``out``.

    Normalising commutes with a gather, so the 3 normalised channels are made on the T series values
    and gathered straight into ``out`` (same numbers as normalising the image). Returns False (and
    writes nothing) when the resize averages, where the caller takes the general path.
    """
    parts = _gather_parts(x.shape[1], cfg, size)
    if parts is None:
        return False
    _nearest_into(_quantized(_scaled_torch(x, cfg), cfg), mean, std, cfg, *parts, out.view(-1, size))
    return True


def _nearest_into(v: "torch.Tensor", mean: "torch.Tensor | None", std: "torch.Tensor | None", cfg: TiViTConfig,
                  rows: np.ndarray, cols: np.ndarray, flat: "torch.Tensor") -> None:
    """Write the nearest-resized images of ``(g, T)`` pixel values into ``flat`` ``(c * g * size, size)``:
    ``c = 3`` normalised channels given ``mean``/``std``, else the values themselves (``c = 1``).

    Rows first: the kept windows at their own width w (small), then the columns.
    """
    pick_columns_into(_window_rows(v, mean, std, cfg, rows), cols, flat)


def _window_rows(v: "torch.Tensor", mean: "torch.Tensor | None", std: "torch.Tensor | None", cfg: TiViTConfig,
                 rows: np.ndarray) -> "torch.Tensor":
    """``(c * g * size, w)``: the kept windows of the channels of ``(g, T)`` pixel values (see
    :func:`_nearest_into`).

    Windows laid out as rows are runs of the start-padded series, so on the padded channels each is
    one row of an overlapping ``as_strided`` view, and ``index_select`` along dim 0 copies it whole
    (about 2.5x faster than picking ``size * w`` single values per series along dim 1).
    """
    import torch

    g, length = v.shape
    p, _, pad, columns = layout(length, cfg)
    if columns:
        index = torch.from_numpy(rows.reshape(-1)).to(v.device)
        return _channels(v, mean, std).index_select(1, index).view(-1, rows.shape[1])
    if pad:
        v = torch.cat([v[:, :1].expand(g, pad), v], dim=1)  # the start padding repeats the first value
    channels = _channels(v, mean, std)  # (c * g, T + pad)
    flat = channels.reshape(-1)
    windows = flat.as_strided((flat.numel() - p + 1, p), (1, 1))  # row k: the p values from k on
    # a window's last value is never start padding (pad < step <= p), so it fixes where the window starts
    starts = torch.from_numpy(rows[:, -1] + pad - (p - 1)).to(v.device)
    index = (torch.arange(len(channels), device=v.device) * (length + pad))[:, None] + starts[None, :]
    return windows.index_select(0, index.view(-1))


def _channels(v: "torch.Tensor", mean: "torch.Tensor | None", std: "torch.Tensor | None") -> "torch.Tensor":
    """``(3g, T)``: the 3 normalised channels ``(v - mean_c) / std_c`` of ``(g, T)`` pixel values, or
    ``v`` itself without ``mean``."""
    if mean is None:
        return v
    return ((v[:, None, :] - mean.view(1, -1, 1)) / std.view(1, -1, 1)).view(len(v) * 3, -1)


def _gather_parts(length: int, cfg: TiViTConfig, size: int):
    """Nearest resize as ``(rows (size, w) series indices of the kept windows, cols (size,))``, or None."""
    idx = index_map(length, cfg)
    h, w = idx.shape
    if not (is_gather(h, size, cfg.resize) and is_gather(w, size, cfg.resize)):
        return None
    return np.ascontiguousarray(idx[bounds(h, size, cfg.resize)[0]]), np.asarray(bounds(w, size, cfg.resize)[0])


def _vector_pow(values: "torch.Tensor", gamma: float) -> "torch.Tensor":
    """``values ** gamma`` with every element on torch's vectorised CPU path (see ``torch_images``)."""
    import torch

    flat = values.reshape(-1)
    n = flat.numel()
    padded = torch.nn.functional.pad(flat, (0, (-n) % 64), value=1.0)
    return torch.pow(padded, gamma)[:n].view_as(values)

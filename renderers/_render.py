"""The backend dispatcher: check the series once, then render rows of equal length together.

``render`` returns ``(n, 1, S, S)`` images in [0, 1]; ``render_for_encoder`` streams the same
images batch by batch into a 3-channel, normalised tensor of the encoder's dtype and device, so
that no full-size float64 (or even float32) copy of all images ever exists.
"""

from __future__ import annotations

import math
import numbers
import warnings
from types import ModuleType
from typing import Any, Optional, Sequence

import numpy as np

from renderers import _alloc, _gaf, _lineplot, _mtf, _recurrence, _tivit
from renderers._config import Config, make_config
from renderers._series import (
    SeriesError,
    array_kind,
    as_rows_numpy,
    check_has_data,
    check_shape,
    groups,
    own_lengths,
)

BACKENDS = ("auto", "numpy", "torch", "cupy")
_FAMILIES: dict[str, ModuleType] = {
    "tivit": _tivit, "gasf": _gaf, "gadf": _gaf, "mtf": _mtf, "recurrence": _recurrence, "lineplot": _lineplot,
}
_CHUNK_ELEMENTS = 1 << 23  # largest intermediate (elements) one torch call may build


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def _cupy_usable() -> bool:
    try:
        import cupy
    except ImportError:
        return False
    try:
        return bool(cupy.is_available())
    except Exception:  # a broken driver install answers with an error, not False
        return False


def resolve_backend(backend: str, series: Any = None, device: Any = None) -> str:
    """The concrete backend for ``backend`` (``auto``: cupy for data or a target on a GPU, else torch).

    Args:
        backend: one of ``BACKENDS``.
        series: the input (its library and device matter for ``auto``).
        device: the target device of the encoder input, if any.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "cupy" and (device is None or str(device).startswith("cuda")) and not _cupy_usable():
        raise ValueError("backend 'cupy' needs CuPy and a working CUDA GPU (pip install -e '.[gpu]'); "
                         "backend 'torch' renders on a GPU too")
    if backend != "auto":
        return backend
    if device is not None:  # the encoder input's device decides: the cupy kernels write on a GPU only
        on_gpu = str(device).startswith("cuda")
    else:
        kind = array_kind(series)
        on_gpu = kind == "cupy" or (kind == "torch" and series.is_cuda)
    return "cupy" if on_gpu and _cupy_usable() else "torch"


def _chunk_rows(length: int, size: int, cfg: Config) -> int:
    """Rows per torch call: bounds the intermediates that outgrow the output (recurrence: N x N)."""
    if cfg.method != "recurrence" or length <= size:
        return 1 << 62
    return max(1, _CHUNK_ELEMENTS // (length * length))


def _render_numpy(series: Any, cfg: Config, size: int) -> np.ndarray:
    x = as_rows_numpy(_to_host(series))
    lengths = own_lengths(x)
    family = _FAMILIES[cfg.method]
    out = np.empty((len(x), 1, size, size), dtype=np.float32)
    for i, length in enumerate(lengths):
        out[i, 0] = family.numpy_image(x[i, :length], cfg, size)
    return out


def _as_torch(series: Any, device: Any = None):
    import torch

    kind = array_kind(series)
    if kind == "cupy":
        x = torch.from_dlpack(series)
    elif kind == "torch":
        x = check_has_data(series).detach()
    else:
        x = np.ascontiguousarray(as_rows_numpy(series))  # torch takes no negative strides (a reversed view)
        with warnings.catch_warnings():  # a read-only array is fine: the renderers never write to the series
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(x)
    if x.is_complex():
        raise SeriesError(f"series must be real, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if not torch.is_floating_point(x):
        x = x.double()
    if device is not None:
        x = x.to(device, non_blocking=True)
    return x


def _render_torch(x, lengths: np.ndarray, cfg: Config, size: int):
    """``(n, 1, S, S)`` float32 on ``x``'s device from a checked torch tensor and its lengths."""
    import torch

    family = _FAMILIES[cfg.method]
    parts = groups(lengths)
    with torch.no_grad():
        if len(parts) == 1 and len(x) <= _chunk_rows(parts[0][0], size, cfg):
            return family.torch_images(x[:, : parts[0][0]], cfg, size).float().unsqueeze(1)  # rows already in order
        out = _alloc.empty((x.shape[0], 1, size, size), dtype=torch.float32, device=x.device)
        for length, rows in parts:
            step = _chunk_rows(length, size, cfg)
            for start in range(0, len(rows), step):
                index = torch.from_numpy(rows[start : start + step]).to(x.device)
                out[index, 0] = family.torch_images(x[index, :length], cfg, size)
    return out


def render(
    series: Any,
    method: Any = "tivit",
    size: int = 224,
    backend: str = "auto",
    preset: Optional[str] = None,
    **params: Any,
):
    """Render each series (row) as a grey image.

    Args:
        series: ``(n, t)`` (or one ``(t,)``) NumPy, torch or CuPy float array; a NaN tail is
            padding and every row is rendered from its own length. NaN inside a row, inf, or an
            all-NaN row raise ``SeriesError``.
        method: a name from ``METHODS`` or a config from ``make_config``.
        size: output side S in pixels.
        backend: ``numpy`` (reference, returns NumPy), ``torch`` (batched, on the series' device;
            NumPy input runs on the CPU), ``cupy`` (CUDA kernels, returns CuPy), or ``auto`` (cupy
            for data on a GPU when CuPy works, else torch; always returns a torch tensor).
        preset: named parameter set of the method (``tivit``: ``"paper"`` or ``"default"``).
        **params: the method's parameters (see its config class); they override the preset.

    Returns:
        ``(n, 1, S, S)`` float32 images in [0, 1].
    """
    cfg = make_config(method, preset, **params)
    size = _check_size(size)
    chosen = resolve_backend(backend, series)
    if chosen == "numpy":
        return _render_numpy(series, cfg, size)
    if chosen == "cupy":
        from renderers import _cuda

        images = _cuda.render(series, cfg, size)
        if backend == "auto":
            import torch

            return torch.from_dlpack(images)
        return images
    x = check_shape(_as_torch(series))
    return _render_torch(x, own_lengths(x), cfg, size)


def render_for_encoder(
    series: Any,
    method: Any,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    dtype: Any = None,
    device: Any = None,
    out: Any = None,
    backend: str = "auto",
    batch_size: Optional[int] = None,
    preset: Optional[str] = None,
    **params: Any,
):
    """Render series straight into an encoder's input: 3 channels, ``(image - mean) / std``.

    Works a batch of ``batch_size`` series at a time: each batch is rendered in float32, normalised
    and written (cast to ``dtype``) into ``out``; only one batch of images is alive at once.

    Args:
        series: as in :func:`render`.
        method: a method name or a config.
        size: the encoder's input side.
        mean: per-channel mean (3 values; 1 value is repeated).
        std: per-channel standard deviation.
        dtype: output dtype (torch dtype; default float32, or ``out``'s).
        device: output device (default: ``out``'s, else the series', else CPU). It decides
            ``auto``: the cupy kernels for a CUDA device (when CuPy works), torch otherwise.
        out: an ``(n, 3, size, size)`` floating-point torch tensor to fill (it is returned); a
            ``dtype`` or ``device`` given with it must be its own.
        backend: as in :func:`render`; ``numpy`` renders with the reference and copies over.
        batch_size: series per batch (default 256).
        preset: named parameter set of the method.
        **params: the method's parameters.

    Returns:
        The ``(n, 3, size, size)`` torch tensor.
    """
    import torch

    cfg = make_config(method, preset, **params)
    size = _check_size(size)
    mean3, std3 = _three(mean, "mean"), _three(std, "std")
    if any(s == 0 for s in std3):
        raise ValueError(f"std must not contain 0, got {std3}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    if batch_size is None:
        batch_size = 256
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if out is not None:
        _check_out(out, dtype, device)
        device, dtype = out.device, out.dtype
    elif device is None:
        kind = array_kind(series)
        device = series.device if kind == "torch" else ("cuda" if kind == "cupy" else "cpu")
    device = torch.device(device)
    dtype = dtype or torch.float32
    chosen = resolve_backend(backend, series, device)

    if chosen == "cupy":
        from renderers import _cuda

        if device.type != "cuda":
            raise ValueError(f"backend='cupy' writes the encoder input on a CUDA device, not {device}; "
                             "use backend='torch' (or 'auto') for another device")
        return _cuda.render_for_encoder(series, cfg, size, mean3, std3, dtype, device, out, int(batch_size))
    x = check_shape(_as_torch(series) if chosen == "torch" else as_rows_numpy(_to_host(series)))
    n = x.shape[0]
    if out is None:
        out = _alloc.empty((n, 3, size, size), dtype=dtype, device=device)
    elif tuple(out.shape) != (n, 3, size, size):
        raise ValueError(f"out must have shape {(n, 3, size, size)}, got {tuple(out.shape)}")
    lengths = own_lengths(x)
    m = torch.tensor(mean3, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std3, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    fast = chosen == "torch" and cfg.method == "tivit" and out.dtype == torch.float32 and out.is_contiguous()
    for start in range(0, n, int(batch_size)):
        stop = min(n, start + int(batch_size))
        if fast and (lengths[start:stop] == x.shape[1]).all():
            rows = x[start:stop].to(device, non_blocking=True)
            if _tivit.torch_encoder_into(rows, cfg, size, m.view(3), s.view(3), out[start:stop]):
                continue
        if chosen == "numpy":
            images = torch.from_numpy(_render_numpy(x[start:stop], cfg, size)).to(device)
        else:
            images = _render_torch(x[start:stop].to(device, non_blocking=True), lengths[start:stop], cfg, size)
        if out.dtype == torch.float32:
            torch.sub(images, m, out=out[start:stop]).div_(s)  # straight into out: no batch temporaries
        else:
            out[start:stop] = ((images - m) / s).to(dtype)
    return out


def _check_out(out: Any, dtype: Any, device: Any) -> None:
    """``out`` decides dtype and device: a floating tensor, and no other dtype or device asked for."""
    import torch

    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ValueError(f"out must be a floating-point torch tensor, got {getattr(out, 'dtype', type(out))}")
    if out.device.type == "meta":
        raise ValueError("out is a tensor on the meta device: it has no memory to write the images into")
    if out.requires_grad:  # torch refuses out= arguments that require grad; the images have no gradient
        raise ValueError("out must not require grad: pass out.detach() (the same memory) instead")
    if dtype is not None and dtype != out.dtype:
        raise ValueError(f"dtype={dtype} conflicts with out's dtype {out.dtype}; give one of them")
    want = None if device is None else torch.device(device)
    if want is not None and (want.type != out.device.type or want.index not in (None, out.device.index)):
        raise ValueError(f"device={device} conflicts with out's device {out.device}; give one of them")


def _to_host(series: Any) -> Any:
    """The series as a host array NumPy understands (bfloat16, which it lacks, as float32: exact)."""
    kind = array_kind(series)
    if kind == "torch":
        import torch

        x = check_has_data(series).detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if kind == "cupy":
        return series.get()
    return series


def _three(values: Any, name: str) -> tuple[float, float, float]:
    """Per-channel values: 3, or 1 repeated; finite (a NaN or inf makes every pixel NaN)."""
    if hasattr(values, "tolist"):  # a NumPy array or a tensor, 0-d included
        values = values.tolist()
    values = tuple(float(v) for v in (values if isinstance(values, (list, tuple)) else [values]))
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"{name} must have 1 or 3 values, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite, got {values}")
    return values  # type: ignore[return-value]

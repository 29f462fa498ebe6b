"""Input checks shared by every backend: shape, own lengths from the NaN tail, bad values.

A row's own length is the index of its last non-NaN value plus one. NaN after it is padding;
NaN before it (a gap), an infinite value, or a row that is all NaN is an error: ``tivit.data``
interpolates gaps before rendering, and an infinity has no place on a grey scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class SeriesError(ValueError):
    """The series cannot be rendered; the message names the rows and the reason."""


def array_kind(series: Any) -> str:
    """``"numpy"``, ``"torch"`` or ``"cupy"``: which library the array belongs to."""
    module = type(series).__module__.split(".")[0]
    if module == "torch":
        return "torch"
    if module == "cupy":
        return "cupy"
    return "numpy"


def as_rows_numpy(series: Any) -> np.ndarray:
    """A 2-D float array ``(n, t)`` (a 1-D input is one series), float32 or float64 kept; any other
    numeric dtype (integers, float16, long double, which torch cannot take) becomes float64. A masked
    array's masked values and a pandas frame's missing values are NaN (a NaN tail is padding)."""
    if isinstance(series, np.ma.MaskedArray):
        keep = series.dtype in (np.float32, np.float64)
        series = (series if keep else series.astype(np.float64)).filled(np.nan)
    elif hasattr(series, "to_numpy") and not hasattr(series, "__array_namespace__"):  # pandas
        plain = series.to_numpy()
        if plain.dtype == object:  # nullable dtypes (Float64, pd.NA): float64 with NaN for the missing
            try:
                plain = series.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                pass  # not numeric: refused below with its dtype
        series = plain
    try:
        x = np.asarray(series)
    except ValueError as err:  # a ragged list of series
        raise SeriesError(f"series could not be made one (n, t) array ({str(err).splitlines()[0]}); pad "
                          "shorter series at the end with NaN") from None
    if x.dtype.kind not in "fiub":
        raise SeriesError(f"series must be numeric, got dtype {x.dtype}")
    if x.dtype not in (np.float32, np.float64):
        with np.errstate(over="ignore"):  # a long double beyond float64's range is inf: an error below
            x = x.astype(np.float64)
    return check_shape(x)


def check_has_data(series: Any) -> Any:
    """The torch tensor itself; one on the meta device (shape only) is an error."""
    if series.device.type == "meta":
        raise SeriesError("series is a tensor on the meta device: a meta tensor holds no data to render")
    return series


def check_shape(x: Any) -> Any:
    """A 1-D series becomes one row; anything but a non-empty 2-D array is an error."""
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise SeriesError(f"series must be a 2-D array (n, t) (or one 1-D series), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise SeriesError(f"series is empty: shape {tuple(x.shape)}")
    return x


def lengths_from_mask(isnan: np.ndarray, isinf: np.ndarray) -> np.ndarray:
    """Own lengths from host masks ``(n, t)``; raises on gaps, infinities and empty rows."""
    n, t = isnan.shape
    present = ~isnan
    last = t - np.argmax(present[:, ::-1], axis=1)
    empty = ~present.any(axis=1)
    if empty.any():
        raise SeriesError(f"series {np.flatnonzero(empty)[:5].tolist()} are empty (all NaN)")
    _raise_on_bad(isnan, isinf, last)
    return last.astype(np.int64)


def _raise_on_bad(isnan: np.ndarray, isinf: np.ndarray, lengths: np.ndarray) -> None:
    inside = np.arange(isnan.shape[1])[None, :] < lengths[:, None]
    gaps = (isnan & inside).any(axis=1)
    if gaps.any():
        rows = np.flatnonzero(gaps)[:5].tolist()
        raise SeriesError(
            f"series {rows} have NaN inside their length (only a NaN tail is padding); "
            "interpolate gaps first (tivit.data.interpolate_missing)"
        )
    infinite = isinf.any(axis=1)
    if infinite.any():
        raise SeriesError(f"series {np.flatnonzero(infinite)[:5].tolist()} contain inf values")


def own_lengths(x: Any) -> np.ndarray:
    """Own length of each row of a numpy, torch or cupy 2-D array (checked; host int64)."""
    kind = array_kind(x)
    if kind == "numpy":
        with np.errstate(over="ignore"):  # finite values near float64's largest: the slow path decides
            fast = np.isfinite(x.sum(axis=1)).all()
        if fast:  # a finite row sum: no NaN, no inf (the common case)
            return np.full(x.shape[0], x.shape[1], dtype=np.int64)
        return lengths_from_mask(np.isnan(x), np.isinf(x))
    if kind == "torch":
        import torch

        if bool(torch.isfinite(x.sum(dim=1)).all()):  # a finite row sum: no NaN, no inf (the common case)
            return np.full(x.shape[0], x.shape[1], dtype=np.int64)
        nan = torch.isnan(x)
        present = ~nan
        t = x.shape[1]
        idx = torch.arange(1, t + 1, device=x.device)
        last = (present * idx).amax(dim=1)
        bad_gap = (nan & (idx[None, :] <= last[:, None])).any(dim=1)
        bad_inf = torch.isinf(x).any(dim=1)
        summary = torch.stack([last, bad_gap.long(), bad_inf.long()]).cpu().numpy()
    else:
        import cupy

        nan = cupy.isnan(x)
        t = x.shape[1]
        idx = cupy.arange(1, t + 1)
        last = ((~nan) * idx).max(axis=1)
        bad_gap = (nan & (idx[None, :] <= last[:, None])).any(axis=1)
        bad_inf = cupy.isinf(x).any(axis=1)
        summary = cupy.stack([last, bad_gap.astype(last.dtype), bad_inf.astype(last.dtype)]).get()
    last, gap, inf = summary
    if (last == 0).any():
        raise SeriesError(f"series {np.flatnonzero(last == 0)[:5].tolist()} are empty (all NaN)")
    if gap.any():
        raise SeriesError(
            f"series {np.flatnonzero(gap)[:5].tolist()} have NaN inside their length (only a NaN tail is "
            "padding); interpolate gaps first (tivit.data.interpolate_missing)"
        )
    if inf.any():
        raise SeriesError(f"series {np.flatnonzero(inf)[:5].tolist()} contain inf values")
    return last.astype(np.int64)


def groups(lengths: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``[(length, row indices)]``: rows of equal own length, rendered together."""
    order = np.argsort(lengths, kind="stable")
    values, starts = np.unique(lengths[order], return_index=True)
    return [(int(v), idx) for v, idx in zip(values, np.split(order, starts[1:]))]

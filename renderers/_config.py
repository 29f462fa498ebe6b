"""Renderer configurations: one small frozen dataclass per method, and the named presets.

A config is data: it prints, hashes, compares, and turns into a JSON-able dict (``to_dict``) that
keys the embedding cache. ``make_config`` is the single way to build one from a name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Optional, Union

import numpy as np

RESIZES = ("nearest", "box")


def _check_resize(resize: str) -> None:
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")


def _number(name: str, value: Any) -> float:
    """``value`` as a float; text and booleans are refused (``float("0.5")`` or ``float(True)``
    would silently turn them into numbers)."""
    if not isinstance(value, (str, bytes, bool, np.bool_)):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{name} must be a number, got {value!r}")


def _is_whole(value: Any, minimum: int) -> bool:
    """Whether ``value`` is a whole number >= ``minimum`` (``16.0`` and NumPy integers are; text,
    booleans, NaN and inf are not)."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return math.isfinite(number) and number == int(number) and number >= minimum


class _Config:
    """Shared behaviour: ``method`` name and a plain-dict view."""

    method: str = ""

    def to_dict(self) -> dict:
        """JSON-able parameters plus the method name (keys the embedding cache)."""
        return {"method": self.method, **asdict(self)}

    def _coerce(self, ints: tuple[str, ...] = (), floats: tuple[str, ...] = (), flags: tuple[str, ...] = ()) -> None:
        """Store checked numbers as plain ``int`` / ``float`` / ``bool``: ``segment=16.0`` or a NumPy
        scalar then builds the same config, the same cache key and JSON as ``segment=16``."""
        for kinds, names in ((int, ints), (float, floats), (bool, flags)):
            for name in names:
                value = getattr(self, name)
                if value is not None:
                    object.__setattr__(self, name, kinds(value))


@dataclass(frozen=True)
class TiViTConfig(_Config):
    """Segment stacking of the TiViT paper (arXiv 2506.08641).

    Attributes:
        segment: window length P; ``None`` -> ``floor(sqrt(T))`` of each series' own length
            (clamped to T when a given P exceeds it).
        stride: step as a fraction of P, ``0 < stride <= 1``; step = ``max(1, int(P * stride))``.
            ``1.0``: non-overlapping segments, each one a COLUMN (as published).
        gamma: contrast exponent after min-max scaling.
        eps: added to the IQR and to the min-max range.
        median: ``"lower"`` (``torch.median``: lower middle value, as published) or ``"mid"``
            (mean of the two middle values, the usual median).
        resize: ``"nearest"`` (published; drops rows/columns when shrinking) or ``"box"``
            (block means when shrinking, pixel replication when growing: never drops a row).
        quantize: truncate to 256 grey levels (``floor(255 x) / 255``), as the authors' Hugging
            Face path does through ``ToPILImage``.
    """

    segment: Optional[int] = None
    stride: float = 0.1
    gamma: float = 0.8
    eps: float = 1e-5
    median: str = "mid"
    resize: str = "box"
    quantize: bool = False
    method = "tivit"

    def __post_init__(self) -> None:
        if self.segment is not None and not _is_whole(self.segment, 1):
            raise ValueError(f"segment must be None or a positive integer, got {self.segment!r}")
        if not 0 < _number("stride", self.stride) <= 1:
            raise ValueError(f"stride is a fraction of the segment length, 0 < stride <= 1; got {self.stride!r}")
        if not _number("gamma", self.gamma) > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma!r}")
        if not _number("eps", self.eps) > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        if self.median not in ("lower", "mid"):
            raise ValueError(f"median must be 'lower' or 'mid', got {self.median!r}")
        if isinstance(self.quantize, str) or self.quantize not in (0, 1):  # the text 'false' would be true
            raise ValueError(f"quantize must be True or False, got {self.quantize!r}")
        _check_resize(self.resize)
        self._coerce(ints=("segment",), floats=("stride", "gamma", "eps"), flags=("quantize",))


@dataclass(frozen=True)
class GAFConfig(_Config):
    """Gramian angular field (pyts ``GramianAngularField``, ``sample_range=(-1, 1)``).

    The image is ``(G + 1) / 2`` so that it lies in [0, 1]; G is pyts's field, computed on the
    PAA of the series down to ``min(T, size)`` points, then grown to ``size`` by ``resize``.

    Attributes:
        kind: ``"summation"`` (GASF) or ``"difference"`` (GADF).
        resize: growing mode when T < size (``"box"`` = ``"nearest"`` centred replication here,
            ``"nearest"`` = torch's legacy nearest).
    """

    kind: str = "summation"
    resize: str = "box"

    @property
    def method(self) -> str:  # type: ignore[override]
        """``gasf`` or ``gadf``, from ``kind``."""
        return "gasf" if self.kind == "summation" else "gadf"

    def __post_init__(self) -> None:
        if self.kind not in ("summation", "difference"):
            raise ValueError(f"kind must be 'summation' or 'difference', got {self.kind!r}")
        _check_resize(self.resize)

    def to_dict(self) -> dict:
        """Plain JSON-able values, ``method`` (the name) included."""
        return {"method": self.method, **asdict(self)}


@dataclass(frozen=True)
class MTFConfig(_Config):
    """Markov transition field (pyts ``MarkovTransitionField``, quantile bins).

    Shrinking uses pyts's block means (``image_size`` < T); growing uses ``resize``.

    Attributes:
        n_bins: number of quantile bins (pyts default 8).
        resize: growing mode when T < size.
    """

    n_bins: int = 8
    resize: str = "box"
    method = "mtf"

    def __post_init__(self) -> None:
        if not _is_whole(self.n_bins, 2):
            raise ValueError(f"n_bins must be an integer >= 2, got {self.n_bins!r}")
        _check_resize(self.resize)
        self._coerce(ints=("n_bins",))


@dataclass(frozen=True)
class RecurrenceConfig(_Config):
    """Recurrence plot (pyts ``RecurrencePlot``) of the raw series.

    Attributes:
        dimension: trajectory dimension m.
        time_delay: trajectory delay tau.
        threshold: ``None`` (distances divided by their per-image maximum, 0 where all are 0),
            a float epsilon (``D < eps``), ``"point"`` (``D <`` the ``percentage`` percentile of
            D) or ``"distance"`` (``D < percentage / 100 * max D``).
        percentage: used by ``"point"`` and ``"distance"``.
        resize: ``"box"`` (block means when shrinking) or ``"nearest"``.
    """

    dimension: int = 1
    time_delay: int = 1
    threshold: Union[None, float, str] = None
    percentage: float = 10.0
    resize: str = "box"
    method = "recurrence"

    def __post_init__(self) -> None:
        for name in ("dimension", "time_delay"):
            value = getattr(self, name)
            if not _is_whole(value, 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        t = self.threshold
        if t is not None and t not in ("point", "distance"):
            if isinstance(t, (str, bytes, bool, np.bool_)) or not _number("threshold", t) > 0:
                raise ValueError(f"threshold must be None, 'point', 'distance' or a float > 0; got {t!r}")
        if not 0 <= _number("percentage", self.percentage) <= 100:
            raise ValueError(f"percentage must be within [0, 100], got {self.percentage!r}")
        _check_resize(self.resize)
        numeric = t is not None and t not in ("point", "distance")
        self._coerce(ints=("dimension", "time_delay"), floats=("percentage",) + (("threshold",) if numeric else ()))


@dataclass(frozen=True)
class LinePlotConfig(_Config):
    """The series as an anti-aliased dark line on a white canvas.

    Time runs left to right over the full width; values are min-max scaled into the height
    minus ``margin`` at the top and bottom (a constant series is a horizontal line in the middle).
    A pixel's darkness is its coverage ``clip(line_width / 2 + 0.5 - d, 0, 1)``, d = distance from
    the pixel centre to the polyline (in pixels); the image is ``1 - coverage``.

    Attributes:
        line_width: line width in output pixels (finite; beyond twice the image side every pixel is
            inked alike).
        margin: blank share of the height above and below the line, ``0 <= margin < 0.5``.
    """

    line_width: float = 2.0
    margin: float = 0.1
    method = "lineplot"

    def __post_init__(self) -> None:
        if not 0 < _number("line_width", self.line_width) < math.inf:
            raise ValueError(f"line_width must be a finite number > 0, got {self.line_width!r}")
        if not 0 <= _number("margin", self.margin) < 0.5:
            raise ValueError(f"margin must be within [0, 0.5), got {self.margin!r}")
        self._coerce(floats=("line_width", "margin"))


Config = Union[TiViTConfig, GAFConfig, MTFConfig, RecurrenceConfig, LinePlotConfig]

METHODS = ("tivit", "gasf", "gadf", "mtf", "recurrence", "lineplot")

_CLASSES: dict[str, tuple[type, dict]] = {
    "tivit": (TiViTConfig, {}),
    "gasf": (GAFConfig, {"kind": "summation"}),
    "gadf": (GAFConfig, {"kind": "difference"}),
    "mtf": (MTFConfig, {}),
    "recurrence": (RecurrenceConfig, {}),
    "lineplot": (LinePlotConfig, {}),
}

# ``paper``: the published recipe, bit for bit. ``default``: the same layout with its flaws fixed
# (a resize that never drops rows, the usual median, no 8-bit truncation).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tivit": {
        "paper": dict(segment=None, stride=0.1, gamma=0.8, eps=1e-5, median="lower", resize="nearest",
                      quantize=True),
        "default": dict(segment=None, stride=0.1, gamma=0.8, eps=1e-5, median="mid", resize="box",
                        quantize=False),
    },
}


def make_config(method: Union[str, Config], preset: Optional[str] = None, **params: Any) -> Config:
    """The config of a rendering method.

    Args:
        method: a name from ``METHODS`` or a config (returned, with ``params`` applied).
        preset: a named parameter set of the method (``tivit``: ``"paper"``, ``"default"``);
            ``None`` -> ``"default"`` where the method has presets.
        **params: fields of the method's config; they override the preset.
    """
    if isinstance(method, _Config):
        if preset is not None:
            raise TypeError("preset only applies when the method is given by name")
        return replace(method, **params) if params else method  # type: ignore[type-var]
    if not isinstance(method, str) or method not in _CLASSES:
        raise ValueError(f"unknown rendering method {method!r}; choose one of {', '.join(METHODS)}")
    cls, fixed = _CLASSES[method]
    presets = PRESETS.get(method, {})
    if preset is not None and preset not in presets:
        known = ", ".join(map(repr, presets)) or "none"
        raise ValueError(f"unknown preset {preset!r} for method {method!r}; presets: {known}")
    base = dict(presets.get(preset or "default", {}))
    allowed = {f.name for f in fields(cls)} - set(fixed)
    unknown = sorted(k for k in params if k not in allowed and not (k in fixed and params[k] == fixed[k]))
    if unknown:  # a fixed field given as the name fixes it (``to_dict`` of gadf: kind='difference') is fine
        raise TypeError(f"{method} has no parameter(s) {unknown}; its parameters: {sorted(allowed)}")
    return cls(**{**base, **params, **fixed})

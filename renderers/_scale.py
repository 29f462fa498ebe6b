"""Exact rescaling by powers of two, so that finite values near float64's limits stay finite.

Recurrence distances square differences and line plots subtract the minimum from the maximum: for
finite values near float64's largest (``1e308 - -1e308``, ``(1e300)**2``) both overflow to inf and
the image turns to NaN, and squares of tiny differences (``(1e-160)**2``) underflow. Multiplying a
series by the power of two ``2**-e`` that brings its largest magnitude near 1 changes no rounding
(barring subnormals), so every ratio computed from it (D / max D, a percentile of D, a height within
the range) is bit for bit the same as on the unscaled series; an absolute threshold is compared
after the same multiplication.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

_LIMIT = 1022  # 2**-e stays a normal float64 for |e| <= 1022; scaled magnitudes then stay below 4
_HUGE = 900  # rows whose largest |value| reaches 2**900 are brought down to it (gaf: sums of T values)


def _exponents(x: Any, xp: Any):
    """``(top, e)``: each row's largest |value| ``(..., 1)`` and its binary exponent (``top = m 2**e``,
    ``0.5 <= m < 1``)."""
    top = xp.abs(x).max(axis=-1, keepdims=True)
    return top, xp.frexp(top)[1]


def _exponents_torch(x: "torch.Tensor") -> "torch.Tensor":
    """The binary exponent of each float64 row's largest |value|, int64 ``(g, 1)``."""
    import torch

    return torch.frexp(x.abs().amax(dim=1, keepdim=True)).exponent.long()


def _inverse_power_torch(k: "torch.Tensor") -> "torch.Tensor":
    """``2**-k`` as float64, built from its exponent bits (exact for |k| <= 1022; ``torch.ldexp``
    multiplies by ``2.0 ** k`` in the default dtype, which overflows)."""
    import torch

    return ((1023 - k) << 52).view(torch.float64)


def pow2_scale(x: Any, xp: Any = np) -> Any:
    """``2**-e`` per row of float64 ``x`` (shape ``(..., 1)``): the row's largest |value| times it
    lies in ``[0.5, 1)`` (below 4 at float64's extremes; 1 for a row of zeros).

    Args:
        x: float64 array, rows along the last axis (NumPy or CuPy).
        xp: the array module (``numpy`` or ``cupy``).
    """
    top, e = _exponents(x, xp)
    return xp.ldexp(xp.ones_like(top), -xp.clip(e, -_LIMIT, _LIMIT))


def pow2_scale_torch(x: "torch.Tensor") -> "torch.Tensor":
    """``pow2_scale`` of float64 ``(g, T)`` rows, ``(g, 1)``, exact."""
    return _inverse_power_torch(_exponents_torch(x).clamp_(-_LIMIT, _LIMIT))


def pow2_limit(x: Any, xp: Any = np) -> Any:
    """``2**-k`` per row of float64 ``x`` (``(..., 1)``): 1 for a row whose largest |value| is below
    ``2**900``, else the power of two that brings it to ``2**900``.

    For renderers with an absolute tolerance (the GAF's constant-series test, ``span < 10 eps``, as
    scikit-learn's): rows far from float64's limit are untouched, so the test means what it did, and
    a huge row stays huge (a span that was not below the tolerance is still far above it), while its
    sums of up to ``2**120`` values no longer overflow.
    """
    top, e = _exponents(x, xp)
    return xp.ldexp(xp.ones_like(top), -xp.maximum(e - _HUGE, 0))


def pow2_limit_torch(x: "torch.Tensor") -> "torch.Tensor":
    """:func:`pow2_limit` of float64 ``(g, T)`` rows, ``(g, 1)``, exact (``k <= 124``)."""
    return _inverse_power_torch((_exponents_torch(x) - _HUGE).clamp_(min=0))

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


def pow2_scale(x: Any, xp: Any = np) -> Any:
    """``2**-e`` per row of float64 ``x`` (shape ``(..., 1)``): the row's largest |value| times it
    lies in ``[0.5, 1)`` (below 4 at float64's extremes; 1 for a row of zeros).

    Args:
        x: float64 array, rows along the last axis (NumPy or CuPy).
        xp: the array module (``numpy`` or ``cupy``).
    """
    top = xp.abs(x).max(axis=-1, keepdims=True)
    e = xp.clip(xp.frexp(top)[1], -_LIMIT, _LIMIT)
    return xp.ldexp(xp.ones_like(top), -e)


def pow2_scale_torch(x: "torch.Tensor") -> "torch.Tensor":
    """``pow2_scale`` of float64 ``(g, T)`` rows, ``(g, 1)``: built from its exponent bits, exact
    (``torch.ldexp`` multiplies by ``2.0 ** e`` in the default dtype, which overflows)."""
    import torch

    e = torch.frexp(x.abs().amax(dim=1, keepdim=True)).exponent.long().clamp_(-_LIMIT, _LIMIT)
    return ((1023 - e) << 52).view(torch.float64)

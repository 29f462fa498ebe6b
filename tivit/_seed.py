"""The seed of a fit, checked once for every estimator and function that takes ``random_state``."""

from __future__ import annotations

import numbers


def check_seed(random_state, name: str = "random_state") -> int:
    """The integer seed of a fit: an int in [0, 2**32), or None (= 0: tivit fits are deterministic).

    A ``numpy.random.RandomState`` or ``Generator`` is not taken: a seed drawn from it would
    make two fits of the same estimator differ, which tivit's determinism rules out.
    """
    if random_state is None:
        return 0
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) \
            or not 0 <= random_state < 2**32:
        raise ValueError(f"{name} must be None or an integer in [0, 2**32), got {random_state!r}")
    return int(random_state)

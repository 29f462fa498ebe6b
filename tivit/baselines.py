"""Baselines run by ``tivit bench`` on the same splits as tivit: MiniRocket first, 1NN-DTW as an option.

Both come from sktime, so their numbers are sktime's, not a re-implementation:

- ``minirocket``: ``MiniRocket`` (``MiniRocketMultivariate`` for several channels) followed by
  ``StandardScaler(with_mean=False)`` and ``RidgeClassifierCV(alphas=logspace(-3, 3, 10))``, the
  pipeline of sktime's ``RocketClassifier(rocket_transform="minirocket")``.
- ``1nn-dtw``: ``KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")`` (full window).

Both need equal-length series without NaN. Their input policy (documented, applied by
:func:`prepare_baseline_panel`): NaN inside a series is linearly interpolated (edges: nearest
value), and unequal-length series of both splits are linearly resampled to the longest training
series (the test split sets nothing a baseline is fitted on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

BASELINES = ("minirocket", "1nn-dtw")
PREDICT_CHUNK = 16  # test series per 1NN-DTW predict call: the unit of its progress bar
MINIROCKET_MIN_LENGTH = 9  # MiniRocket's kernels have length 9


@dataclass(frozen=True)
class BaselineResult:
    """One baseline on one split.

    Attributes:
        model: baseline name (one of :data:`BASELINES`).
        accuracy: test accuracy.
        fit_seconds: time to fit on train.
        predict_seconds: time to predict test.
    """

    model: str
    accuracy: float
    fit_seconds: float
    predict_seconds: float


def check_baselines(names: Any) -> tuple[str, ...]:
    """Validate baseline names (``"minirocket,1nn-dtw"``, a list, or ``""``/``"none"`` for none).

    Args:
        names: comma-separated text or a sequence of names.
    """
    if names is None:
        return ()
    if isinstance(names, str):
        names = [] if names.strip().lower() in ("", "none") else names.split(",")
    out: list[str] = []
    for name in names:
        key = str(name).strip().lower().replace("_", "-")
        key = {"1nndtw": "1nn-dtw", "dtw": "1nn-dtw"}.get(key, key)
        if key not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)} (or none)")
        if key not in out:
            out.append(key)
    return tuple(out)


def prepare_baseline_panel(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal-length, NaN-free float32 panels for the baselines (interpolate, then resample).

    Args:
        X_train: ``(n, c, t)`` NaN-padded training panel.
        X_test: ``(m, c, t)`` NaN-padded test panel.
    """
    from tivit.data import channel_lengths, interpolate_missing, resample_to_length, series_lengths

    X_train, X_test = interpolate_missing(X_train), interpolate_missing(X_test)
    # the training split alone sets the length: the test split informs nothing a baseline is fitted on
    length = int(series_lengths(X_train).max())
    lengths = np.concatenate([channel_lengths(X_train).ravel(), channel_lengths(X_test).ravel()])
    if (lengths != length).any() or X_train.shape[2] != length or X_test.shape[2] != length:
        X_train, X_test = resample_to_length(X_train, length), resample_to_length(X_test, length)
    return np.ascontiguousarray(X_train, np.float32), np.ascontiguousarray(X_test, np.float32)


class _MiniRocketRidge:
    """MiniRocket -> StandardScaler(with_mean=False) -> RidgeClassifierCV, chained by hand.

    (sklearn's ``Pipeline`` cannot hold sktime transformers in recent sklearn releases.)
    """

    def __init__(self, n_channels: int, seed: int) -> None:
        from sklearn.linear_model import RidgeClassifierCV
        from sklearn.preprocessing import StandardScaler

        if n_channels == 1:
            from sktime.transformations.rocket import MiniRocket as transform
        else:
            from sktime.transformations.rocket import MiniRocketMultivariate as transform
        self.transform = transform(random_state=seed)
        self.scaler = StandardScaler(with_mean=False)
        self.ridge = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10))

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_MiniRocketRidge":
        features = np.asarray(self.transform.fit_transform(X))
        self.ridge.fit(self.scaler.fit_transform(features), y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.ridge.predict(self.scaler.transform(np.asarray(self.transform.transform(X))))


def _minirocket(X: np.ndarray, seed: int) -> _MiniRocketRidge:
    if X.shape[2] < MINIROCKET_MIN_LENGTH:
        raise ValueError(f"MiniRocket needs series of length >= {MINIROCKET_MIN_LENGTH}, got {X.shape[2]}")
    return _MiniRocketRidge(X.shape[1], seed)


class _SktimeClassifier:
    """Adapter so that sktime classifiers take a numpy3D panel like the sklearn pipeline does."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_SktimeClassifier":
        self.estimator.fit(X.astype(np.float64), y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(X.astype(np.float64)))


def _one_nn_dtw(X: np.ndarray, seed: int):
    from sktime.classification.distance_based import KNeighborsTimeSeriesClassifier

    return _SktimeClassifier(KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw"))


_FACTORIES: dict[str, Callable[[np.ndarray, int], Any]] = {"minirocket": _minirocket, "1nn-dtw": _one_nn_dtw}


def run_baseline(
    name: str, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *, seed: int = 0,
    progress: bool = False,
) -> BaselineResult:
    """Fit baseline ``name`` on train, score it on test.

    Args:
        name: one of :data:`BASELINES`.
        X_train: ``(n, c, t)`` equal-length, NaN-free panel (see :func:`prepare_baseline_panel`).
        y_train: ``(n,)`` labels.
        X_test: ``(m, c, t)`` panel of the same length.
        y_test: ``(m,)`` labels.
        seed: random state (MiniRocket's dilations/biases sampling).
        progress: a bar over the test series while they are predicted (1NN-DTW on long series takes
            minutes; it predicts in chunks of :data:`PREDICT_CHUNK`, each series on its own as before).
    """
    from tivit._progress import progress_bar

    (key,) = check_baselines([name])
    for label, X in (("X_train", X_train), ("X_test", X_test)):
        if not np.isfinite(X).all():
            raise ValueError(f"{label} must be NaN-free for the baselines; use prepare_baseline_panel first")
    model = _FACTORIES[key](X_train, int(seed))
    start = time.perf_counter()
    model.fit(X_train, np.asarray(y_train))
    fitted = time.perf_counter()
    chunk = PREDICT_CHUNK if key == "1nn-dtw" else max(1, len(X_test))  # MiniRocket: all at once, in no time
    parts = []
    with progress_bar(len(X_test), f"{key} predict", enabled=progress, unit="series") as bar:
        for first in range(0, len(X_test), chunk):
            parts.append(np.asarray(model.predict(X_test[first : first + chunk])))
            bar.advance(len(parts[-1]))
    predicted = np.concatenate(parts)
    done = time.perf_counter()
    accuracy = float(np.mean(predicted.astype(str) == np.asarray(y_test).astype(str)))
    return BaselineResult(key, accuracy, fitted - start, done - fitted)

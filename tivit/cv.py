"""Cross-validation folds on training data: stratified, capped by the smallest class, repeated when tiny.

One rule for every place that scores a choice on train only (the Optuna search, ``layer="auto"``,
the bench's CV summary), so that they agree on what "cross-validated accuracy" means:

- ``k = min(n_splits, smallest class count)`` stratified folds, shuffled with ``seed``;
- a small training set is split ``repeats`` times with different shuffles, so that the score
  rests on about ``min_validations`` held-out predictions (at most ``max_repeats`` repeats);
- when some class has a single sample (stratification impossible), plain shuffled folds are
  used; that class is then missing from one fold's fit and its sample counts as an error.

:class:`LinearFoldScores` scores the linear head on those folds fast enough for hundreds of
search trials (exact minimiser, solved in the span of the fit samples by Newton's method).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np


@contextlib.contextmanager
def many_classes_expected():
    """Silence scikit-learn's "`y` could represent a regression problem" warning, which it gives
    whenever classes outnumber half the samples: a fold or subset of a classification dataset with
    many classes (PigCVP: 52 classes, 104 series) is no such problem, and the warning came once per
    fit. A user's own labels still get it once, from the estimator's fit on them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%",
                                category=UserWarning)
        yield


@contextlib.contextmanager
def quiet_fold_fit():
    """A head fitted on a cross-validation fold: besides the many-classes warning, the mlp's "no
    stratified validation split" (a fold's fit part of a set with classes of a few series),
    which would come once per fold and trial and says nothing about the head finally fitted."""
    with many_classes_expected():
        warnings.filterwarnings("ignore", message="mlp head: no stratified validation split", category=UserWarning)
        yield


@dataclass(frozen=True)
class FoldPlan:
    """How a training set is split: ``repeats`` x ``n_splits`` folds, stratified or not.

    Attributes:
        n_splits: folds per repeat.
        repeats: how many differently shuffled splits.
        stratified: False only when some class has a single sample.
    """

    n_splits: int
    repeats: int
    stratified: bool

    @property
    def n_folds(self) -> int:
        """Folds in all: ``n_splits`` per repeat."""
        return self.n_splits * self.repeats


def _labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if len(y) < 4:
        raise ValueError(f"cross-validation needs at least 4 training samples, got {len(y)}")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"y has a single class ({classes[0].item()!r}); a classifier needs at least 2")
    if len(classes) == 2 and counts.min() == 1:  # the fold holding that sample out fits one class
        raise ValueError(
            f"class {classes[counts.argmin()].item()!r} has a single training sample: with two classes no "
            "cross-validation fold can fit on both; choose the layer without it (e.g. TiViTClassifier(layer=<int>))"
        )
    return counts


def fold_plan(y, n_splits: int = 5, *, min_validations: int = 100, max_repeats: int = 3) -> FoldPlan:
    """The fold layout :func:`cv_folds` uses for labels ``y``.

    Args:
        y: ``(n,)`` training labels.
        n_splits: wanted folds per repeat (capped by the smallest class, at least 2).
        min_validations: repeat small sets until about this many held-out predictions are made.
        max_repeats: upper bound on the repeats.
    """
    if int(n_splits) < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    if int(max_repeats) < 1:
        raise ValueError(f"max_repeats must be >= 1, got {max_repeats}")
    counts = _labels(y)
    n = int(counts.sum())
    smallest = int(counts.min())
    stratified = smallest >= 2
    k = min(int(n_splits), smallest) if stratified else min(int(n_splits), n)
    repeats = int(min(max_repeats, max(1, math.ceil(int(min_validations) / n))))
    return FoldPlan(k, repeats, stratified)


def cv_folds(
    y, n_splits: int = 5, *, seed: int = 0, min_validations: int = 100, max_repeats: int = 3
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/validation index pairs on ``y`` (training labels only), deterministic given ``seed``.

    Args:
        y: ``(n,)`` training labels.
        n_splits: wanted folds per repeat (capped by the smallest class, at least 2).
        seed: seed of the shuffles (repeat ``r`` uses ``seed + r``).
        min_validations: repeat small sets until about this many held-out predictions are made.
        max_repeats: upper bound on the repeats.

    Returns:
        ``repeats * k`` pairs ``(fit_idx, val_idx)``, repeat by repeat; every fit part holds at
        least two classes.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    plan = fold_plan(y, n_splits, min_validations=min_validations, max_repeats=max_repeats)
    y = np.asarray(y)
    folds: list[tuple[np.ndarray, np.ndarray]] = []
    for r in range(plan.repeats):
        if plan.stratified:
            splitter = StratifiedKFold(plan.n_splits, shuffle=True, random_state=int(seed) + r)
        else:
            splitter = KFold(plan.n_splits, shuffle=True, random_state=int(seed) + r)
        for fit_idx, val_idx in splitter.split(np.zeros(len(y)), y):
            if len(np.unique(y[fit_idx])) < 2:
                raise ValueError("a fold's fit part holds a single class; too few samples per class for "
                                 "cross-validation (choose the layer without it, e.g. layer=<int>)")
            folds.append((fit_idx, val_idx))
    return folds


def newton_logistic(F: np.ndarray, y_idx: np.ndarray, n_classes: int, C: float, max_iter: int = 50,
                     tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the linear head's objective by Newton's method on a small problem.

    Objective (sklearn's, divided by ``C n``): mean cross-entropy + ``||W||^2 / (2 C n)``, the
    intercept not penalised; two classes use one weight vector (sigmoid), more use one per class.
    Damped Newton steps (Armijo backtracking) until the largest gradient entry is below ``tol``.

    Returns:
        ``W (d, outputs)`` and ``b (outputs,)``; logits are ``F @ W + b`` (for two classes the
        logit of class 1 against class 0).
    """
    n, d = F.shape
    out = 1 if n_classes == 2 else n_classes
    X = np.hstack([F, np.ones((n, 1))])  # last column: intercept
    Y = np.eye(n_classes)[y_idx][:, 1:] if out == 1 else np.eye(n_classes)[y_idx]
    penalty = np.ones(d + 1) / (C * n)
    penalty[-1] = 0.0

    def parts(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ theta  # (n, out)
        if out == 1:
            loss = np.mean(np.logaddexp(0.0, z[:, 0]) - Y[:, 0] * z[:, 0])
            p = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid
        else:
            zmax = z.max(1, keepdims=True)
            lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(1))
            loss = np.mean(lse - (Y * z).sum(1))
            p = np.exp(z - lse[:, None])
        return float(loss + 0.5 * np.sum(penalty[:, None] * theta**2)), p

    theta = np.zeros((d + 1, out))
    f, p = parts(theta)
    for _ in range(max_iter):
        grad = X.T @ (p - Y) / n + penalty[:, None] * theta
        if np.abs(grad).max() <= tol:
            break
        if out == 1:
            H = (X.T * (p[:, 0] * (1 - p[:, 0]))) @ X / n
        else:  # H[(a,k),(b,l)] = mean_i x_ia x_ib (p_ik d_kl - p_ik p_il), index a * out + k
            XP = (X[:, :, None] * p[:, None, :]).reshape(n, -1)
            H = -(XP.T @ XP)
            for k in range(out):
                H[k::out, k::out] += (X.T * p[:, k]) @ X
            H /= n
        # Small ridge: the multinomial intercepts are shift-invariant (H is singular along that line).
        H[np.diag_indices_from(H)] += np.repeat(penalty, out) + 1e-10
        try:
            step = np.linalg.solve(H, grad.reshape(-1)).reshape(d + 1, out)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, grad.reshape(-1), rcond=None)[0].reshape(d + 1, out)
        slope = float(np.sum(grad * step))
        t = 1.0
        while True:
            candidate = theta - t * step
            f_new, p_new = parts(candidate)
            if f_new <= f - 1e-4 * t * slope or t < 1e-10:
                break
            t *= 0.5
        if f - f_new <= 1e-15 * max(1.0, abs(f)):
            theta, f, p = candidate, f_new, p_new
            break
        theta, f, p = candidate, f_new, p_new
    return theta[:-1], theta[-1]


class LinearFoldScores:
    """Validation accuracy of the linear head per (features key, C, fold), memoised and fast.

    The objective is the linear head's (:class:`tivit.heads.HeadClassifier` ``("linear")``, as
    published: standardise with the fit part's statistics, then L2 logistic regression with
    inverse strength C, intercept not penalised). A search makes hundreds of tiny fits, so they
    are solved here without a Lightning Trainer, exactly but in a smaller space:

    - with ``n`` fit samples of width ``d`` and ``n < d``, the minimiser lies in the row space of
      the standardised fit features ``Z = U S V^T`` (the penalty removes any other component), so
      logistic regression on ``U S`` (width ``rank <= n``) with the same C has the solution
      ``w = V beta``; validation features become ``Z_val V``. One ``n x n`` eigendecomposition
      of ``Z Z^T`` per (features, fold) gives both.
    - on that small problem Newton's method (:func:`newton_logistic`) converges in a few steps
      (scikit-learn's L-BFGS when the Hessian would be large).

    Args:
        y: ``(n,)`` training labels.
        folds: ``(fit_idx, val_idx)`` pairs from :func:`cv_folds`.
    """

    NEWTON_MAX = 1200  # largest (rank + 1) * outputs solved by Newton; beyond, L-BFGS

    def __init__(self, y, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.y, self.folds = np.asarray(y), list(folds)
        self._memo: dict[tuple, float] = {}
        self._reduced_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.fits = 0

    def _reduced(self, key: Hashable, features: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
        if (key, fold) not in self._reduced_cache:
            fit_idx, val_idx = self.folds[fold]
            x_fit, x_val = features[fit_idx].astype(np.float64), features[val_idx].astype(np.float64)
            mean, std = x_fit.mean(0), x_fit.std(0)
            std[std < 1e-12 * max(1.0, float(np.abs(mean).max()))] = 1.0  # constant feature: as StandardScaler
            z_fit, z_val = (x_fit - mean) / std, (x_val - mean) / std
            if z_fit.shape[0] < z_fit.shape[1]:
                # Z Z^T = U S^2 U^T: U S are the fit coordinates, Z_val V = Z_val Z^T U / S the validation ones.
                eigval, eigvec = np.linalg.eigh(z_fit @ z_fit.T)
                keep = eigval > max(float(eigval[-1]), 0.0) * 1e-12
                root = np.sqrt(eigval[keep])
                u = eigvec[:, keep]
                z_fit, z_val = u * root, (z_val @ z_fit.T @ u) / root
            self._reduced_cache[(key, fold)] = (z_fit, z_val)
        return self._reduced_cache[(key, fold)]

    def accuracy(self, key: Hashable, features: np.ndarray, fold: int, C: float) -> float:
        """Accuracy on fold ``fold``'s validation part of the head fitted on its fit part.

        Args:
            key: identifies ``features`` (e.g. renderer, pool and layer); results are memoised by it.
            features: ``(n, d)`` training features.
            fold: index into ``folds``.
            C: inverse L2 strength.
        """
        memo_key = (key, fold, float(C))
        if memo_key not in self._memo:
            fit_idx, val_idx = self.folds[fold]
            z_fit, z_val = self._reduced(key, features, fold)
            classes, y_idx = np.unique(self.y[fit_idx], return_inverse=True)
            outputs = 1 if len(classes) == 2 else len(classes)
            if (z_fit.shape[1] + 1) * outputs <= self.NEWTON_MAX:
                W, b = newton_logistic(z_fit, y_idx, len(classes), float(C))
                logits = z_val @ W + b
                predicted = classes[(logits[:, 0] > 0).astype(int)] if outputs == 1 else classes[logits.argmax(1)]
            else:
                from sklearn.exceptions import ConvergenceWarning
                from sklearn.linear_model import LogisticRegression

                with warnings.catch_warnings(), many_classes_expected():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = LogisticRegression(C=float(C), max_iter=500).fit(z_fit, self.y[fit_idx])
                predicted = model.predict(z_val)
            self._memo[memo_key] = float(np.mean(predicted == self.y[val_idx]))
            self.fits += 1
        return self._memo[memo_key]

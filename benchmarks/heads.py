"""Heads are cheap next to the encoder: the linear head on every layer vs scikit-learn per layer.

Fits the ``linear`` head on every layer of 12-layer x 384-wide embeddings of 1,000 series
(10 classes; synthetic, seeded, with class structure that peaks in the middle layers) with
:func:`tivit.heads.fit_linear_per_layer` (one batched L-BFGS problem), and, in the same run, the
baseline ``StandardScaler + LogisticRegression(max_iter=500)`` once per layer. Both train on the
same stratified 80 % and are scored on the remaining 20 %.

Target: the same accuracy on every layer (within 1 point) in at most a third of the time.
Also records the L-BFGS iterations each layer took on both sides, and, without a target, the
cross-validated layer choice (:func:`tivit.heads.choose_layer`: every fold x layer head in one
solver run) against the same scikit-learn pipeline fitted fold by fold and layer by layer.
Prints the ratios and writes ``benchmarks/results/heads.json``.

    python benchmarks/heads.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from _machine import describe, positive_int, result_file

RESULT = Path(__file__).parent / "results" / "heads.json"


def synthetic_embeddings(n: int = 1000, layers: int = 12, width: int = 384, classes: int = 10, seed: int = 0):
    """Embeddings with class structure: class centres in a 24-dim latent space, mapped into each
    layer by its own random projection, plus anisotropic noise; separability rises then falls with depth."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n // classes)
    rng.shuffle(y)
    latent = rng.normal(size=(classes, 24))
    within = rng.normal(size=(n, 24))
    X = np.empty((n, layers, width), dtype=np.float32)
    for k in range(layers):
        signal = 0.35 + 0.5 * np.exp(-(((k - layers / 2) / (layers / 4)) ** 2))
        project = rng.normal(size=(24, width)) / np.sqrt(24)
        noise_scale = np.exp(rng.normal(scale=0.5, size=width))  # anisotropic, like real activations
        z = (signal * latent[y] + within) @ project + rng.normal(size=(n, width)) * noise_scale
        X[:, k] = (z * rng.uniform(0.5, 3.0) + rng.normal(size=width)).astype(np.float32)
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed repeats of each side (best is kept)")
    parser.add_argument("--threads", type=positive_int, default=1, help="CPU threads for both sides (torch and BLAS)")
    parser.add_argument("--out", type=result_file, default=RESULT, help="result file (default: %(default)s)")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tivit._atomic import atomic_write_json
    from tivit.cv import cv_folds
    from tivit.heads import choose_layer, fit_linear_per_layer

    X, y = synthetic_embeddings()
    n, L, d = X.shape
    fit, test = train_test_split(np.arange(n), test_size=0.2, stratify=y, random_state=0)

    def run_tivit():
        heads = fit_linear_per_layer(X[fit], y[fit])
        return heads, heads.score(X[test], y[test])

    def sklearn_fit(features, labels):
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)

    def run_sklearn():
        accs, iters = [], []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            for k in range(L):
                model = sklearn_fit(X[fit, k], y[fit])
                accs.append(model.score(X[test, k], y[test]))
                iters.append(int(model[-1].n_iter_[0]))
        return np.array(accs), sum(issubclass(w.category, ConvergenceWarning) for w in caught), iters

    X_fit, y_fit = X[fit], y[fit]  # made once, outside both timings of the layer choice
    folds = cv_folds(y_fit, 5, seed=0)  # the folds choose_layer makes

    def run_choice_sklearn():
        scores = np.zeros(L)
        for fold_fit, fold_val in folds:
            for k in range(L):
                model = sklearn_fit(X_fit[fold_fit, k], y_fit[fold_fit])
                scores[k] += model.score(X_fit[fold_val, k], y_fit[fold_val]) / len(folds)
        return scores

    # same thread budget for both sides; repeats interleaved so a busy machine slows both alike
    torch.set_num_threads(args.threads)
    tivit_times, sk_times, choice_times, choice_sk_times = [], [], [], []
    with threadpool_limits(args.threads):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit_linear_per_layer(X[fit[:50]], y[fit[:50]], max_iter=5)  # warm-up: imports, first Trainer
        for _ in range(args.repeats):
            start = time.perf_counter()
            heads, tivit_acc = run_tivit()
            tivit_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            sk_acc, sk_warnings, sk_iters = run_sklearn()
            sk_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            choice = choose_layer(X_fit, y_fit, cv=5, random_state=0)
            choice_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            choice_sk = run_choice_sklearn()
            choice_sk_times.append(time.perf_counter() - start)

    t_tivit, t_sk = min(tivit_times), min(sk_times)
    ratio = t_tivit / t_sk
    gap = float(np.abs(tivit_acc - sk_acc).max())
    met = bool(ratio <= 1 / 3 and gap <= 0.01 + 1e-9)
    tivit_iters = heads.module_.iterations[0].tolist()
    choice_scores = np.array([choice.scores[k] for k in range(1, L + 1)])
    choice_ratio = min(choice_times) / min(choice_sk_times)
    choice_gap = float(np.abs(choice_scores - choice_sk).max())
    print(f"{'layer':>5} {'tivit':>7} {'sklearn':>7} {'iters':>6} {'sk iters':>8} {'cv tivit':>8} {'cv sk':>7}")
    for k in range(L):
        print(f"{k + 1:>5} {tivit_acc[k]:7.3f} {sk_acc[k]:7.3f} {tivit_iters[k]:6d} {sk_iters[k]:8d} "
              f"{choice_scores[k]:8.3f} {choice_sk[k]:7.3f}")
    print(f"tivit fit_linear_per_layer: {t_tivit:.3f} s  ({sum(tivit_iters)} L-BFGS iterations over the layers)")
    print(f"sklearn StandardScaler+LogisticRegression(max_iter=500) x {L} layers: {t_sk:.3f} s "
          f"({sk_warnings} convergence warnings)")
    print(f"time ratio tivit/sklearn = {ratio:.3f} (target <= 0.333); max accuracy gap = {gap:.4f} (target <= 0.01)"
          f" -> {'MET' if met else 'NOT MET'}")
    print(f"layer choice, {len(folds)} folds x {L} layers: choose_layer {min(choice_times):.3f} s, "
          f"sklearn fold by fold {min(choice_sk_times):.3f} s, ratio {choice_ratio:.3f}; "
          f"max CV accuracy gap {choice_gap:.4f}")
    atomic_write_json(args.out, {
        "benchmark": "heads",
        "data": {"series": n, "layers": L, "width": d, "classes": 10, "fit": len(fit), "test": len(test),
                 "kind": "synthetic, seeded (seed 0)"},
        "tivit": {"name": "tivit.heads.fit_linear_per_layer", "seconds": t_tivit, "all_seconds": tivit_times,
                  "accuracy": tivit_acc.tolist(), "lbfgs_iterations": tivit_iters},
        "baseline": {"name": "sklearn StandardScaler+LogisticRegression(max_iter=500) per layer", "seconds": t_sk,
                     "all_seconds": sk_times, "accuracy": sk_acc.tolist(), "lbfgs_iterations": sk_iters,
                     "convergence_warnings": sk_warnings},
        "layer_choice": {"folds": len(folds), "tivit": "tivit.heads.choose_layer(cv=5)",
                         "baseline": "the same sklearn pipeline per fold x layer",
                         "seconds": min(choice_times), "all_seconds": choice_times,
                         "baseline_seconds": min(choice_sk_times), "baseline_all_seconds": choice_sk_times,
                         "ratio": choice_ratio, "cv_accuracy": choice_scores.tolist(),
                         "baseline_cv_accuracy": choice_sk.tolist(), "max_cv_accuracy_gap": choice_gap},
        "ratio": ratio,
        "max_accuracy_gap": gap,
        "target": {"ratio_at_most": 1 / 3, "accuracy_gap_at_most": 0.01},
        "met": met,
        "machine": describe(threads=args.threads),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

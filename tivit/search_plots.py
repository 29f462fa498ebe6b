"""Plots of a search study (PNG): CV accuracy by layer, parameter importances, optimisation history.

Plain matplotlib (``Figure`` objects, no pyplot state, no display needed); plotly is not required.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tivit._atomic import atomic_write_bytes
from tivit.search import layer_scores

if TYPE_CHECKING:  # pragma: no cover
    import optuna


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def plot_search(study: "optuna.Study", out_dir: str | Path, *, title: str = "", random_weights: bool = False,
                seed: int = 0) -> list[Path]:
    """Write three PNGs: CV accuracy by layer, parameter importances, optimisation history.

    Files: ``layers.png``, ``importances.png``, ``history.png`` in ``out_dir`` (written atomically).
    A plot that has too little to show (one parameter, no completed trial) says so in the image.

    Args:
        study: a finished Optuna study of :func:`search` or :func:`search_layer`.
        out_dir: folder for the PNGs (created).
        title: prefix of the plot titles (the dataset name).
        random_weights: mark every plot "random weights".
        seed: seed of the importance evaluator.
    """
    from matplotlib.figure import Figure
    from optuna.trial import TrialState

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mark = " [random weights]" if random_weights else ""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    paths = []

    # CV accuracy by layer: every completed trial as a dot, the best per layer as a line.
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    pts = [(int(t.params["layer"]), float(t.value)) for t in done if "layer" in t.params]
    if pts:
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, s=12, alpha=0.5, label="trial")
        best = layer_scores(study)
        ax.plot(list(best), list(best.values()), "o-", color="C3", label="best per layer")
        ax.set_xticks(sorted(set(xs)))
        ax.legend(loc="best", fontsize=8, framealpha=0.7)
    else:
        ax.text(0.5, 0.5, "no completed trial with a layer", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("layer (output of block k)")
    ax.set_ylabel("CV accuracy (train)")
    ax.set_title(f"{title} CV accuracy by layer{mark}".strip())
    paths.append(atomic_write_bytes(out_dir / "layers.png", _png(fig)))

    # Parameter importances (fANOVA, seeded).
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    importances: dict[str, float] = {}
    # fANOVA reads parameters every trial has: conditional ones (C of linear heads only, a renderer's
    # own parameters) are left out, or it refuses them all
    shared = set.intersection(*(set(t.params) for t in done)) if done else set()
    varying = {k for k in shared if len({str(t.params[k]) for t in done}) > 1}
    if len(done) >= 3 and len(varying) >= 2:
        import optuna

        with contextlib.suppress(RuntimeError, ValueError), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed), params=sorted(varying))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="C0")
        ax.set_xlabel("importance (fANOVA, share of variance)")
    else:
        ax.text(0.5, 0.5, "importances need >= 3 completed trials and >= 2 varying\n"
                "parameters that every trial has (conditional ones are left out)",
                ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{title} parameter importances{mark}".strip())
    paths.append(atomic_write_bytes(out_dir / "importances.png", _png(fig)))

    # Optimisation history: each completed trial and the best so far; pruned trials at their last report.
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    comp = [(t.number, float(t.value)) for t in trials if t.state == TrialState.COMPLETE]
    pruned = [(t.number, float(t.intermediate_values[max(t.intermediate_values)]))
              for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if comp:
        ax.scatter(*zip(*comp), s=12, color="C0", label="completed")
        running, best_so_far = -np.inf, []
        for _, v in comp:
            running = max(running, v)
            best_so_far.append(running)
        ax.step([n for n, _ in comp], best_so_far, where="post", color="C3", label="best so far")
    if pruned:
        ax.scatter(*zip(*pruned), s=12, color="0.6", marker="x", label="pruned (last fold mean)")
    if comp or pruned:
        ax.legend(loc="best", fontsize=8, framealpha=0.7)
    ax.set_xlabel("trial")
    ax.set_ylabel("CV accuracy (train)")
    ax.set_title(f"{title} optimisation history{mark}".strip())
    paths.append(atomic_write_bytes(out_dir / "history.png", _png(fig)))
    return paths

"""The Optuna search: is it cheap next to the encoder, and does it pick well?  (RANDOM WEIGHTS)

Part 1, speed. On GunPoint (50 train series, length 150) with ``vit_small_patch16_224`` (random
weights, 224 px, 12 blocks, fp32 CPU): the time of ONE embedding pass over the training split
(render + encode every layer, cache written) against the time of a 100-trial layer + C search
(:func:`tivit.search.search`, linear head, stratified CV on train, pruning on) that reads the
embeddings from the cache. Targets: the search under 60 s, and under 1x the embedding pass.

Part 2, accuracy. Over 12 bundled UCR datasets, with the same random-weights encoder
(``vit_small_patch16_224``, 224 px, 12 blocks), embeddings of every layer are computed once;
then the mean TEST accuracy, computed exactly as ``tivit bench`` does
(:func:`tivit.bench.evaluate_dataset`, heads fitted on one thread), of
- ``searched``: layer and C chosen by a 30-trial search by CV on train (:func:`tivit.search.evaluate_search`),
- ``cv_layer``: the layer chosen by plain CV on train with C = 1 (:func:`tivit.heads.choose_layer`),
- ``last``: the last layer, C = 1,
- ``oracle``: the best layer on TEST, C = 1 (not a real method: an upper bound of the layer choice).
Random weights say nothing about pretrained encoders: the point is the protocol and its costs.

    OMP_NUM_THREADS=2 python benchmarks/search.py [--trials 100] [--part speed|accuracy|both]

Writes ``benchmarks/results/search.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import describe, positive_int, result_file

RESULT = Path(__file__).parent / "results" / "search.json"
ACCURACY_DATASETS = (
    "ArrowHead", "Beef", "BeetleFly", "BirdChicken", "BME", "Car", "Chinatown", "Coffee",
    "DiatomSizeReduction", "ECG200", "FaceFour", "GunPoint",
)
LABEL = "RANDOM WEIGHTS (says nothing about pretrained encoders)"


def speed(trials: int, cache_dir: str, repeats: int) -> dict:
    from tivit.data import load_dataset
    from tivit.embed import extract
    from tivit.encoders import load_encoder
    from tivit.search import search

    ds = load_dataset("GunPoint")
    enc = load_encoder("vit_small_patch16_224", weights="random", device="cpu")
    extract(ds.X_train[:4], "tivit", enc, cache_dir=False, progress=False)  # warm-up: first-call costs
    embed_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        emb = extract(ds.X_train, "tivit", enc, layers="all", cache_dir=False, progress=False)
        embed_times.append(time.perf_counter() - start)
    extract(ds.X_train, "tivit", enc, layers="all", cache_dir=cache_dir, progress=False)  # fill the cache
    embed_seconds = min(embed_times)
    print(f"one embedding pass: GunPoint train ({emb.n} series) x {len(emb.layers)} layers, "
          f"{enc.name} 224 px: {embed_seconds:.2f} s (best of {repeats})")

    import tivit.heads  # noqa: F401  - import Lightning before timing (the search refits a head at the end)

    results = [search(ds, enc, n_trials=trials, seed=0, cache_dir=cache_dir, score_test=False, progress=False)
               for _ in range(repeats)]
    search_times = [r.seconds for r in results]
    result = results[int(np.argmin(search_times))]
    assert result.embedding_passes == 1 and result.embed_seconds < 0.2 * embed_seconds, "cache was not used"
    ratio = result.seconds / embed_seconds
    met = bool(result.seconds < 60 and ratio < 1)
    print(f"{trials}-trial layer+C search with cached embeddings: {result.seconds:.2f} s (best of {repeats}; "
          f"{result.trials.get('pruned', 0)} pruned, {result.n_folds} folds/trial) -> best layer "
          f"{result.best_config['layer']}, C={result.best_config['C']:.3g}, CV {result.cv_score:.3f}")
    print(f"search / embedding pass = {ratio:.2f} (target < 1) ; search {result.seconds:.1f} s (target < 60 s)"
          f" -> {'MET' if met else 'NOT MET'}  [{LABEL}]")
    return {
        "dataset": "GunPoint", "train_series": emb.n, "encoder": enc.identity(), "weights": enc.weights,
        "embedding_pass": {"name": "extract(GunPoint train, all 12 layers, no cache)", "seconds": embed_seconds,
                           "all_seconds": embed_times},
        "search": {"name": f"tivit.search.search, {trials} trials, layer + C, linear head, cached embeddings",
                   "seconds": result.seconds, "all_seconds": search_times, "trials": result.trials,
                   "n_folds": result.n_folds, "best_config": result.best_config, "cv_score": result.cv_score,
                   "embed_seconds_in_search": result.embed_seconds},
        "ratio": ratio,
        "target": {"search_seconds_below": 60, "ratio_below": 1},
        "met": met,
    }


def accuracy(trials: int, cache_dir: str) -> dict:
    """Part 2 through :func:`tivit.bench.evaluate_dataset`: the numbers ``tivit bench`` would print."""
    from tivit.bench import BenchConfig, evaluate_dataset
    from tivit.data import load_dataset
    from tivit.encoders import load_encoder

    config = BenchConfig(encoder="vit_small_patch16_224", weights="random", baselines=(), search_trials=trials,
                         seed=0)
    enc = load_encoder(config.encoder, weights="random", device="cpu", seed=config.seed)
    rows = []
    print(f"\n{'dataset':<20} {'searched':>8} {'cv_layer':>8} {'last':>6} {'oracle':>6}  search choice  [{LABEL}]")
    for name in ACCURACY_DATASETS:
        ds = load_dataset(name)
        record = evaluate_dataset(ds, enc, config, cache_dir=cache_dir, progress=False)
        summary = {r["summary"]: r for r in record["summary"]}
        tivit, searched = record["tivit"], record["tivit"]["searched"]
        row = {
            "dataset": name, "train": len(ds.y_train), "test": len(ds.y_test),
            "searched": summary["searched"]["accuracy"], "searched_layer": searched["layer"],
            "searched_C": searched["C"], "searched_cv": searched["cv_score"],
            "cv_layer": summary["cv"]["accuracy"], "cv_layer_choice": summary["cv"]["layer"],
            "last": summary["last"]["accuracy"], "oracle": summary["oracle"]["accuracy"],
            "oracle_layer": summary["oracle"]["layer"],
            "per_layer_C1": [r["accuracy"] for r in record["results"]],
            "embed_seconds": tivit["embed_train_seconds"] + tivit["embed_test_seconds"],
            "search_seconds": tivit["search_seconds"],
        }
        rows.append(row)
        print(f"{name:<20} {row['searched']:8.3f} {row['cv_layer']:8.3f} {row['last']:6.3f} {row['oracle']:6.3f}  "
              f"layer {row['searched_layer']}, C={row['searched_C']:.3g} ({row['search_seconds']:.1f} s)")
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("searched", "cv_layer", "last", "oracle")}
    print(f"{'MEAN':<20} {means['searched']:8.3f} {means['cv_layer']:8.3f} {means['last']:6.3f} "
          f"{means['oracle']:6.3f}  over {len(rows)} datasets  [{LABEL}]")
    return {"encoder": enc.identity(), "weights": enc.weights, "trials": trials, "protocol":
            "tivit.bench.evaluate_dataset (BenchConfig defaults: linear head, C=1, single-threaded heads)",
            "datasets": rows, "mean": means}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=positive_int, default=100, help="trials of the timed search (part 1)")
    parser.add_argument("--accuracy-trials", type=positive_int, default=30, help="trials per dataset (part 2)")
    parser.add_argument("--part", choices=("speed", "accuracy", "both"), default="both")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed repeats in part 1 (best is kept)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache to use and keep (default: a temporary one)")
    parser.add_argument("--out", type=result_file, default=RESULT,
                        help="result file; a part not rerun is kept from it (default: %(default)s)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from tivit._atomic import atomic_write_json

    out = {"benchmark": "search", "label": LABEL, "random_weights": True,
           "machine": describe()}
    with contextlib.ExitStack() as stack:
        cache_dir = args.cache_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="tivit-bench-search-"))
        if args.part in ("speed", "both"):
            out["speed"] = speed(args.trials, cache_dir, args.repeats)
        if args.part in ("accuracy", "both"):
            out["accuracy"] = accuracy(args.accuracy_trials, cache_dir)
    out["machine"]["loadavg_at_end"] = os.getloadavg()
    if args.out.exists():  # keep the other part of an earlier run when only one part is rerun
        import json

        old = json.loads(args.out.read_text())
        for part in ("speed", "accuracy"):
            if part in old and part not in out:  # kept with the machine it was measured on
                out[part] = {"machine": old.get("machine"), **old[part]}
    for part in ("speed", "accuracy"):
        if part in out and "machine" not in out[part]:
            out[part]["machine"] = out["machine"]
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

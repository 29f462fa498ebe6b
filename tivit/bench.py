"""The UCR/UEA benchmark: every layer's test accuracy, three honest summaries, baselines beside them.

For each dataset, on its official train/test split:

1. the embeddings of every requested layer are computed once (train and test, through the cache);
2. the head is fitted on each layer's training embeddings and scored on test, so the results
   hold the test accuracy of EVERY layer;
3. the summaries, kept apart: ``last`` (the deepest requested layer), ``cv`` (the layer chosen by
   stratified cross-validation on TRAIN only with the run's ``C``, :func:`tivit.heads.choose_layer`
   -- the honest number), ``searched`` (layer and ``C`` chosen together by an Optuna search scored
   by CV on TRAIN only, :func:`tivit.search.evaluate_search`; ``search_trials=0`` leaves it out) and
   ``oracle`` (the best layer on TEST, shallowest on ties -- optimistic by design);
4. the baselines (:mod:`tivit.baselines`) on the same split.

The steps call the same functions as :class:`tivit.sktime.TiViTClassifier` with the same settings
(missing/unequal-length policy, :func:`tivit.embed.extract`, :class:`tivit.heads.HeadClassifier`,
:func:`tivit.search.search_layer`), so ``TiViTClassifier(layer=k)`` scores what the ``layer=k`` row
says and ``TiViTClassifier(layer="auto", search_trials=N)`` what the ``searched`` row says.

Same settings, same numbers: the heads, the layer CV and the search run on one CPU thread
(:func:`tivit._threads.single_threaded`: a float32 solve on a tiny training set otherwise stops at
a point that depends on the machine's thread count), and with the cache on, a first run already
uses the stored float16 embeddings, so a cold and a warm run agree.

Files in the output folder:

- ``config.json``: the run's settings, encoder identity, package versions, seeds (written first);
- ``runs.jsonl``: one line per finished (or failed) dataset holding everything: per-layer accuracy,
  timings, CV scores, the CSV rows. It is the single commit point: a dataset is finished exactly
  when its ``"done"`` line is in this file (written atomically, see :mod:`tivit._atomic`);
- ``results.csv`` (one row per dataset x model x layer) and ``summary.csv`` (dataset x model x
  summary) are derived from ``runs.jsonl`` and rewritten atomically after every dataset, and again
  on ``resume``, so a kill between the two writes can never leave a duplicated or torn row;
- ``.lock``: held (``flock``) while a run writes the folder; a second run on it is refused.

Each ``"done"`` line records the TRAIN/TEST files and their SHA-256; ``resume`` refuses to keep a
finished dataset whose files now differ (another ``--data-dir``, an edited file).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from tivit._atomic import (CorruptFileError, atomic_append_lines, atomic_write_bytes, atomic_write_json,
                           atomic_write_text, read_json, read_jsonl, sha256_file, sweep_temporaries)
from tivit.data import prepare_panel, series_lengths

RESULT_COLUMNS = (
    "dataset", "archive", "model", "layer", "accuracy", "weights", "random_weights",
    "fit_seconds", "predict_seconds", "n_train", "n_test", "n_classes",
)
SUMMARY_COLUMNS = ("dataset", "archive", "model", "summary", "layer", "accuracy", "weights", "random_weights")
SUMMARIES = ("last", "cv", "searched", "oracle", "baseline")
ARCHIVES = ("ucr", "uea")
BENCH_HEADS = ("linear", "mlp")
CONFIG_FILE, RUNS_FILE, RESULTS_FILE, SUMMARY_FILE = "config.json", "runs.jsonl", "results.csv", "summary.csv"
LOCK_FILE = ".lock"  # held while a run writes the folder
_VERSIONED = ("tivit", "torch", "timm", "numpy", "scikit-learn", "sktime", "lightning", "aeon", "numba")


# Settings a run written before they existed had implicitly: no searched summary, the default recipe.
_LEGACY = {"preset": "default", "search_trials": 0, "precision": "auto"}


class BenchError(ValueError):
    """A benchmark cannot start or resume; the message says why and what to do."""


@dataclass(frozen=True)
class BenchConfig:
    """What decides the numbers of a benchmark run (a resume must use the same).

    A field left at None takes the value of ``preset`` (:mod:`tivit.presets`), as the estimator's
    parameters do: ``BenchConfig(preset="paper")`` is the published recipe (paper renderer: nearest
    resize, uint8 truncation, lower median; zero padding; L2-normalised embeddings; heads fitted on
    a random unstratified 80 % of train), evaluated on every layer.

    Attributes:
        preset: ``"default"`` or ``"paper"``.
        encoder: encoder name (``tivit encoders``) or any timm ViT name.
        weights: ``"pretrained"``, ``"random"`` or a path to a weights file.
        encoder_args: extra timm arguments as sorted ``(key, value)`` pairs (``img_size=64``).
        renderer: renderer method; ``renderer_params`` its parameters as sorted pairs.
        layers: layers to evaluate (``"all"``, ``"0-12"``, ``"4,8,12"``; see ``resolve_layers``).
        pool: token pooling.
        head: ``"linear"`` or ``"mlp"``, fitted per layer; ``C`` and ``max_iter`` its parameters.
        normalize: L2-normalise each sample's embedding.
        unequal_length: ``own-length`` (each series rendered from its own length), ``zeros`` or
            ``resample`` (see :mod:`tivit.presets`).
        missing: ``interpolate`` or ``error`` for NaN inside a series.
        baselines: baseline names (:data:`tivit.baselines.BASELINES`).
        search_trials: trials of the layer + ``C`` search behind the ``searched`` summary (0: none).
        seed: seed of random weights, CV folds, heads, the search and baselines.
        precision: the encoder's: ``auto`` (the preset's: ``paper`` fp32, as published; ``default``
            bf16 autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16`` or ``fp16``
            (see :func:`tivit.encoders.load_encoder`).
    """

    preset: str = "default"
    encoder: str | None = None
    weights: str = "pretrained"
    encoder_args: tuple[tuple[str, Any], ...] = ()
    renderer: str | None = None
    renderer_params: tuple[tuple[str, Any], ...] = ()
    layers: str = "all"
    pool: str | None = None
    head: str | None = None
    C: float | None = None
    max_iter: int | None = None
    normalize: bool | None = None
    unequal_length: str | None = None
    missing: str | None = None
    baselines: tuple[str, ...] = ("minirocket",)
    search_trials: int = 20
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self) -> None:
        from tivit.baselines import check_baselines
        from tivit.encoders import PRECISIONS, EncoderError, check_pool
        from tivit.presets import MISSING, PRESETS, UNEQUAL

        if self.preset not in PRESETS:
            raise BenchError(f"preset={self.preset!r} is not a preset; choose one of {', '.join(PRESETS)}")
        names = ("encoder", "renderer", "pool", "head", "C", "max_iter", "normalize", "unequal_length", "missing")
        for name, value in PRESETS[self.preset].resolve(**{n: getattr(self, n) for n in names}).items():
            object.__setattr__(self, name, value)

        if self.head not in BENCH_HEADS:
            raise BenchError(f"head={self.head!r}: the bench fits one head per layer; choose one of {BENCH_HEADS}")
        if self.unequal_length not in UNEQUAL:
            raise BenchError(f"unequal_length={self.unequal_length!r} is not a policy; choose one of {UNEQUAL}")
        if self.missing not in MISSING:
            raise BenchError(f"missing={self.missing!r} is not a policy; choose one of {MISSING}")
        try:
            check_pool(self.pool)  # the name now; whether the model has a class token once it is loaded
        except EncoderError as err:
            raise BenchError(str(err)) from None
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise BenchError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if self.precision not in PRECISIONS:
            raise BenchError(f"precision={self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if not (isinstance(self.C, (int, float)) and self.C > 0):
            raise BenchError(f"C must be a positive number, got {self.C!r}")
        if isinstance(self.search_trials, bool) or not isinstance(self.search_trials, int) or self.search_trials < 0:
            raise BenchError(f"search_trials must be an integer >= 0 (0: no searched summary), "
                             f"got {self.search_trials!r}")
        object.__setattr__(self, "baselines", check_baselines(self.baselines))
        object.__setattr__(self, "encoder_args", tuple(sorted(dict(self.encoder_args).items())))
        object.__setattr__(self, "renderer_params", tuple(sorted(dict(self.renderer_params).items())))
        object.__setattr__(self, "layers", str(self.layers))

    @property
    def recipe(self):
        """The :class:`tivit.presets.Preset` named by ``preset``."""
        from tivit.presets import get_preset

        return get_preset(self.preset)

    def renderer_config(self):
        """The renderers config: the preset's named parameter set for its own renderer, then ``renderer_params``."""
        from tivit.presets import renderer_config

        return renderer_config(self.preset, self.renderer, dict(self.renderer_params))

    def to_dict(self) -> dict:
        """Plain JSON-able values (what ``config.json`` stores and a resume compares)."""
        out = asdict(self)
        out["encoder_args"] = dict(self.encoder_args)
        out["renderer_params"] = dict(self.renderer_params)
        out["baselines"] = list(self.baselines)
        return json.loads(json.dumps(out, default=str))


@dataclass
class BenchRun:
    """What :func:`run_bench` did.

    Attributes:
        out_dir: the output folder.
        records: the ``runs.jsonl`` line of every finished dataset, in dataset order.
        skipped: datasets found finished in ``out_dir`` (``resume``) and not re-run.
        failed: ``{dataset: error message}`` of datasets that failed in this call.
        random_weights: True when the encoder had random weights.
    """

    out_dir: Path
    records: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    random_weights: bool = False

    @property
    def results_csv(self) -> Path:
        """``results.csv``: one row per dataset x layer, and per baseline."""
        return self.out_dir / RESULTS_FILE

    @property
    def summary_csv(self) -> Path:
        """``summary.csv``: the last / cv / searched / oracle / baseline rows of every dataset."""
        return self.out_dir / SUMMARY_FILE


# ---------------------------------------------------------------------------------------------
# datasets and policies


def resolve_datasets(spec: str | Sequence[str], archive: str = "ucr", data_dir: Any = None) -> list[str]:
    """Dataset names from ``"all"`` (every dataset of ``archive``) or names (validated, deduplicated).

    Args:
        spec: ``"all"``, ``"GunPoint,Coffee"`` or a list of names.
        archive: ``"ucr"`` or ``"uea"``; selects the datasets of ``"all"``.
        data_dir: folder searched before the bundled datasets (default ``$TIVIT_DATA``); with one,
            ``"all"`` means the datasets of that folder only.
    """
    from tivit.data import find_dataset, list_datasets, search_locations

    archive = str(archive).lower()
    if archive not in ARCHIVES:
        raise BenchError(f"archive must be one of {', '.join(ARCHIVES)}, got {archive!r}")
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [n for n in names if n]
    if not names:
        raise BenchError("no datasets given; pass names (GunPoint,Coffee) or 'all'")
    if len(names) == 1 and names[0].lower() == "all":
        user = [path for source, path in search_locations(data_dir) if source == "data-dir"]
        # with a data folder, 'all' is that folder's archive, not it plus every bundled set
        found = [i.name for i in list_datasets(data_dir) if i.archive == archive and (not user or i.source == "data-dir")]
        if not found:
            where = f" in {user[0]}" if user else ""
            raise BenchError(f"no {archive.upper()} datasets found{where} (see `tivit datasets`)")
        return found
    out: list[str] = []
    for name in names:
        canonical = find_dataset(name, data_dir).name
        if canonical not in out:
            out.append(canonical)
    return out


# ---------------------------------------------------------------------------------------------
# one dataset


def _accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred).astype(str) == np.asarray(truth).astype(str)))


def model_name(encoder_name: str) -> str:
    """The ``model`` column of tivit rows: ``tivit-<encoder>``."""
    return f"tivit-{encoder_name}"


def evaluate_dataset(ds: Any, encoder: Any, config: BenchConfig, *, batch_size: int | str = "auto",
                     cache_dir: Any = None, progress: bool = True, fit_stream: Any = None) -> dict:
    """Benchmark one dataset: per-layer accuracy, the summaries, the baselines.

    Args:
        ds: a :class:`tivit.data.Dataset`.
        encoder: a loaded :class:`tivit.encoders.FrozenEncoder`.
        config: the run's :class:`BenchConfig`.
        batch_size: images per forward pass, or ``"auto"``.
        cache_dir: embedding cache (None: default; False: off).
        progress: show extraction progress bars.
        fit_stream: the generator the paper preset's fit split is drawn from (see
            :func:`tivit.presets.published_stream`); None: a fresh one seeded with ``config.seed``.

    Returns:
        The record written to ``runs.jsonl`` (JSON-able), with ``results`` and ``summary`` rows.
    """
    from tivit.cv import many_classes_expected

    with many_classes_expected():  # a classification dataset's labels, whatever their count
        return _evaluate_dataset(ds, encoder, config, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
                                 fit_stream=fit_stream)


def _evaluate_dataset(ds: Any, encoder: Any, config: BenchConfig, *, batch_size: int | str, cache_dir: Any,
                      progress: bool, fit_stream: Any) -> dict:
    from tivit._threads import single_threaded
    from tivit.baselines import prepare_baseline_panel, run_baseline
    from tivit.embed import extract
    from tivit.heads import HeadClassifier, choose_layer
    from tivit.presets import fit_index

    start = time.perf_counter()
    seed = int(config.seed)
    name = model_name(encoder.name)
    y_train, y_test = np.asarray(ds.y_train), np.asarray(ds.y_test)
    if config.unequal_length == "zeros":  # as published: both splits padded to the longest series of either
        longest = int(max(series_lengths(ds.X_train).max(initial=0), series_lengths(ds.X_test).max(initial=0)))
        X_train = prepare_panel(ds.X_train, "zeros", config.missing, longest)
        X_test = prepare_panel(ds.X_test, "zeros", config.missing, longest)
    else:
        X_train = prepare_panel(ds.X_train, config.unequal_length, config.missing)
        X_test = prepare_panel(ds.X_test, config.unequal_length, config.missing,
                               X_train.shape[2] if config.unequal_length != "own-length" else None)
    rcfg = config.renderer_config()
    embed_kwargs = dict(layers=config.layers, pool=config.pool, norm=False, normalize=config.normalize,
                        batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    timing: dict[str, Any] = {}
    t0 = time.perf_counter()
    train = extract(X_train, rcfg, encoder, **embed_kwargs)
    t1 = time.perf_counter()
    test = extract(X_test, rcfg, encoder, **embed_kwargs)
    timing["embed_train_seconds"], timing["embed_test_seconds"] = t1 - t0, time.perf_counter() - t1

    layers = list(train.layers)
    fit = fit_index(config.preset, y_train, seed, stream=fit_stream)  # all of train, or the paper preset's 80 %
    fit_values, y_fit = train.values[fit], y_train[fit]
    accuracy, fit_s, predict_s = {}, {}, {}
    with single_threaded():  # head numbers independent of the machine's thread count (see tivit._threads)
        for i, k in enumerate(layers):
            head = HeadClassifier(config.head, C=config.C, max_iter=config.max_iter, random_state=seed)
            t0 = time.perf_counter()
            head.fit(fit_values[:, i], y_fit)
            t1 = time.perf_counter()
            pred = head.predict(test.values[:, i])
            predict_s[k], fit_s[k] = time.perf_counter() - t1, t1 - t0
            accuracy[k] = _accuracy(pred, y_test)
        t0 = time.perf_counter()
        choice = choose_layer(fit_values, y_fit, layers, C=config.C, max_iter=config.max_iter, random_state=seed)
        timing["cv_seconds"] = time.perf_counter() - t0
        counts = np.bincount(np.unique(y_fit, return_inverse=True)[1])
        smallest, scorable = int(counts.min()), int(counts.max()) >= 2
        if smallest < 2 and len(set(choice.scores.values())) == 1 and len(layers) > 1:
            # classes of one series (Fungi): a held-out one is absent from its fold's fit part, so the
            # folds cannot tell the layers apart
            no_search = (", and no search is run (nothing for it to score)"
                         if config.search_trials and not scorable else "")
            warnings.warn(f"{ds.name}: every layer scores {next(iter(choice.scores.values())):.3f} in cross-validation "
                          f"on train ({smallest} series in the smallest class): the cv layer is a tie-break, not a "
                          f"choice{no_search}", stacklevel=2)
        searched = None
        if config.search_trials and scorable:
            from tivit.search import evaluate_search

            t0 = time.perf_counter()
            # = TiViTClassifier(layer="auto", search_trials=N, random_state=seed): search on train, one test score
            found, searched_accuracy = evaluate_search(fit_values, y_fit, test.values, y_test, layers=layers,
                                                       n_trials=config.search_trials, heads=(config.head,),
                                                       seed=seed)
            timing["search_seconds"] = time.perf_counter() - t0
            searched = {"layer": found.layer, "C": found.C, "head": found.head, "accuracy": searched_accuracy,
                        "cv_score": found.cv_score, "params": found.config.to_dict(),
                        "layer_scores": {str(k): v for k, v in found.layer_scores.items()},
                        "n_trials": found.n_trials, "n_folds": found.n_folds}
    oracle = max(layers, key=lambda k: (accuracy[k], -k))  # best on test, shallowest on ties

    common = {"dataset": ds.name, "archive": ds.archive}
    tag = {"weights": encoder.weights, "random_weights": bool(encoder.random_weights)}
    n = {"n_train": len(y_train), "n_test": len(y_test), "n_classes": int(len(np.unique(y_train)))}
    results = [{**common, "model": name, "layer": k, "accuracy": accuracy[k], **tag,
                "fit_seconds": fit_s[k], "predict_seconds": predict_s[k], **n} for k in layers]
    summary = [{**common, "model": name, "summary": s, "layer": k, "accuracy": accuracy[k], **tag}
               for s, k in (("last", layers[-1]), ("cv", choice.layer))]
    if searched is not None:
        summary.append({**common, "model": name, "summary": "searched", "layer": searched["layer"],
                        "accuracy": searched["accuracy"], **tag})
    summary.append({**common, "model": name, "summary": "oracle", "layer": oracle, "accuracy": accuracy[oracle],
                    **tag})

    baselines = []
    if config.baselines:
        B_train, B_test = prepare_baseline_panel(ds.X_train, ds.X_test)
        for b in config.baselines:
            try:
                res = run_baseline(b, B_train, y_train, B_test, y_test, seed=seed, progress=progress)
            except MemoryError:
                raise  # the machine's limit, not the baseline's: stop as for tivit itself
            except Exception as err:  # noqa: BLE001 - a baseline that cannot run costs its cells, not tivit's
                error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                warnings.warn(f"{ds.name}: baseline {b} failed ({error}); its cells stay empty", stacklevel=2)
                baselines.append({"model": b, "accuracy": None, "fit_seconds": None, "predict_seconds": None,
                                  "error": error})
                continue
            baselines.append(asdict(res))
            base_tag = {"weights": "", "random_weights": False}
            results.append({**common, "model": b, "layer": "", "accuracy": res.accuracy, **base_tag,
                            "fit_seconds": res.fit_seconds, "predict_seconds": res.predict_seconds, **n})
            summary.append({**common, "model": b, "summary": "baseline", "layer": "", "accuracy": res.accuracy,
                            **base_tag})

    lengths = np.concatenate([ds.lengths_train, ds.lengths_test])
    return {
        "dataset": ds.name,
        "archive": ds.archive,
        "status": "done",
        "source": ds.source,
        **n,
        "channels": int(ds.n_channels),
        "length_min": int(lengths.min()),
        "length_max": int(lengths.max()),
        "equal_length": bool(ds.equal_length),
        "has_missing": bool(ds.has_missing),
        "tivit": {
            "model": name,
            "layers": layers,
            "accuracy": {str(k): accuracy[k] for k in layers},
            "fit_seconds": {str(k): fit_s[k] for k in layers},
            "predict_seconds": {str(k): predict_s[k] for k in layers},
            "cv_layer": int(choice.layer),
            "cv_scores": {str(k): v for k, v in choice.scores.items()},
            "cv_folds": int(choice.n_splits),
            "searched": searched,
            "oracle_layer": int(oracle),
            "last_layer": int(layers[-1]),
            "embedding_dim": int(train.dim),
            "n_fit": int(len(fit)),  # training series the heads saw (the paper preset: a random 80 %)
            **tag,
            **timing,
        },
        "baselines": baselines,
        "results": results,
        "summary": summary,
        "seconds": time.perf_counter() - start,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------
# files


def _versions(names: Sequence[str] = _VERSIONED) -> dict[str, str]:
    """Python's version and each package's (``"not installed"`` when absent).

    tivit's own is the code's ``__version__``: an editable install's metadata keeps the version it
    was installed with until it is reinstalled."""
    from importlib.metadata import PackageNotFoundError, version

    from tivit import __version__

    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = __version__ if name == "tivit" else version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _csv_text(rows: Iterable[dict], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


def _run_record_problem(record: Any) -> str | None:
    """Why a parsed ``runs.jsonl`` line is not one tivit wrote (None when it is)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("dataset"), str) or record.get("status") not in ("done", "failed"):
        return "no dataset name and done/failed status"
    if record["status"] == "done" and not (isinstance(record.get("results"), list)
                                           and isinstance(record.get("summary"), list)
                                           and isinstance(record.get("tivit"), dict)):
        return "a finished dataset without its results, summary and tivit entries"
    return None


def run_records(out_dir: str | os.PathLike) -> list[dict]:
    """Every line of ``runs.jsonl`` in order; a line tivit did not write is a :class:`CorruptFileError`."""
    return read_jsonl(Path(out_dir) / RUNS_FILE, check=_run_record_problem)


def finished_records(out_dir: str | os.PathLike) -> list[dict]:
    """The ``done`` line of every finished dataset in ``runs.jsonl`` (the last one per dataset)."""
    return _finished(run_records(out_dir))


def _finished(records: Iterable[dict]) -> list[dict]:
    done: dict[str, dict] = {}
    for record in records:
        if record["status"] == "done":
            done[record["dataset"]] = record
    return list(done.values())


def data_files(name: str, data_dir: Any) -> dict[str, dict[str, str]]:
    """The TRAIN and TEST files a dataset is read from, with their SHA-256: a resumed run checks that
    the datasets it keeps were computed from the same data (another ``--data-dir``, an edited file)."""
    from tivit.data import find_dataset

    info = find_dataset(name, data_dir)
    return {split: {"file": str(info.file(split)), "sha256": sha256_file(info.file(split))}
            for split in ("TRAIN", "TEST")}


def _check_kept_data(records: Sequence[dict], names: Sequence[str], data_dir: Any) -> None:
    """Refuse to resume when a finished dataset's files are not the ones it was computed from."""
    changed = []
    for record in records:
        before = record.get("data_files")
        if record["dataset"] not in names or not isinstance(before, dict):  # older runs did not record them
            continue
        now = data_files(record["dataset"], data_dir)
        if any(before.get(s, {}).get("sha256") != now[s]["sha256"] for s in now):
            changed.append(f"{record['dataset']} (was {before.get('TRAIN', {}).get('file')}, "
                           f"now {now['TRAIN']['file']})")
    if changed:
        raise BenchError(
            f"--resume: the data of {len(changed)} finished dataset(s) differs from what they were computed "
            f"from: {'; '.join(changed[:5])}. Resume with the same data (--data-dir), or use another --out"
        )


def write_tables(out_dir: str | os.PathLike, order: Sequence[str] | None = None) -> list[dict]:
    """Rewrite ``results.csv`` and ``summary.csv`` from ``runs.jsonl`` (atomically); return the records.

    Args:
        out_dir: a bench output folder.
        order: dataset order of the rows (default: the order they finished in).
    """
    out_dir = Path(out_dir)
    records = finished_records(out_dir)
    if order is not None:
        rank = {n: i for i, n in enumerate(order)}
        records.sort(key=lambda r: rank.get(r["dataset"], len(rank)))
    atomic_write_text(out_dir / RESULTS_FILE, _csv_text((r for rec in records for r in rec["results"]),
                                                         RESULT_COLUMNS))
    atomic_write_text(out_dir / SUMMARY_FILE, _csv_text((r for rec in records for r in rec["summary"]),
                                                         SUMMARY_COLUMNS))
    return records


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` while a run writes it, so two runs cannot interleave
    their results there (``flock``: released by the OS if the process dies; not on Windows)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchError(f"--out {out_dir} is a file; give a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    from tivit._lock import held

    def busy(owner: str) -> BenchError:
        return BenchError(f"another tivit bench (pid {owner}) is writing to {out_dir}; wait for it to finish, "
                          "or choose another --out")

    with held(out_dir / LOCK_FILE, busy):
        yield


def _open_out_dir(out_dir: Path, config: dict, resume: bool) -> tuple[dict | None, list[dict]]:
    """Check that ``out_dir`` may be written (fresh, or a resumable run of the same config).

    Returns:
        The run's ``config.json`` and its finished records (None and ``[]`` for a fresh folder).
    """
    config_path = out_dir / CONFIG_FILE
    # the folder is locked by this run: a temporary file in it was left by a writer that was killed
    sweep_temporaries(out_dir, age_s=0)
    existing = [p for p in out_dir.iterdir() if p.name != LOCK_FILE] if out_dir.is_dir() else []
    if not existing:
        return None, []
    if not resume:
        raise BenchError(
            f"output folder {out_dir} is not empty; pass --resume to continue the run in it, "
            "or choose another --out"
        )
    if not config_path.is_file():
        raise BenchError(f"output folder {out_dir} is not empty and holds no {CONFIG_FILE}: not a tivit bench run")
    try:
        old = read_json(config_path)
    except CorruptFileError as err:
        raise BenchError(f"{err}; choose another --out") from err
    if not isinstance(old, dict) or not isinstance(old.get("config", {}), dict):
        raise BenchError(f"{config_path} is not a run's settings (changed outside tivit); choose another --out")
    before = {**_LEGACY, **old.get("config", {})}
    # the precision asked for may differ ("auto" is bf16 on a GPU, fp32 on a CPU): the one the
    # encoder resolves to is compared once it is loaded (_run_locked)
    diff = sorted(k for k in set(before) | set(config) if before.get(k) != config.get(k) and k != "precision")
    if diff:
        raise BenchError(
            f"--resume: {out_dir} holds a run with different settings ({', '.join(diff)}); "
            "use the same settings or another --out"
        )
    from tivit import __version__

    versions = old.get("versions")
    was = versions.get("tivit") if isinstance(versions, dict) else None
    if was is not None and was != __version__:  # its numbers may differ: one table, one version
        raise BenchError(f"--resume: {out_dir} holds results of tivit {was}, and this is tivit {__version__}, "
                         f"whose numbers may differ; finish that run with tivit {was}, or start another --out")
    runs = out_dir / RUNS_FILE
    try:
        records = run_records(out_dir)  # every line whole and tivit's, before any dataset is computed
    except CorruptFileError as err:
        raise BenchError(str(err)) from err
    text = runs.read_bytes() if runs.is_file() else b""
    if text and not text.endswith(b"\n"):  # whole lines, only the final newline lost (an editor): restore it
        atomic_write_bytes(runs, text + b"\n")
    return old, _finished(records)


def run_bench(
    datasets: str | Sequence[str],
    out_dir: str | os.PathLike,
    config: BenchConfig = BenchConfig(),
    *,
    archive: str = "ucr",
    data_dir: Any = None,
    resume: bool = False,
    batch_size: int | str = "auto",
    device: str | None = None,
    cache_dir: Any = None,
    progress: bool = True,
    on_dataset: Callable[[dict, int, int, float | None], None] | None = None,
) -> BenchRun:
    """Run the benchmark over ``datasets`` and write ``out_dir`` (see the module docstring).

    Args:
        datasets: ``"all"`` (every dataset of ``archive``), ``"GunPoint,Coffee"`` or a list.
        out_dir: output folder; must be empty or missing unless ``resume``.
        config: the settings that decide the numbers.
        archive: ``"ucr"`` or ``"uea"`` (which datasets ``"all"`` means).
        data_dir: folder searched before the bundled datasets.
        resume: continue a run in ``out_dir``: finished datasets are skipped, never re-written.
        batch_size: images per encoder forward pass, or ``"auto"``.
        device: ``"cpu"``, ``"cuda"``...; default: CUDA if available.
        cache_dir: embedding cache folder (None: default; False: off).
        progress: show extraction progress bars.
        on_dataset: called after each dataset as ``on_dataset(record, index, total, eta_seconds)``;
            a failed dataset's record has ``status == "failed"`` and ``error``.

    Returns:
        A :class:`BenchRun`.
    """
    out_dir = Path(out_dir)
    names = resolve_datasets(datasets, archive, data_dir)
    with _exclusive(out_dir):
        old, kept = _open_out_dir(out_dir, config.to_dict(), resume)  # before the (possibly slow) encoder load
        _check_kept_data(kept, names, data_dir)
        return _run_locked(names, out_dir, old, kept, config, archive, data_dir, batch_size, device, cache_dir,
                           progress, on_dataset)


def _run_locked(names, out_dir, old, kept, config, archive, data_dir, batch_size, device, cache_dir, progress,
                on_dataset):
    """:func:`run_bench` once ``out_dir`` is locked and checked (``old``, ``kept``: what it holds)."""
    from tivit.encoders import EncoderError, check_pool, load_encoder, resolve_layers
    from tivit.presets import paper_layer

    encoder = load_encoder(config.encoder, weights=config.weights, device=device, seed=config.seed,
                           precision=config.recipe.precision_for(config.precision), **dict(config.encoder_args))
    try:  # before anything is written: a dataset failing on them would leave a run --resume refuses to fix
        resolve_layers(config.layers, encoder.depth)
        check_pool(config.pool, encoder.has_cls)
    except EncoderError as err:
        raise BenchError(f"{err} (nothing was run)") from None
    was = (old or {}).get("encoder_info", {}).get("precision")
    if was is not None and was != encoder.precision:  # fp32 and bf16 rows never share a run
        raise BenchError(f"--resume: {out_dir} holds results computed in {was}; this encoder runs in "
                         f"{encoder.precision} (--precision {was} continues the run), or use another --out")
    header = {
        "config": config.to_dict(),
        "preset": config.recipe.to_dict(),
        # the preset's own layer rule (paper: block 14 of 32, the same share of other depths); its test
        # accuracy is the results row of that layer
        "preset_layer": paper_layer(encoder.depth) if config.recipe.layer == "paper" else config.recipe.layer,
        "renderer_config": config.renderer_config().to_dict(),
        "archive": archive,
        "datasets": names,
        "encoder": encoder.identity(),
        "encoder_info": {"depth": encoder.depth, "width": encoder.width, "input_size": encoder.input_size,
                         "precision": encoder.precision, "device": encoder.device},
        "model": model_name(encoder.name),
        "weights": encoder.weights,
        "random_weights": bool(encoder.random_weights),
        "seeds": {"seed": config.seed, "used_for": "random weights, CV folds, heads, the layer search, baselines"},
        "versions": _versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "batch_size": batch_size,
    }
    config_path = out_dir / CONFIG_FILE
    if old is not None:  # resume: keep the first start time; datasets = those finished + those asked for
        header["started"] = old.get("started", header["started"])
        finished = {r["dataset"] for r in kept}
        header["datasets"] = list(dict.fromkeys([n for n in old.get("datasets", []) if n in finished] + names))
        header["resumed"] = list(old.get("resumed", [])) + [datetime.now(timezone.utc).isoformat(timespec="seconds")]
    atomic_write_json(config_path, header)
    run = BenchRun(out_dir, random_weights=bool(encoder.random_weights))
    done = {r["dataset"] for r in write_tables(out_dir, header["datasets"])}
    run.skipped = [n for n in names if n in done]
    todo = [n for n in names if n not in done]
    _run_datasets(todo, run, encoder, config, header, data_dir, batch_size, cache_dir, progress, on_dataset)
    run.records = [r for r in write_tables(out_dir, header["datasets"]) if r["dataset"] in names]
    return run


def _work(name: str, data_dir: Any) -> float:
    """Rough cost of a dataset for the ETA: lines in its TRAIN and TEST files (about one per series)."""
    from tivit.data import find_dataset

    try:
        info = find_dataset(name, data_dir)
        return float(sum(info.file(split).read_bytes().count(b"\n") for split in ("TRAIN", "TEST")))
    except (OSError, ValueError):
        return 1.0


def _train_sizes(data_dir: Any):
    """``name -> training series`` (None when the dataset is not at hand), memoised for one run."""
    from tivit.data import DatasetError, count_series, find_dataset

    known: dict[str, int | None] = {}

    def train_size(name: str) -> int | None:
        if name not in known:
            try:
                known[name] = count_series(find_dataset(name, data_dir).file("TRAIN"))
            except (DatasetError, OSError):
                known[name] = None
        return known[name]

    return train_size


def _run_datasets(todo, run, encoder, config, header, data_dir, batch_size, cache_dir, progress, on_dataset):
    """Evaluate each dataset in turn; its ``runs.jsonl`` line is written before anything else."""
    from tivit.data import load_dataset
    from tivit.presets import published_stream

    train_size = _train_sizes(data_dir)
    work = {name: _work(name, data_dir) for name in todo}
    started, done_work = time.perf_counter(), 0.0
    for index, name in enumerate(todo, start=1):
        try:
            files = data_files(name, data_dir)
            ds = load_dataset(name, data_dir)
            stream, split_note = None, None
            if config.recipe.fit_fraction < 1.0:  # the paper's split, drawn where the published run draws it
                stream, split_note = published_stream(name, ds.archive, config.seed, train_size)
            record = evaluate_dataset(ds, encoder, config, batch_size=batch_size, cache_dir=cache_dir,
                                      progress=progress, fit_stream=stream)
            record["data_files"] = files
            if split_note is not None:
                record["tivit"]["fit_split"] = split_note
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # one bad dataset must not lose the others; the line says why
            record = {"dataset": name, "status": "failed", "error": f"{type(err).__name__}: {err}",
                      "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            run.failed[name] = record["error"]
        atomic_append_lines(run.out_dir / RUNS_FILE, [json.dumps(record, sort_keys=True, default=str)])  # commit
        write_tables(run.out_dir, header["datasets"])
        done_work += work[name]
        left = sum(work[n] for n in todo[index:])
        eta = (time.perf_counter() - started) / max(done_work, 1.0) * left  # time per series so far
        if on_dataset is not None:
            on_dataset(record, index, len(todo), eta)

"""Optuna search over layer, pooling, renderer and head, scored by cross-validation on TRAIN only.

The published recipe fixed the layer by looking at validation results across the whole archive.
tivit chooses per dataset, honestly: every trial is scored by stratified k-fold cross-validation
on the training split (:mod:`tivit.cv`); the test split is read once, after the search, to score
the best trial.

Cost model. The encoder is the expensive part, so embeddings of every searched layer are computed
once per (renderer config, pool) and kept in memory for the rest of the study (and on disk by
:mod:`tivit.embed`'s cache, across processes). A trial that changes only the layer, the head or
its regularisation never runs the encoder: it fits a few small heads.

Study mechanics (Optuna): ``TPESampler(seed=seed)`` makes a run deterministic; after each fold a
trial reports its running mean accuracy and ``MedianPruner`` stops hopeless trials early. With a
storage (``sqlite:///study.db``) every finished trial is written there; an interrupted study
resumes (``resume=True``) from all its finished trials and runs until ``n_trials`` trials have
finished (complete or pruned). See :func:`open_study` for why trials run in memory meanwhile.

Entry points: :func:`search` (a dataset, end to end), :func:`search_layer` (layer and C on
embeddings already in memory: ``TiViTClassifier(layer="auto")`` and ``tivit bench``),
:func:`evaluate_search` (search on train embeddings, score on test ones: the bench column),
:func:`tivit.search_plots.plot_search` (PNG plots of a study).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from tivit._atomic import atomic_write_json

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from tivit.encoders import FrozenEncoder

HEADS = ("linear", "mlp", "layer_mix")
DEFAULT_C = (1e-3, 1e2)
C_PER_DECADE = 2  # C is searched log-uniformly, then rounded to this grid so that trials share fits


class SearchError(ValueError):
    """A search cannot run as asked (bad space, existing study without resume, mismatched resume)."""


# ---------------------------------------------------------------------------------------------
# the space


@dataclass(frozen=True)
class SearchSpace:
    """What a study may choose. Every choice is categorical except ``C`` (log-uniform).

    Each distinct (renderer config, pool) costs one embedding pass over the training split; layers,
    heads and ``C`` are free. The default searches layer and ``C`` of the linear head only.

    Attributes:
        layers: ``"all"`` (1..depth), or a layer request understood by
            :func:`tivit.encoders.resolve_layers` (``"0-12"``, ``(4, 8, 12)``).
        pools: pooling names (``mean``, ``mean_patch``, ``cls``, ``mean+cls``).
        heads: head kinds: ``linear``, ``mlp``, ``layer_mix`` (all layers mixed: no layer choice).
        C: bounds of the log-uniform inverse L2 strength of ``linear`` and ``layer_mix``.
        renderers: rendering method names (``tivit``, ``gasf``, ...).
        renderer_params: per method, the candidate values of its parameters, as
            ``(("tivit", (("stride", (0.1, 0.5, 1.0)), ("segment", ("sqrt", 16)))),)``; see
            :meth:`from_dict` for the friendlier dict form.
    """

    layers: str | tuple[int, ...] = "all"
    pools: tuple[str, ...] = ("mean",)
    heads: tuple[str, ...] = ("linear",)
    C: tuple[float, float] = DEFAULT_C
    renderers: tuple[str, ...] = ("tivit",)
    renderer_params: tuple[tuple[str, tuple[tuple[str, tuple[Any, ...]], ...]], ...] = ()

    def __post_init__(self) -> None:
        for name in ("pools", "heads", "renderers"):
            values = getattr(self, name)
            if isinstance(values, str):
                values = (values,)
            values = tuple(dict.fromkeys(values))
            if not values:
                raise SearchError(f"search space: {name} is empty")
            object.__setattr__(self, name, values)
        if not isinstance(self.layers, str):
            object.__setattr__(self, "layers", tuple(int(k) for k in np.atleast_1d(self.layers)))
        unknown = [h for h in self.heads if h not in HEADS]
        if unknown:
            raise SearchError(f"search space: unknown heads {unknown}; choose from {', '.join(HEADS)}")
        lo, hi = (float(c) for c in self.C)
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise SearchError(f"search space: C bounds must satisfy 0 < low <= high, got {self.C}")
        object.__setattr__(self, "C", (lo, hi))
        params = []
        for method, pairs in self.renderer_params:
            if method not in self.renderers:
                raise SearchError(f"search space: parameters given for renderer {method!r}, which is not searched")
            norm = []
            for name, values in pairs:
                values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
                if not values:
                    raise SearchError(f"search space: no values for renderer parameter {method}.{name}")
                norm.append((str(name), values))
            params.append((method, tuple(norm)))
        object.__setattr__(self, "renderer_params", tuple(params))

    @classmethod
    def from_dict(cls, spec: dict) -> "SearchSpace":
        """Build a space from JSON-like data; ``renderer_params`` as ``{method: {param: [values]}}``."""
        spec = dict(spec)
        rp = spec.pop("renderer_params", {}) or {}
        if isinstance(rp, dict):
            rp = tuple((m, tuple((p, tuple(v)) for p, v in params.items())) for m, params in rp.items())
        unknown = set(spec) - {"layers", "pools", "heads", "C", "renderers"}
        if unknown:
            raise SearchError(f"search space: unknown keys {sorted(unknown)}")
        for key in ("pools", "heads", "renderers", "C"):
            if key in spec and not isinstance(spec[key], str):
                spec[key] = tuple(spec[key])
        if "layers" in spec and not isinstance(spec["layers"], str):
            spec["layers"] = tuple(spec["layers"])
        return cls(renderer_params=rp, **spec)

    def to_dict(self) -> dict:
        """JSON-able form (the inverse of :meth:`from_dict`)."""
        return {
            "layers": self.layers if isinstance(self.layers, str) else list(self.layers),
            "pools": list(self.pools),
            "heads": list(self.heads),
            "C": list(self.C),
            "renderers": list(self.renderers),
            "renderer_params": {m: {p: list(v) for p, v in pairs} for m, pairs in self.renderer_params},
        }

    def params_of(self, method: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """The ``(name, choices)`` renderer parameters searched for ``method``."""
        return dict(self.renderer_params).get(method, ())

    @property
    def embedding_keys(self) -> int:
        """Number of distinct (renderer config, pool) pairs: the most embedding passes a study makes."""
        per_method = [math.prod(len(v) for _, v in self.params_of(m)) for m in self.renderers]
        return sum(per_method) * len(self.pools)


@dataclass(frozen=True)
class TrialConfig:
    """One point of the space: everything needed to embed, fit and predict."""

    renderer: str
    renderer_params: tuple[tuple[str, Any], ...]
    pool: str
    head: str
    layer: int | None  # None for layer_mix (all searched layers)
    C: float | None = None
    hidden: int | None = None
    weight_decay: float | None = None

    @property
    def embedding_key(self) -> tuple:
        """What decides the embeddings (renderer, its parameters, pooling): trials sharing it share one extraction."""
        return (self.renderer, self.renderer_params, self.pool)

    def head_kwargs(self) -> dict:
        """Keyword arguments of :class:`tivit.heads.HeadClassifier` for this trial."""
        kwargs: dict[str, Any] = {"kind": self.head}
        if self.C is not None:
            kwargs["C"] = self.C
        if self.hidden is not None:
            kwargs["hidden"] = (self.hidden,)
        if self.weight_decay is not None:
            kwargs["weight_decay"] = self.weight_decay
        return kwargs

    def to_dict(self) -> dict:
        """Plain JSON-able values."""
        out = asdict(self)
        out["renderer_params"] = dict(self.renderer_params)
        return out


def snap_C(C: float, bounds: tuple[float, float] = (0.0, math.inf)) -> float:
    """Round ``C`` to the log grid of :data:`C_PER_DECADE` values per decade, kept within ``bounds``.

    Two values per decade (steps of x3.2, finer than scikit-learn's ``LogisticRegressionCV`` grid)
    are about what a CV estimate on a small training set can tell apart, and trials that return to
    a C reuse its fold fits.
    """
    snapped = 10.0 ** (round(math.log10(float(C)) * C_PER_DECADE) / C_PER_DECADE)
    return float(min(max(snapped, bounds[0]), bounds[1]))


def suggest(trial: "optuna.trial.BaseTrial", space: SearchSpace, layers: Sequence[int]) -> TrialConfig:
    """Draw a :class:`TrialConfig` from ``trial`` (also replays fixed params with ``FixedTrial``).

    Parameter names: ``renderer``, ``<method>.<param>``, ``pool``, ``head``, ``layer``, ``C``,
    ``mlp.hidden``, ``mlp.weight_decay``.
    """
    method = trial.suggest_categorical("renderer", list(space.renderers))
    params = tuple((name, trial.suggest_categorical(f"{method}.{name}", list(values)))
                   for name, values in space.params_of(method))
    pool = trial.suggest_categorical("pool", list(space.pools))
    head = trial.suggest_categorical("head", list(space.heads))
    layer = None if head == "layer_mix" else int(trial.suggest_categorical("layer", list(layers)))
    C = hidden = weight_decay = None
    if head in ("linear", "layer_mix"):
        C = snap_C(trial.suggest_float("C", space.C[0], space.C[1], log=True), space.C)
    else:
        hidden = int(trial.suggest_categorical("mlp.hidden", [64, 256]))
        weight_decay = float(trial.suggest_float("mlp.weight_decay", 1e-5, 1e-1, log=True))
    return TrialConfig(method, params, pool, head, layer, C, hidden, weight_decay)


# ---------------------------------------------------------------------------------------------
# the objective


def _features(values: np.ndarray, layers: Sequence[int], config: TrialConfig) -> np.ndarray:
    """The head's input: one layer ``(n, d)``, or all layers ``(n, L, d)`` for ``layer_mix``."""
    if config.layer is None:
        return values
    return values[:, list(layers).index(config.layer)]


def _head(config: TrialConfig, seed: int):
    from tivit.heads import HeadClassifier

    return HeadClassifier(random_state=seed, **config.head_kwargs())


def _cv_mean(score_fold: Callable[[int], float], n_folds: int, trial: "optuna.trial.Trial | None") -> float:
    """Mean of ``score_fold(i)`` over the folds; reports the running mean after each fold and prunes."""
    scores = []
    for step in range(n_folds):
        scores.append(float(score_fold(step)))
        if trial is not None:
            import optuna

            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
    return float(np.mean(scores))


class _EmbeddingStore:
    """Train embeddings of every searched layer, one entry per (renderer config, pool), in memory.

    ``compute(config) -> (values (n, L, d), layers)`` runs only on a miss; ``passes`` counts misses.
    """

    def __init__(self, compute: Callable[[TrialConfig], tuple[np.ndarray, tuple[int, ...]]]) -> None:
        self._compute = compute
        self._store: dict[tuple, tuple[np.ndarray, tuple[int, ...]]] = {}
        self.passes = 0
        self.seconds = 0.0

    def put(self, key: tuple, values: np.ndarray, layers: Sequence[int]) -> None:
        self._store[key] = (values, tuple(layers))

    def get(self, config: TrialConfig) -> tuple[np.ndarray, tuple[int, ...]]:
        key = config.embedding_key
        if key not in self._store:
            start = time.perf_counter()
            self._store[key] = self._compute(config)
            self.seconds += time.perf_counter() - start
            self.passes += 1
        return self._store[key]


def _objective(space: SearchSpace, layers: Sequence[int], store: _EmbeddingStore, y: np.ndarray,
               folds: Sequence[tuple[np.ndarray, np.ndarray]], seed: int, prune: bool):
    from tivit._threads import one_torch_thread
    from tivit.cv import LinearFoldScores, quiet_fold_fit

    linear = LinearFoldScores(y, folds)

    def objective(trial: "optuna.trial.Trial") -> float:
        config = suggest(trial, space, layers)
        values, have = store.get(config)
        features = _features(values, have, config)
        if config.head == "linear":

            def score_fold(i: int) -> float:
                return linear.accuracy((config.embedding_key, config.layer), features, i, config.C)
        else:

            def score_fold(i: int) -> float:
                fit_idx, val_idx = folds[i]
                with quiet_fold_fit():
                    head = _head(config, seed).fit(features[fit_idx], y[fit_idx])
                return float(np.mean(head.predict(features[val_idx]) == y[val_idx]))

        with one_torch_thread():  # the heads' numbers must not depend on the core count (tivit._threads)
            return _cv_mean(score_fold, len(folds), trial if prune else None)

    return objective


# ---------------------------------------------------------------------------------------------
# study plumbing


class _NoInterruptedTrialWarnings(logging.Filter):
    """Drops Optuna's two "Trial N failed" warnings (the first with a traceback) for a trial stopped
    by Ctrl-C: no trial was at fault, and the caller reports the interruption in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.after_interrupt = False

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info
        if exc and exc[0] is not None and issubclass(exc[0], KeyboardInterrupt):
            self.after_interrupt = True  # the next "failed with value" line belongs to the same trial
            return False
        if self.after_interrupt and "failed with value" in record.getMessage():
            self.after_interrupt = False
            return False
        return True


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial_logger = logging.getLogger("optuna.study._optimize")  # where Optuna reports failed trials
    interrupted = _NoInterruptedTrialWarnings()
    trial_logger.addFilter(interrupted)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        trial_logger.removeFilter(interrupted)
        optuna.logging.set_verbosity(level)


def _sampler(seed: int):
    import optuna

    class TrialSeededTPESampler(optuna.samplers.TPESampler):
        """TPE whose randomness at trial k is seeded from ``(seed, k)``.

        A sampler's random state is not in the storage: a resumed study got a fresh sampler whose
        RNG started from the seed again and drew the first trials' parameters a second time. Seeded
        per trial, an interrupted and resumed study draws what an uninterrupted one draws (the rest
        of TPE's state is the trial history, which the storage holds).
        """

        def before_trial(self, study, trial) -> None:
            for holder in (self, getattr(self, "_random_sampler", None)):  # TPE, and its start-up sampler
                rng = getattr(getattr(holder, "_rng", None), "rng", None)
                if rng is not None:
                    rng.seed([int(seed) % 2**32, trial.number])
            super().before_trial(study, trial)

    # group=True: conditional parameters (C only for linear heads, layer not for layer_mix) are
    # modelled jointly within each group instead of falling back to independent sampling. Both are
    # chosen knowingly: Optuna's "experimental feature" warnings about them say nothing to a user.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return TrialSeededTPESampler(seed=int(seed), multivariate=True, group=True)


def _pruner(prune: bool):
    import optuna

    if not prune:
        return optuna.pruners.NopPruner()
    # Let 5 trials finish before pruning anything, and never judge a trial on a single fold.
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def _finished(study: "optuna.Study") -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _sqlite_pragmas(connection, _record) -> None:
    # WAL + synchronous=NORMAL: a commit no longer waits for fsync (the study reports after every
    # fold, so that wait dominated a search: ~5 ms x hundreds of commits). The database stays
    # consistent; a killed process loses nothing, a power cut at most the last few reports.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _rdb_storage(url: str) -> "optuna.storages.RDBStorage":
    """An Optuna RDB storage for ``url``; SQLite files get WAL journaling (see ``_sqlite_pragmas``)."""
    import optuna

    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise SearchError(f"storage must be a database URL such as sqlite:///study.db, got {url!r}")
    from sqlalchemy.exc import SQLAlchemyError

    try:
        storage = optuna.storages.RDBStorage(url)
    except (SQLAlchemyError, OSError, ValueError, ImportError) as err:  # no such folder, server down, no driver
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise SearchError(f"cannot open the study storage {_storage_label(url)}: {reason}") from err
    if url.startswith("sqlite:") and ":memory:" not in url:  # disposing would drop an in-memory database
        from sqlalchemy import event

        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # connections opened while creating the tables predate the pragmas
    return storage


@contextlib.contextmanager
def study_lock(storage: Any, study_name: str):
    """Hold a lock on ``study_name`` in an SQLite file while a search runs it: two processes on one
    study both ran every trial and stored them twice. A lock file beside the database, one per
    study (other studies in the file run freely); the OS drops it when its process dies. Server
    databases (PostgreSQL, MySQL) and in-memory storage are not guarded."""
    import hashlib

    from tivit._lock import held

    path = None
    if isinstance(storage, str) and storage.startswith("sqlite:///") and ":memory:" not in storage:
        # the file itself, however named: '?timeout=30' or a link to it must find the same lock
        path = Path(storage[len("sqlite:///"):].split("?", 1)[0]).expanduser().resolve()
    if path is None or not path.parent.is_dir():  # a folder that does not exist: open_study says so
        yield
        return
    lock = path.parent / f".{path.name}.{hashlib.sha256(study_name.encode()).hexdigest()[:12]}.lock"
    def busy(owner: str) -> SearchError:
        return SearchError(f"study {study_name!r} in {storage} is being run by another process (pid {owner}); "
                           "wait for it to finish, or choose another study name")

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(held(lock, busy))
        except OSError as err:  # a folder it cannot write in (the database could not be written either)
            raise SearchError(f"cannot use the study storage {_storage_label(storage)}: {err}") from err
        yield


def open_study(
    study_name: str,
    storage: "str | optuna.storages.BaseStorage | None",
    *,
    seed: int,
    prune: bool,
    resume: bool,
    meta: dict,
) -> tuple["optuna.Study", list[Callable]]:
    """The study to optimise, and the callbacks that keep ``storage`` up to date.

    Trials run in an in-memory study (sampler, pruner and the per-fold reports stay in memory:
    an RDB storage costs several SQL statements per report, which dominated a search); each
    FINISHED trial is copied whole into the study of that name in ``storage``. So the storage
    only ever holds finished trials, an interrupted trial leaves nothing behind, and a resumed
    study starts from every finished trial (same sampler history).

    Raises:
        SearchError: the study exists and ``resume`` is False, or it was made with other ``meta``.
    """
    import optuna
    from optuna.trial import TrialState

    live = optuna.create_study(direction="maximize", sampler=_sampler(seed), pruner=_pruner(prune),
                               study_name=study_name)
    if storage is None:
        return live, []
    if isinstance(storage, str):
        storage = _rdb_storage(storage)
    try:
        durable = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                      load_if_exists=bool(resume))
    except optuna.exceptions.StorageInternalError as err:
        raise SearchError(f"the study storage {_storage_label(storage)} failed: {err}") from err
    except optuna.exceptions.DuplicatedStudyError:
        raise SearchError(
            f"study {study_name!r} already exists in {_storage_label(storage)}; "
            "pass resume=True (--resume) to continue it, or choose another study name"
        ) from None
    # pruning changes which trials finish, and so what the sampler learns from: one study, one setting
    meta = json.loads(json.dumps({**meta, "prune": bool(prune)}, default=str))  # as the storage hands it back
    old = durable.user_attrs.get("tivit")
    for later in ("precision", "train_sha256", "prune"):
        if isinstance(old, dict) and later in meta:
            old = {later: meta[later], **old}  # studies from before it was recorded did not say
    if old is None and durable.get_trials(deepcopy=False):
        raise SearchError(f"study {study_name!r} in {_storage_label(storage)} holds trials that tivit did not make "
                          "(no tivit settings are recorded in it); choose another study name")
    if old is None:
        durable.set_user_attr("tivit", meta)
    elif old != meta:
        diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
        raise SearchError(
            f"study {study_name!r} was created with different settings ({', '.join(diff)}); "
            "resume it with the same dataset, encoder, space, seed and folds, or choose another study name"
        )
    live.add_trials(durable.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def keep(study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            durable.add_trial(trial)

    return live, [keep]


def _run(study: "optuna.Study", objective, n_trials: int, progress: bool, label: str,
         callbacks: Sequence[Callable] = ()) -> int:
    """Run until the study holds ``n_trials`` finished trials; return how many ran now."""
    from tivit._progress import progress_bar

    remaining = max(0, int(n_trials) - _finished(study))
    if remaining == 0:
        return 0
    with progress_bar(remaining, label, enabled=progress, unit="trials") as bar:

        def tick(study, trial) -> None:
            bar.advance(1)
            with contextlib.suppress(ValueError):
                bar.describe(f"{label} (best CV {study.best_value:.3f})")

        # The fold fits are tiny matrix problems: a multi-threaded BLAS only adds overhead there
        # (~1.7x slower on 2 cores). Limits numpy's BLAS only; torch (the encoder) keeps its threads.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            study.optimize(objective, n_trials=remaining, callbacks=[tick, *callbacks], gc_after_trial=False)
    return remaining


def layer_scores(study: "optuna.Study") -> dict[int, float]:
    """Best CV accuracy of the completed trials of ``study``, per layer."""
    from optuna.trial import TrialState

    best: dict[int, float] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "layer" in t.params:
            k = int(t.params["layer"])
            best[k] = max(best.get(k, -1.0), float(t.value))
    return dict(sorted(best.items()))


def _counts(study: "optuna.Study") -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
# search on embeddings in memory (layer="auto", the bench column)


@dataclass
class LayerSearch:
    """Outcome of :func:`search_layer`.

    Attributes:
        layer: chosen layer (None when the best head is ``layer_mix``).
        C: chosen inverse L2 strength (None for ``mlp``).
        head: chosen head kind.
        config: the full :class:`TrialConfig` of the best trial.
        cv_score: its mean cross-validated accuracy on the data given (train).
        layer_scores: best CV accuracy per layer over completed trials.
        n_trials: finished trials; n_folds: folds per trial; seconds: search time.
    """

    layer: int | None
    C: float | None
    head: str
    config: TrialConfig
    cv_score: float
    layer_scores: dict[int, float]
    n_trials: int
    n_folds: int
    seconds: float
    layers: tuple[int, ...] = ()
    seed: int = 0

    def fit_head(self, features, y):
        """Fit the chosen head on ``(n, L, d)`` features (the layers searched) and labels ``y``."""
        values = _as_values(features, self.layers)[0]
        return _head(self.config, self.seed).fit(_features(values, self.layers, self.config), np.asarray(y))

    def predict(self, head, features) -> np.ndarray:
        """Predict with a head from :meth:`fit_head` on ``(n, L, d)`` features of the same layers."""
        values = _as_values(features, self.layers)[0]
        return head.predict(_features(values, self.layers, self.config))


def _as_values(features, layers: Sequence[int] | None) -> tuple[np.ndarray, tuple[int, ...]]:
    if layers is not None and len(set(layers)) != len(layers):
        raise SearchError(f"layers {list(layers)} repeat a layer")
    if hasattr(features, "values") and hasattr(features, "layers"):
        values, have = np.asarray(features.values), tuple(int(k) for k in features.layers)
        if layers is not None and tuple(layers) != have:
            missing = [k for k in layers if k not in have]
            if missing:
                raise SearchError(f"layers {missing} are not in the embeddings (have {list(have)})")
            values, have = values[:, [have.index(k) for k in layers]], tuple(layers)
    else:
        values = np.asarray(features)
        if values.ndim != 3:
            raise SearchError(f"features must be (n, layers, d), got shape {values.shape}")
        have = tuple(range(1, values.shape[1] + 1)) if layers is None else tuple(int(k) for k in layers)
        if len(have) != values.shape[1]:
            raise SearchError(f"{len(have)} layer numbers given for {values.shape[1]} layers of features")
    bad = ~np.isfinite(values).all(axis=(0, 2)) if np.issubdtype(values.dtype, np.number) else None
    if bad is None or bad.any():
        which = "not numbers" if bad is None else f"NaN or inf in layers {[have[i] for i in np.flatnonzero(bad)]}"
        raise SearchError(f"features hold {which}: a head cannot be fitted on them")
    return values, have


def _check_cv_can_score(y: np.ndarray) -> None:
    """Refuse labels whose every class has a single training series: each held-out series' class is
    then missing from its fold's fit part, every trial scores 0, and the "best" is trial 0's."""
    counts = np.unique(np.asarray(y), return_counts=True)[1]
    if len(counts) > 1 and counts.max() < 2:
        raise SearchError(f"every one of the {len(counts)} classes has a single training series: no "
                          "cross-validation fold can score a trial; choose the layer without a search "
                          "(e.g. layer=<int>)")


def search_layer(
    features,
    y,
    *,
    layers: Sequence[int] | None = None,
    n_trials: int = 20,
    heads: Sequence[str] = ("linear",),
    C: tuple[float, float] = DEFAULT_C,
    seed: int = 0,
    n_splits: int = 5,
    max_repeats: int = 3,
    prune: bool = True,
    storage: Any = None,
    study_name: str | None = None,
    resume: bool = False,
    progress: bool = False,
) -> LayerSearch:
    """Choose layer and head regularisation by cross-validation on the embeddings given (train only).

    The encoder never runs here: ``features`` already hold every layer.

    Args:
        features: ``(n, L, d)`` array or :class:`tivit.embed.Embeddings` of the TRAINING series.
        y: ``(n,)`` training labels.
        layers: layer number of each slice (default: ``Embeddings.layers`` or 1..L).
        n_trials: Optuna trials (a small budget: 20 covers 12 layers well with TPE).
        heads: head kinds to search (``linear``, ``mlp``, ``layer_mix``).
        C: log-uniform bounds of the inverse L2 strength.
        seed: seed of folds, sampler and heads; the same seed gives the same choice.
        n_splits: CV folds (capped by the smallest class; repeated for tiny sets, see :mod:`tivit.cv`).
        max_repeats: most repeats of the folds for tiny sets (1: no repeats).
        prune: stop hopeless trials after a few folds (median pruner).
        storage: Optuna storage (None: in memory).
        study_name: name of the study in ``storage``.
        resume: continue an existing study of that name (same features, labels, space and seed).
        progress: show a progress bar.
    """
    from tivit.cv import cv_folds

    values, layers = _as_values(features, layers)
    y = np.asarray(y)
    if len(y) != values.shape[0]:
        raise SearchError(f"{len(y)} labels for {values.shape[0]} samples")
    if int(n_trials) < 1:
        raise SearchError(f"n_trials must be >= 1, got {n_trials}")
    _check_cv_can_score(y)
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    space = SearchSpace(layers=layers, heads=heads, C=tuple(C))
    folds = cv_folds(y, n_splits, seed=seed, max_repeats=max_repeats)
    store = _EmbeddingStore(_no_encoder)
    store.put(("tivit", (), "mean"), values, layers)
    start = time.perf_counter()
    study_name = study_name or f"layer-search-seed{seed}"
    with _quiet_optuna(), study_lock(storage, study_name):
        meta = {"kind": "layer", "seed": seed, "space": space.to_dict(), "n_folds": len(folds),
                "train_sha256": _train_digest(values, y)}
        study, keep = open_study(study_name, storage, seed=seed, prune=prune, resume=resume, meta=meta)
        _run(study, _objective(space, layers, store, y, folds, seed, prune), n_trials, progress, "layer search",
             keep)
    best = study.best_trial
    config = suggest(_fixed(best.params), space, layers)
    return LayerSearch(config.layer, config.C, config.head, config, float(best.value), layer_scores(study),
                       _finished(study), len(folds), time.perf_counter() - start, tuple(layers), int(seed))


def _train_digest(X: np.ndarray, y: np.ndarray) -> str:
    """sha256 of training inputs and labels: a study resumed on other data (a dataset of the same
    name from another folder, or relabelled) must be refused, not mixed with the first one's trials."""
    import hashlib

    from tivit.cache import data_digest

    labels = hashlib.sha256("\x1f".join(map(str, np.asarray(y).tolist())).encode()).hexdigest()
    return hashlib.sha256((data_digest(np.asarray(X)) + labels).encode()).hexdigest()


def _no_encoder(config: TrialConfig):
    raise SearchError(f"search_layer has embeddings of one renderer and pool only; {config} needs another")


def evaluate_search(train_features, y_train, test_features, y_test, **kwargs) -> tuple[LayerSearch, float]:
    """Search on TRAIN embeddings (:func:`search_layer`), refit on all of train, score once on TEST.

    This is the "searched" column of ``tivit bench``. Returns ``(choice, test accuracy)``.

    Args:
        train_features: ``(n, L, d)`` or Embeddings of the training split.
        y_train: training labels.
        test_features: the same layers for the test split.
        y_test: test labels.
        **kwargs: passed to :func:`search_layer`.
    """
    choice = search_layer(train_features, y_train, **kwargs)
    head = choice.fit_head(train_features, y_train)
    accuracy = float(np.mean(choice.predict(head, test_features) == np.asarray(y_test)))
    return choice, accuracy


def _fixed(params: dict):
    import optuna

    return optuna.trial.FixedTrial(dict(params))


# ---------------------------------------------------------------------------------------------
# search on a dataset, end to end


@dataclass
class SearchResult:
    """What :func:`search` found. Numbers from random weights say nothing about a pretrained model.

    Attributes:
        dataset: dataset name.
        best_params: Optuna parameters of the best trial, as sampled (``C`` before rounding).
        best_config: what was used, as a :class:`TrialConfig` dict (renderer params, head kwargs,
            ``C`` rounded), plus ``renderer_config``: the renderer's full config with length rules
            (``segment="2sqrt"``) resolved for this training split.
        cv_score: mean cross-validated accuracy of the best trial on TRAIN.
        test_score: accuracy on TEST of the best configuration refit on all of train (None if not scored).
        n_trials: finished trials in the study (all runs); trials: counts per state.
        trials_this_run: trials run by this call (fewer after a resume).
        seconds: time of this call's trials (embedding passes included; loading the data, the
            encoder and the study not); embed_seconds: of which spent embedding; test_seconds:
            final test scoring.
        embedding_passes: embedding passes over the training split in this call.
        layer_scores: best CV accuracy per layer over completed trials.
        encoder: the encoder's identity; weights: its weights label; random_weights: flag.
        study_name, storage, seed, space, n_folds: how to find and repeat the study (a server
            URL's password masked); normalize, precision: the embeddings' L2 normalisation and the
            encoder's precision, which the best configuration needs to be repeated.
        plots: PNG files written.
    """

    dataset: str
    best_params: dict
    best_config: dict
    cv_score: float
    test_score: float | None
    n_trials: int
    trials: dict[str, int]
    trials_this_run: int
    seconds: float
    embed_seconds: float
    test_seconds: float
    embedding_passes: int
    layer_scores: dict[int, float]
    encoder: dict
    weights: str
    random_weights: bool
    study_name: str
    storage: str | None
    seed: int
    space: dict
    n_folds: int
    plots: list[str] = field(default_factory=list)
    normalize: bool = False
    precision: str = "fp32"

    def to_dict(self) -> dict:
        """Plain JSON-able values, with the random-weights label when it applies."""
        out = asdict(self)
        out["layer_scores"] = {str(k): v for k, v in self.layer_scores.items()}
        out["label"] = "RANDOM WEIGHTS: says nothing about the pretrained model" if self.random_weights else ""
        return out

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON, atomically."""
        return atomic_write_json(path, self.to_dict())

    def summary(self) -> str:
        """A few human lines (the CLI prints them)."""
        cfg = self.best_config
        head = cfg["head"] + (f" C={cfg['C']:.4g}" if cfg.get("C") is not None else "")
        where = "all layers (mix)" if cfg.get("layer") is None else f"layer {cfg['layer']}"
        rparams = ", ".join(f"{k}={v}" for k, v in cfg["renderer_params"].items())
        test = "not scored" if self.test_score is None else f"{self.test_score:.4f}"
        label = "  [RANDOM WEIGHTS]" if self.random_weights else ""
        return (
            f"{self.dataset}: best {where}, pool {cfg['pool']}, {head}, renderer {cfg['renderer']}"
            f"{' (' + rparams + ')' if rparams else ''}{label}\n"
            f"  CV accuracy (train, {self.n_folds} folds) {self.cv_score:.4f} | test accuracy {test}\n"
            f"  {self.n_trials} trials ({self.trials_this_run} this run; {self.trials.get('pruned', 0)} pruned), "
            f"{self.seconds:.1f} s search ({self.embed_seconds:.1f} s embedding, {self.embedding_passes} "
            f"pass{'' if self.embedding_passes == 1 else 'es'}), "
            f"encoder {self.encoder.get('name', '?')} weights {self.weights}"
        )


def segment_length(rule: Any, length: int) -> int | None:
    """A TiViT segment length rule -> the renderer's ``segment`` for series of ``length`` steps.

    ``"sqrt"`` (or None) -> None: the renderer takes ``floor(sqrt(T))`` of each series' own length
    (published). ``"<f>sqrt"`` (``"0.5sqrt"``, ``"2sqrt"``) -> ``max(2, round(f * sqrt(length)))``,
    computed from the longest training series. An int is used as is.
    """
    if rule is None or rule == "sqrt":
        return None
    if isinstance(rule, (int, np.integer)) and not isinstance(rule, bool):
        if rule < 1:
            raise SearchError(f"segment length must be >= 1, got {rule}")
        return int(rule)
    text = str(rule).strip().lower()
    if text.endswith("sqrt"):
        try:
            factor = float(text[: -len("sqrt")].rstrip("*") or 1.0)
        except ValueError:
            factor = -1.0
        if factor > 0:
            return int(max(2, round(factor * math.sqrt(length))))
    if text.isdigit():
        return segment_length(int(text), length)
    raise SearchError(f"segment rule {rule!r} is not understood: use 'sqrt', '0.5sqrt', '2sqrt' or an integer")


def _renderer(config: TrialConfig, length: int):
    import renderers

    params = dict(config.renderer_params)
    if config.renderer == "tivit" and "segment" in params:
        params["segment"] = segment_length(params["segment"], length)
    return renderers.make_config(config.renderer, **params)


def _load(dataset: Any, data_dir: Any):
    if isinstance(dataset, str):
        from tivit.data import load_dataset

        return load_dataset(dataset, data_dir)
    for attr in ("X_train", "y_train"):
        if not hasattr(dataset, attr):
            raise SearchError(f"dataset must be a name or a Dataset; {type(dataset).__name__} has no {attr}")
    return dataset


def search(
    dataset: Any,
    encoder: Any = "clip-h14",
    *,
    weights: str = "pretrained",
    encoder_args: dict | None = None,
    space: SearchSpace | dict | None = None,
    n_trials: int = 50,
    storage: Any = None,
    study_name: str | None = None,
    resume: bool = False,
    seed: int = 0,
    n_splits: int = 5,
    max_repeats: int = 3,
    prune: bool = True,
    normalize: bool = False,
    score_test: bool = True,
    data_dir: Any = None,
    device: str | None = None,
    precision: str = "auto",
    batch_size: int | str = "auto",
    cache_dir: Any = None,
    progress: bool = True,
    plots_dir: str | Path | None = None,
    callbacks: Sequence[Callable] = (),
) -> SearchResult:
    """Search layer, pool, renderer and head for one dataset by CV on its TRAIN split.

    The test split is not read until the search is over; then the best configuration is refit on
    all of train and scored once on test (``score_test=False`` skips even that).

    Args:
        dataset: a dataset name (see ``tivit datasets``) or a :class:`tivit.data.Dataset`-like object
            with ``name``, ``X_train``, ``y_train`` (and ``X_test``, ``y_test`` for the final score).
        encoder: an encoder name or a :class:`tivit.encoders.FrozenEncoder`.
        weights: ``pretrained``, ``random`` or a weights file (encoder given by name).
        encoder_args: extra timm arguments (``{"img_size": 64, "depth": 4}``).
        space: a :class:`SearchSpace` (or its dict form); default: layer and ``C`` of the linear head.
        n_trials: total finished trials the study should hold (a resumed study runs the rest).
        storage: None (in memory) or a database URL such as ``"sqlite:///study.db"``.
        study_name: default ``tivit-<dataset>-<encoder>-seed<seed>``.
        resume: continue an existing study of that name (it must have the same settings).
        seed: seed of the sampler, the folds, the heads and random weights.
        n_splits: CV folds (capped by the smallest class; repeated for tiny sets, see :mod:`tivit.cv`).
        max_repeats: most repeats of the folds for tiny sets (1: no repeats).
        prune: fold-level median pruning.
        normalize: L2-normalise embeddings per sample (the published recipe does).
        score_test: score the best configuration on test after the search.
        data_dir: folder of datasets when ``dataset`` is a name.
        precision: the encoder's when given by name (``auto``, ``fp32``, ``bf16``, ``fp16``; see
            :func:`tivit.encoders.load_encoder`).
        device: encoder device; batch_size: images per forward pass; cache_dir: embedding cache
            (None: default, False: off).
        progress: progress bars (trials, and embedding passes).
        plots_dir: write the PNG plots there (see :func:`tivit.search_plots.plot_search`).
        callbacks: extra Optuna callbacks ``f(study, trial)``.
    """
    from tivit._threads import single_threaded
    from tivit.cv import cv_folds
    from tivit.data import series_lengths
    from tivit.embed import extract
    from tivit.encoders import FrozenEncoder, check_pool, load_encoder, resolve_layers

    data = _load(dataset, data_dir)
    # looked up without reading them: the test split stays unread until the search is over
    if score_test and any(inspect.getattr_static(data, attr, None) is None for attr in ("X_test", "y_test")):
        raise SearchError(f"{type(data).__name__} has no X_test/y_test to score once the search is over; "
                          "give them, or pass score_test=False")
    name = str(getattr(data, "name", "dataset"))
    if isinstance(space, dict):
        space = SearchSpace.from_dict(space)
    space = space or SearchSpace()
    if int(n_trials) < 1:
        raise SearchError(f"n_trials must be >= 1, got {n_trials}")
    if isinstance(encoder, FrozenEncoder):
        if weights != "pretrained" or encoder_args or precision != "auto":  # a built encoder has all three
            raise TypeError(f"weights, encoder_args and precision only apply when the encoder is given by name; "
                            f"this encoder has {encoder.weights} and runs in {encoder.precision}")
        enc = encoder
        if device is not None and str(device) != enc.device:  # as extract() does
            enc.to(device)
    else:
        enc = load_encoder(encoder, weights=weights, device=device, seed=seed, precision=precision,
                           **(encoder_args or {}))
    layers = resolve_layers(space.layers, enc.depth)
    for pool in space.pools:
        check_pool(pool, enc.has_cls)
    import renderers

    unknown = [m for m in space.renderers if m not in renderers.METHODS]
    if unknown:
        raise SearchError(f"search space: unknown renderers {unknown}; choose from {', '.join(renderers.METHODS)}")

    X_train, y_train = data.X_train, np.asarray(data.y_train)
    _check_cv_can_score(y_train)
    folds = cv_folds(y_train, n_splits, seed=seed, max_repeats=max_repeats)
    # the longest TRAINING series sets length rules ('2sqrt'): a loaded panel is as wide as the
    # longer of both splits, and the train-only score must not depend on the test split
    panel = np.asarray(X_train, dtype=np.float32)
    length = int(series_lengths(panel if panel.ndim == 3 else panel[:, None]).max())
    for method in space.renderers:  # fail on a bad renderer parameter now, not in trial 37
        for pname, values in space.params_of(method):
            for value in values:
                _renderer(TrialConfig(method, ((pname, value),), space.pools[0], "linear", None), length)

    def embed(config: TrialConfig, X=None):
        emb = extract(
            X_train if X is None else X, _renderer(config, length), enc, layers=layers, pool=config.pool,
            normalize=normalize, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
        )
        return emb.values, emb.layers

    store = _EmbeddingStore(embed)
    meta = {
        "dataset": name,
        "n_train": int(len(y_train)),
        # cut after the longest training series: a loaded panel's width is the longer split's
        "train_sha256": _train_digest(panel[..., :length], y_train),
        "encoder": enc.identity(),
        "precision": enc.precision,
        "space": space.to_dict(),
        "seed": int(seed),
        "n_splits": int(n_splits),
        "n_folds": len(folds),
        "normalize": bool(normalize),
    }
    study_name = study_name or f"tivit-{name}-{enc.name}-seed{seed}"
    with _quiet_optuna(), study_lock(storage, study_name):
        study, keep = open_study(study_name, storage, seed=seed, prune=prune, resume=resume, meta=meta)
        start = time.perf_counter()
        ran = _run(study, _objective(space, layers, store, y_train, folds, seed, prune), n_trials, progress,
                   f"search {name}", [*keep, *callbacks])
    seconds = time.perf_counter() - start
    if not study.get_trials(deepcopy=False, states=(_complete(),)):
        raise SearchError(f"no trial of study {study_name!r} completed (all pruned or failed)")
    best = study.best_trial
    config = suggest(_fixed(best.params), space, layers)

    test_score, test_seconds = None, 0.0
    if score_test:
        t0 = time.perf_counter()
        values, have = store.get(config)
        with single_threaded():
            head = _head(config, seed).fit(_features(values, have, config), y_train)
        test_values, _ = embed(config, data.X_test)
        test_score = float(np.mean(head.predict(_features(test_values, have, config)) == np.asarray(data.y_test)))
        test_seconds = time.perf_counter() - t0

    result = SearchResult(
        dataset=name, best_params=dict(best.params),
        best_config={**config.to_dict(), "renderer_config": _renderer(config, length).to_dict()},
        cv_score=float(best.value),
        test_score=test_score, n_trials=_finished(study), trials=_counts(study), trials_this_run=ran,
        seconds=seconds, embed_seconds=store.seconds, test_seconds=test_seconds, embedding_passes=store.passes,
        layer_scores=layer_scores(study), encoder=enc.identity(), weights=enc.weights,
        random_weights=enc.random_weights, study_name=study_name, storage=_storage_label(storage),
        seed=int(seed), space=space.to_dict(), n_folds=len(folds), normalize=bool(normalize),
        precision=enc.precision,
    )
    if plots_dir is not None:
        from tivit.search_plots import plot_search

        try:
            result.plots = [str(p) for p in plot_search(study, plots_dir, title=name,
                                                          random_weights=enc.random_weights, seed=seed)]
        except OSError as err:  # the search is done and stored: a plot folder that cannot be written costs only plots
            warnings.warn(f"search plots not written to {plots_dir}: {err}", stacklevel=2)
    return result


def _complete():
    from optuna.trial import TrialState

    return TrialState.COMPLETE


def _storage_label(storage: Any) -> str | None:
    """The storage as results and messages name it: a server URL's password is masked."""
    if storage is None:
        return None
    text = storage if isinstance(storage, str) else str(getattr(storage, "url", type(storage).__name__))
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", text)

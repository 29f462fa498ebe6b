"""sktime estimators: :class:`TiViTClassifier` and :class:`TiViTTransformer`.

Thin on purpose: they turn sktime's input into tivit's ``(n, channels, length)`` NaN-padded panel
and call the same functions as the CLI (:func:`tivit.embed.extract`, :mod:`tivit.heads`), so a
number from ``tivit bench`` and from ``TiViTClassifier`` with the same settings is the same number.
A recipe is a named preset (:mod:`tivit.presets`); a parameter left at ``None`` takes the preset's
value.

Pickling stores the encoder's identity (name, timm arguments, weights label or file hash, seed),
never its weights; the encoder is rebuilt the first time an unpickled estimator needs it.

Fusion with another representation: ``fuse_with=MiniRocket()`` (any sktime transformer that
returns one row of features per series) fits that transformer on the training series and
concatenates its features with tivit's. Each block is standardised (per feature, on the fit data)
and scaled by ``1/sqrt(width)`` so both blocks carry the same total variance and the wider one does
not drown the other under the head's L2 penalty.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
from sktime.classification.base import BaseClassifier
from sktime.transformations.base import BaseTransformer

from tivit._seed import check_seed
from tivit.presets import MISSING, UNEQUAL, Preset, get_preset, paper_layer

_DEPENDENCIES = ["torch", "timm", "lightning"]

# Encoders held by fitted estimators, shared by estimators built the same way (refitting, cloning,
# cross-validation): weak references, so an encoder lives only as long as some estimator uses it.
_LIVE_ENCODERS: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()
# sktime converts other containers to the first of these: pd-multiindex holds unequal lengths (numpy3D
# cannot) and keeps the instance ids, which the transformer's output rows carry
_INNER_MTYPES = ["pd-multiindex", "numpy3D", "df-list"]


# ---------------------------------------------------------------------------------------------
# shared plumbing


class _EncoderSlot:
    """Holds the loaded encoder; pickles (and deep-copies) empty, so the weights never travel."""

    def __init__(self) -> None:
        self.encoder = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.encoder = None


# parameters added after a release: an estimator pickled before them unpickles with their defaults
_ADDED_PARAMS = {"precision": "auto"}


def _with_added_params(state: dict) -> dict:
    return {**_ADDED_PARAMS, **state}


def _to_panel(X: Any, missing: str = "interpolate") -> np.ndarray:
    """sktime inner data (numpy3D, df-list, pd-multiindex) -> float32 ``(n, c, t)``, NaN tail padding.

    In a numpy panel a NaN tail is padding (a shorter series or channel). In the DataFrame formats a
    series has as many time points as rows: its last rows, where no channel has a value, are missing
    values, filled (or refused) by the ``missing`` policy; a channel that ends before the others is a
    shorter channel, as sktime's nested format holds them, and padding as in numpy."""
    import pandas as pd

    from tivit.data import to_panel

    if isinstance(X, np.ndarray):
        return _float32(X)
    if isinstance(X, list):
        return to_panel([_own_rows(_float32(np.asarray(df)).T, missing) for df in X])
    if isinstance(X, pd.DataFrame):
        return to_panel([_own_rows(_float32(g.to_numpy()).T, missing) for _, g in X.groupby(level=0, sort=False)])
    raise TypeError(f"unsupported inner data type {type(X).__name__}")


def _own_rows(case: np.ndarray, missing: str) -> np.ndarray:
    """A DataFrame series ``(c, t)``: rows at its end without any value are time points whose values
    are missing. Each channel that reaches the last observed row carries its last value on (the
    nearest value, as :func:`tivit.data.interpolate_missing` fills a start); NaN inside a channel are
    left to the ``missing`` policy of the panel, as in numpy input."""
    from tivit.data import channel_lengths

    lengths = channel_lengths(case[None])[0]
    observed = int(lengths.max(initial=0))
    if observed in (0, case.shape[1]):
        return case  # nothing missing at the end (or nothing observed: refused later as an empty series)
    if missing == "error":
        raise ValueError(f"the data has missing values (a series' last {case.shape[1] - observed} rows hold no "
                         "value) but missing='error'; use missing='interpolate'")
    for row, length in zip(case, lengths):
        if length == observed:
            row[observed:] = row[observed - 1]
    return case


def _training_panel(X: Any, missing: str) -> tuple[np.ndarray, int]:
    """The training panel cut after its longest series, and that length: what ``zeros`` and
    ``resample`` pad or stretch to. A numpy panel may be wider than its series (``load_dataset``
    widens train to the test split's width): its width would let the test split set the training
    length, and make a numpy panel and the same series in a DataFrame give different numbers."""
    from tivit.data import series_lengths

    panel = _to_panel(X, missing)
    longest = int(series_lengths(panel).max(initial=0))
    return (panel[:, :, :longest], longest) if longest else (panel, int(panel.shape[2]))


def _float32(values: np.ndarray) -> np.ndarray:
    """A float32 copy; finite values beyond float32's range are refused (they would become inf)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and values.dtype.itemsize > 4:
        big = np.abs(values[np.isfinite(values)]).max(initial=0.0)
        if big > np.finfo(np.float32).max:
            raise ValueError(f"X holds values up to {big:.3g}, beyond float32's range (3.4e38) in which tivit "
                             "works; rescale the data")
    return values.astype(np.float32, copy=True)


def _instance_index(X: Any):
    """The instance ids of sktime inner data, in the order :func:`_to_panel` stacks them (None: 0..n-1)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame) and isinstance(X.index, pd.MultiIndex):
        ids = X.index.get_level_values(0).unique()
        return ids.rename(X.index.names[0])
    return None


def _check_channels(panel: np.ndarray, fitted: int | None) -> np.ndarray:
    """Series must have the channels the estimator was fitted on (features are per channel);
    ``fitted`` is None for an estimator pickled before it recorded them."""
    if fitted is not None and panel.shape[1] != fitted:
        raise ValueError(f"X has {panel.shape[1]} channel(s); the estimator was fitted on {fitted}")
    return panel


_HEAD_OWN = {"kind": "head=", "random_state": "random_state="}  # head_params keys the estimator sets itself
_MIX_PARAMS = ("C", "max_iter", "tol", "trainer_kwargs")  # what the layer_mix head takes
_SEARCHED_MLP = ("hidden", "weight_decay")  # what layer='auto' searches for the mlp head


def _check_head_params(head_params: dict | None, mode: str, head: str | None) -> None:
    """Refuse head settings that would be dropped or collide, instead of ignoring them."""
    head_params = head_params or {}
    for key, where in _HEAD_OWN.items():
        if key in head_params:
            raise ValueError(f"head_params[{key!r}] is set by the estimator's {where} parameter; give it there")
    if mode == "auto":
        searched = sorted(set(head_params) & set(_SEARCHED_MLP)) if head == "mlp" else []
        if searched:
            raise ValueError(f"layer='auto' searches the mlp head's {list(_SEARCHED_MLP)} with the layer; "
                             f"head_params {searched} would be replaced: give a fixed layer to set them")
        if head_params.get("C") is not None:  # numpy scalars too: a grid from np.array([...]) hands them
            from tivit.heads import _check_number

            _check_number("head_params['C']", head_params["C"], lambda v: 0 < v < float("inf"), "a positive number")
    if mode == "mix":
        if head not in (None, "linear"):
            raise ValueError(f"layer='mix' fits a layer_mix head; head={head!r} cannot apply (leave head=None)")
        dropped = sorted(set(head_params) - set(_MIX_PARAMS))
        if dropped:
            raise ValueError(f"layer='mix' fits a layer_mix head, which takes {list(_MIX_PARAMS)} of head_params; "
                             f"not {dropped}")


class _Recipe:
    """What a preset plus explicit parameters resolve to (the estimators share it)."""

    def __init__(self, est: Any) -> None:
        preset = get_preset(est.preset)
        self.preset: Preset = preset
        chosen = preset.resolve(encoder=est.encoder, renderer=est.renderer, pool=est.pool, normalize=est.normalize,
                                missing=est.missing, unequal_length=est.unequal_length)
        self.encoder, self.renderer, self.pool = chosen["encoder"], chosen["renderer"], chosen["pool"]
        self.normalize = bool(chosen["normalize"])
        self.missing, self.unequal_length = chosen["missing"], chosen["unequal_length"]
        self.renderer_params = dict(est.renderer_params or {})
        if self.missing not in MISSING:
            raise ValueError(f"missing={self.missing!r} is not a policy; choose one of {MISSING}")
        if self.unequal_length not in UNEQUAL:
            raise ValueError(f"unequal_length={self.unequal_length!r} is not a policy; choose one of {UNEQUAL}")
        if est.encoder_args is not None and not isinstance(est.encoder_args, dict):
            raise TypeError(f"encoder_args must be a dict of timm arguments, got {type(est.encoder_args).__name__}")
        self.seed = check_seed(est.random_state)
        self.precision = preset.precision_for(est.precision)  # paper: fp32 for "auto", as published

    def load_encoder(self, est: Any):
        """Load the encoder, or reuse one that a live estimator already built the same way."""
        import json

        from tivit.encoders import load_encoder

        key = None
        if est.weights in ("random", "pretrained"):  # a file can change on disk: always reload those
            key = json.dumps([self.encoder, est.weights, self.seed if est.weights == "random" else None,
                              est.device, self.precision, est.encoder_args or {}], sort_keys=True, default=str)
            if key in _LIVE_ENCODERS:
                return _LIVE_ENCODERS[key]
        encoder = load_encoder(self.encoder, weights=est.weights, device=est.device, seed=self.seed,
                               precision=self.precision, **(est.encoder_args or {}))
        if key is not None:
            _LIVE_ENCODERS[key] = encoder
        return encoder

    def renderer_config(self):
        from tivit.presets import renderer_config

        # the preset's named renderer parameters apply to the preset's own renderer only
        return renderer_config(self.preset, self.renderer, self.renderer_params)

    def prepare(self, panel: np.ndarray, length: int | None = None) -> np.ndarray:
        """Apply the missing-value and unequal-length policies (the same function as ``tivit bench``)."""
        from tivit.data import prepare_panel

        return prepare_panel(panel, self.unequal_length, self.missing, length)

    def extract(self, est: Any, encoder, panel: np.ndarray, layers):
        from tivit.embed import extract

        return extract(
            panel,
            renderer=self.renderer_config(),
            encoder=encoder,
            layers=layers,
            pool=self.pool,
            norm=False,
            normalize=self.normalize,
            batch_size=est.batch_size,
            cache_dir=est.cache_dir,
            progress=False,
        )


def _encoder_of(est: Any, recipe: _Recipe):
    """The estimator's encoder, rebuilt from its identity after unpickling."""
    slot = est._encoder_slot
    if slot.encoder is None:
        from tivit.encoders import load_encoder_from_identity

        slot.encoder = load_encoder_from_identity(est.encoder_identity_, device=est.device,
                                                  precision=recipe.precision)
    return slot.encoder


def _tiny_encoder_params() -> list[dict]:
    """Random-weights timm ViTs of 32 px and 2 blocks: fast enough for sktime's conformance suite."""
    kwargs = {"img_size": 32, "patch_size": 8, "depth": 2}
    return [
        {"encoder": "vit_tiny_patch16_224", "weights": "random", "encoder_args": kwargs, "layer": "auto",
         "search_trials": 4, "cache_dir": False, "random_state": 0},
        {"encoder": "vit_small_patch16_224", "weights": "random", "encoder_args": {**kwargs, "embed_dim": 64,
         "num_heads": 2}, "layer": 1, "pool": "cls", "preset": "paper", "cache_dir": False, "random_state": 1},
    ]


class _BlockScaler:
    """Per-feature z-score fitted on the fit data, then each block scaled by ``1/sqrt(width)``."""

    def __init__(self, blocks: list[np.ndarray]) -> None:
        from tivit.heads import _moments  # the same spread rule as the heads (zero spread -> 1)
        import torch

        self.widths = [b.shape[1] for b in blocks]
        stats = [_moments(torch.from_numpy(np.asarray(b, dtype=np.float64)), 0) for b in blocks]
        self.mean = [m.numpy() for m, _ in stats]
        self.scale = [s.numpy() * np.sqrt(w) for (_, s), w in zip(stats, self.widths)]

    def transform(self, blocks: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [((b - m) / s).astype(np.float32) for b, m, s in zip(blocks, self.mean, self.scale)], axis=1
        )


# ---------------------------------------------------------------------------------------------
# classifier


class TiViTClassifier(BaseClassifier):
    """Time series classification with a frozen vision transformer (TiViT).

    Each channel of each series is rendered as an image, read by a frozen timm ViT, and the
    pooled hidden state of the chosen layer(s) is classified by a small head. Multivariate,
    unequal-length and missing-value input are supported.

    Args:
        encoder: encoder name (``tivit encoders``; any timm ViT name); None: the preset's.
        weights: ``"pretrained"``, ``"random"`` (seeded by ``random_state``; labelled random
            everywhere) or a path to a local weights file.
        encoder_args: extra timm arguments (``{"img_size": 32, "depth": 2}`` builds a tiny model).
        renderer: renderer method (``"tivit"``, ``"gasf"``, ...); None: the preset's.
        renderer_params: renderer parameters (``renderers.make_config``).
        layer: an int; a list of ints (their features concatenated); ``"auto"`` (an Optuna
            search of layer and head regularisation, :func:`tivit.search.search_layer`, scored by
            stratified CV on the training data only); ``"mix"`` (a ``layer_mix`` head learns
            weights over all layers); None: the preset's (``paper``: 14 of 32).
        search_trials: trials of the ``layer="auto"`` search (layer and ``C`` of the linear
            head, or the ``mlp`` head's ``hidden`` and ``weight_decay``); unused otherwise. A ``C``
            given in ``head_params`` is kept and the search chooses the layer alone; the mlp's
            searched parameters cannot be given with ``"auto"`` (an error says so).
        pool: token pooling (``mean``, ``mean_patch``, ``cls``, ``mean+cls``); None: the preset's.
        head: ``"linear"`` or ``"mlp"``; None: the preset's. ``head_params`` go to
            :class:`tivit.heads.HeadClassifier`.
        head_params: head parameters (``{"C": 0.1}``; ``{"trainer_kwargs": {"logger": ...}}`` lets
            the head's Lightning Trainer log, which it does not by default).
        preset: ``"default"`` or ``"paper"`` (:mod:`tivit.presets`).
        normalize: L2-normalise each sample's embedding; None: the preset's.
        missing: ``"interpolate"`` or ``"error"`` for NaN inside a series; None: the preset's.
            A NaN tail of a NumPy panel is padding (a shorter series), as everywhere in tivit,
            not a missing value.
        unequal_length: ``"own-length"``, ``"zeros"`` or ``"resample"``; None: the preset's.
        fuse_with: an sktime transformer (e.g. ``MiniRocket()``) whose features are
            concatenated with tivit's, each block standardised; linear head only.
        batch_size: images per encoder forward pass (``"auto"``).
        device: ``"cpu"``, ``"cuda"``, ...; None: CUDA if available.
        precision: the encoder's: ``"auto"`` (the preset's: ``paper`` fp32, as published;
            ``default`` bf16 autocast on CUDA, fp32 on CPU), ``"fp32"``, ``"bf16"`` (about 3x
            faster than fp32 on CPUs with bf16 units) or ``"fp16"``.
        cache_dir: embedding cache folder; None: ``$TIVIT_CACHE`` or the user cache; False: off.
        random_state: seed of random weights, the paper's fit split, the CV folds and the head;
            None means 0 (tivit fits are deterministic).

    Attributes:
        layers_: the layers extracted at predict time.
        layer_: the chosen layer when ``layer="auto"``; ``layer_scores_`` the best CV accuracy
            of each searched layer; ``C_`` the chosen ``C`` (None for ``mlp``); ``search_`` the
            :class:`tivit.search.LayerSearch` (CV score, trials, folds).
        head_: the fitted :class:`~tivit.heads.HeadClassifier`.
        encoder_identity_: what rebuilds the encoder (stored in pickles instead of weights).
        random_weights_: True when the encoder had random weights.
        fit_index_: indices of the training series the head was fitted on.

    Examples:
        >>> from sktime.datasets import load_unit_test
        >>> from tivit.sktime import TiViTClassifier
        >>> X_train, y_train = load_unit_test(split="train", return_X_y=True)
        >>> X_test, _ = load_unit_test(split="test", return_X_y=True)
        >>> clf = TiViTClassifier(encoder="vit_tiny_patch16_224", weights="random",
        ...     encoder_args={"img_size": 32, "patch_size": 8, "depth": 2}, layer=2, cache_dir=False)
        >>> clf = clf.fit(X_train, y_train)
        >>> y_pred = clf.predict(X_test)
    """

    _tags = {
        "authors": ["tivit developers"],
        "maintainers": ["tivit developers"],
        "python_dependencies": _DEPENDENCIES,
        "X_inner_mtype": _INNER_MTYPES,
        "y_inner_mtype": "numpy1D",
        "capability:multivariate": True,
        "capability:unequal_length": True,
        "capability:missing_values": True,
        "capability:predict_proba": True,
        "capability:categorical_in_X": False,
        "capability:random_state": True,
        "property:randomness": "derandomized",
    }

    def __init__(
        self,
        encoder=None,
        weights="pretrained",
        encoder_args=None,
        renderer=None,
        renderer_params=None,
        layer=None,
        search_trials=20,
        pool=None,
        head=None,
        head_params=None,
        preset="default",
        normalize=None,
        missing=None,
        unequal_length=None,
        fuse_with=None,
        batch_size="auto",
        device=None,
        precision="auto",
        cache_dir=None,
        random_state=None,
    ):
        self.encoder = encoder
        self.weights = weights
        self.encoder_args = encoder_args
        self.renderer = renderer
        self.renderer_params = renderer_params
        self.layer = layer
        self.search_trials = search_trials
        self.pool = pool
        self.head = head
        self.head_params = head_params
        self.preset = preset
        self.normalize = normalize
        self.missing = missing
        self.unequal_length = unequal_length
        self.fuse_with = fuse_with
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache_dir = cache_dir
        self.random_state = random_state
        super().__init__()
        self._encoder_slot = _EncoderSlot()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(_with_added_params(state))

    # -- fit ---------------------------------------------------------------------------------

    def _resolve_layer(self, recipe: _Recipe, depth: int):
        """(mode, layers to extract): mode is "fixed", "auto" or "mix"."""
        from tivit.encoders import resolve_layers

        layer = self.layer if self.layer is not None else recipe.preset.layer
        if isinstance(layer, str) and layer in ("auto", "mix"):
            return layer, tuple(range(1, depth + 1))
        if isinstance(layer, str) and layer == "paper":
            return "fixed", (paper_layer(depth),)
        if isinstance(layer, str):
            raise ValueError(f"layer={layer!r} is not understood; use an int, a list of ints, 'auto', 'mix' or "
                             "'paper' (the published layer: 14 of 32, scaled to the encoder's depth)")
        return "fixed", resolve_layers(layer, depth)

    def _fit(self, X, y):
        from tivit._threads import single_threaded
        from tivit.heads import HEADS, HeadClassifier
        from tivit.presets import fit_index

        recipe = _Recipe(self)
        head = self.head if self.head is not None else recipe.preset.head
        if head not in HEADS or head == "layer_mix":
            raise ValueError(f"head={head!r} is not a head; choose 'linear' or 'mlp' (layer='mix' uses layer_mix)")
        trials = self.search_trials
        layer = self.layer if self.layer is not None else recipe.preset.layer
        wrong = isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1
        if wrong and isinstance(layer, str) and layer == "auto":  # unused for any other layer
            raise ValueError(f"search_trials must be a positive integer (trials of the layer='auto' search), "
                             f"got {trials!r}")
        panel, self.n_timepoints_ = _training_panel(X, recipe.missing)
        self.n_channels_ = int(panel.shape[1])
        panel = recipe.prepare(panel)

        encoder = recipe.load_encoder(self)
        self._encoder_slot.encoder = encoder
        self.encoder_identity_ = encoder.identity()
        self.random_weights_ = bool(encoder.random_weights)
        mode, layers = self._resolve_layer(recipe, encoder.depth)
        if mode == "mix" and self.fuse_with is not None:
            raise ValueError("fuse_with needs one feature table per series; it cannot be combined with layer='mix'")
        params = {**dict(recipe.preset.head_params), **(self.head_params or {})}
        _check_head_params(self.head_params, mode, head)

        y = np.asarray(y)
        self.fit_index_ = fit_index(recipe.preset, y, recipe.seed)
        y_fit = y[self.fit_index_]
        emb = recipe.extract(self, encoder, panel, layers)
        values = emb.values[self.fit_index_]

        self.layer_scores_, self.C_, self.search_ = None, params.get("C") if head == "linear" else None, None
        if mode == "auto":
            from tivit.search import search_layer

            # the same call as the `searched` summary of `tivit bench` (tivit.search.evaluate_search)
            # a C the user gave stays: the search then chooses the layer alone
            bounds = {"C": (float(self.head_params["C"]),) * 2} if "C" in (self.head_params or {}) else {}
            with single_threaded():  # the bench's numbers on any machine (see tivit._threads)
                choice = search_layer(values, y_fit, layers=emb.layers, n_trials=int(trials), heads=(head,),
                                      seed=recipe.seed, **bounds)
            self.search_, self.layer_, self.C_ = choice, choice.layer, choice.C
            self.layer_scores_ = choice.layer_scores
            self.layers_ = (choice.layer,)
            values = values[:, [emb.layers.index(choice.layer)]]
            searched = choice.config.head_kwargs()
            searched.pop("kind")
            params.update(searched)  # the searched C (or mlp width and weight decay); the user's C stays
        else:
            self.layer_ = emb.layers[0] if len(emb.layers) == 1 else None
            self.layers_ = tuple(emb.layers)
        self.mode_ = mode

        self.fuse_, self.block_scaler_ = None, None
        if mode == "mix":
            self.head_ = HeadClassifier("layer_mix", random_state=recipe.seed,
                                        **{k: v for k, v in params.items() if k in _MIX_PARAMS})
            with single_threaded():
                self.head_.fit(values, y_fit)
            return self
        features = values.reshape(len(values), -1)
        if self.fuse_with is not None:
            if head != "linear":
                raise ValueError(f"fuse_with weights the blocks for the linear head; head={head!r} would undo it")
            self.fuse_ = _clone(self.fuse_with)
            fused_panel = _fusion_panel(_to_panel(X, recipe.missing), recipe, None)
            self.fusion_length_ = fused_panel.shape[2]
            other = _fused_features(self.fuse_, self.fuse_.fit_transform(fused_panel), len(fused_panel))
            blocks = [features, other[self.fit_index_]]
            self.block_scaler_ = _BlockScaler(blocks)
            features = self.block_scaler_.transform(blocks)
            params["standardize"] = False
        with single_threaded():
            self.head_ = HeadClassifier(head, random_state=recipe.seed, **params).fit(features, y_fit)
        return self

    # -- predict -----------------------------------------------------------------------------

    def _features(self, X):
        recipe = _Recipe(self)
        panel = _check_channels(_to_panel(X, recipe.missing), getattr(self, "n_channels_", None))
        panel = recipe.prepare(panel, self.n_timepoints_ if recipe.unequal_length != "own-length" else None)
        emb = recipe.extract(self, _encoder_of(self, recipe), panel, self.layers_)
        if self.mode_ == "mix":
            return emb.values
        features = emb.values.reshape(emb.n, -1)
        if self.fuse_ is not None:
            fused_panel = _fusion_panel(_to_panel(X, recipe.missing), recipe, self.fusion_length_)
            other = _fused_features(self.fuse_, self.fuse_.transform(fused_panel), emb.n)
            features = self.block_scaler_.transform([features, other])
        return features

    def _predict_proba(self, X) -> np.ndarray:
        from tivit._threads import single_threaded

        features = self._features(X)
        with single_threaded():
            proba = self.head_.predict_proba(features)
        if len(self.head_.classes_) == len(self.classes_):
            return proba
        # the paper's 80 % split can miss a class: it gets probability 0
        out = np.zeros((proba.shape[0], len(self.classes_)))
        out[:, np.searchsorted(self.classes_, self.head_.classes_)] = proba
        return out

    def _predict(self, X) -> np.ndarray:
        return self.classes_[self._predict_proba(X).argmax(axis=1)]

    def score(self, X, y) -> float:
        """Accuracy on ``(X, y)``; labels that never occurred in training are an error."""
        from tivit.heads import check_known_labels

        self.check_is_fitted()
        check_known_labels(self.classes_, np.asarray(y).ravel())
        return super().score(X, y)

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict]:
        """Tiny random-weights encoders (32 px, 2 blocks): the conformance suite runs in seconds."""
        return _tiny_encoder_params()


def _clone(transformer: Any) -> Any:
    if hasattr(transformer, "clone"):
        return transformer.clone()
    from sklearn.base import clone

    return clone(transformer)


def _fused_features(transformer: Any, table: Any, n: int) -> np.ndarray:
    """The fused transformer's output as float32 ``(n, features)``; what cannot be fused is named."""
    name = type(transformer).__name__
    try:
        values = np.asarray(table, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"fuse_with={name} must return one row of numbers per series; "
                         f"its output ({type(table).__name__}) is not a table: {err}") from None
    if values.ndim != 2 or len(values) != n:
        raise ValueError(f"fuse_with={name} must return one row of features per series ({n} rows); it returned "
                         f"shape {values.shape} (a series-to-series transformer cannot be fused)")
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        raise ValueError(f"fuse_with={name} returned NaN or inf in {int(bad.sum())} of its {values.shape[1]} "
                         f"feature columns (first: {np.flatnonzero(bad)[:5].tolist()}); the linear head needs "
                         "finite features")
    return values


def _fusion_panel(panel: np.ndarray, recipe: _Recipe, length: int | None) -> np.ndarray:
    """Equal-length, NaN-free numpy3D input for the fused transformer (resampled to ``length``)."""
    from tivit.data import channel_lengths, interpolate_missing, resample_to_length, series_lengths

    if np.isnan(panel).any():
        panel = interpolate_missing(panel)
    target = int(series_lengths(panel).max()) if length is None else int(length)
    if (channel_lengths(panel) != target).any() or panel.shape[2] != target:
        panel = resample_to_length(panel, target)
    return panel


# ---------------------------------------------------------------------------------------------
# transformer


class TiViTTransformer(BaseTransformer):
    """Series -> TiViT embeddings: one row of features per series, for any sktime pipeline.

    Output columns are ``layer<k>_<j>`` for each extracted layer ``k`` (channel vectors
    concatenated). Nothing is learned: ``fit`` loads the encoder and checks the parameters.

    Args:
        encoder, weights, encoder_args, renderer, renderer_params, pool, preset, normalize,
        missing, unequal_length, batch_size, device, precision, cache_dir, random_state: as
            :class:`TiViTClassifier`.
        layers: an int, a list, ``"all"`` or a string such as ``"4-8"``; None: the paper's
            layer for ``preset="paper"``, else ``"all"``.

    Examples:
        >>> from sktime.datasets import load_unit_test
        >>> from tivit.sktime import TiViTTransformer
        >>> X, _ = load_unit_test(split="train", return_X_y=True)
        >>> t = TiViTTransformer(encoder="vit_tiny_patch16_224", weights="random",
        ...     encoder_args={"img_size": 32, "patch_size": 8, "depth": 2}, layers=2, cache_dir=False)
        >>> features = t.fit_transform(X)
    """

    _tags = {
        "authors": ["tivit developers"],
        "maintainers": ["tivit developers"],
        "python_dependencies": _DEPENDENCIES,
        "scitype:transform-input": "Series",
        "scitype:transform-output": "Primitives",
        "scitype:instancewise": True,
        "X_inner_mtype": _INNER_MTYPES,
        "y_inner_mtype": "None",
        "fit_is_empty": False,
        "capability:multivariate": True,
        "capability:unequal_length": True,
        "capability:unequal_length:removes": True,
        "capability:missing_values": True,
        "capability:missing_values:removes": True,
        "capability:categorical_in_X": False,
        "capability:random_state": True,
        "property:randomness": "derandomized",
    }

    def __init__(
        self,
        encoder=None,
        weights="pretrained",
        encoder_args=None,
        renderer=None,
        renderer_params=None,
        layers=None,
        pool=None,
        preset="default",
        normalize=None,
        missing=None,
        unequal_length=None,
        batch_size="auto",
        device=None,
        precision="auto",
        cache_dir=None,
        random_state=None,
    ):
        self.encoder = encoder
        self.weights = weights
        self.encoder_args = encoder_args
        self.renderer = renderer
        self.renderer_params = renderer_params
        self.layers = layers
        self.pool = pool
        self.preset = preset
        self.normalize = normalize
        self.missing = missing
        self.unequal_length = unequal_length
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache_dir = cache_dir
        self.random_state = random_state
        super().__init__()
        self._encoder_slot = _EncoderSlot()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(_with_added_params(state))

    def _fit(self, X, y=None):
        from tivit.encoders import check_pool, resolve_layers

        recipe = _Recipe(self)
        encoder = recipe.load_encoder(self)
        self._encoder_slot.encoder = encoder
        self.encoder_identity_ = encoder.identity()
        self.random_weights_ = bool(encoder.random_weights)
        if self.layers is None:
            layers = (paper_layer(encoder.depth),) if recipe.preset.layer == "paper" else "all"
        else:
            layers = self.layers
        self.layers_ = resolve_layers(layers, encoder.depth)
        check_pool(recipe.pool, encoder.has_cls)
        recipe.renderer_config()  # fail at fit on a bad renderer, not at transform
        panel, self.n_timepoints_ = _training_panel(X, recipe.missing)
        self.n_channels_ = int(panel.shape[1])
        return self

    def _transform(self, X, y=None):
        import pandas as pd

        recipe = _Recipe(self)
        length = self.n_timepoints_ if recipe.unequal_length != "own-length" else None
        panel = _check_channels(_to_panel(X, recipe.missing), getattr(self, "n_channels_", None))
        panel = recipe.prepare(panel, length)
        emb = recipe.extract(self, _encoder_of(self, recipe), panel, self.layers_)
        columns = [f"layer{k}_{j}" for k in emb.layers for j in range(emb.dim)]
        # rows keep the input's instance ids, so a FeatureUnion (`+`) aligns them with other features
        return pd.DataFrame(emb.values.reshape(emb.n, -1), columns=columns, index=_instance_index(X))

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict]:
        """Tiny random-weights encoders (32 px, 2 blocks)."""
        first, second = _tiny_encoder_params()
        for params in (first, second):
            params.pop("layer")
            params.pop("search_trials", None)
        return [{**first, "layers": 2}, second]

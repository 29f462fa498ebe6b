"""Named recipes that span the renderer, the embedding and the head.

``"paper"`` reproduces the published TiViT protocol (arXiv 2506.08641, roschmsi/TiViT), flaws
included, so that its numbers can be checked: unequal lengths padded with zeros, CLIP ViT-H/14
layer 14, mean over all tokens, per-sample L2 normalisation, ``StandardScaler +
LogisticRegression(C=1, lbfgs, max_iter=500)`` fitted on a random, unstratified 80 % of the
training data (drawn as the published code draws it, see :func:`fit_index`) and never refitted.

``"default"`` is tivit's own recipe: the same renderer and head, but each series is rendered from
its own length (no zero padding), the layer and the head's ``C`` are chosen by an Optuna search
scored by stratified cross-validation on the training data (``"auto"``, :mod:`tivit.search`),
and the head is fitted on all of the training data.

Presets are data (a frozen dataclass); an estimator parameter left at ``None`` takes the preset's
value, so ``TiViTClassifier(preset="paper", layer=10)`` is the paper recipe at layer 10.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

UNEQUAL = ("own-length", "zeros", "resample")
MISSING = ("interpolate", "error")

# CLIP ViT-H/14 has 32 blocks and the paper reads block 14; other encoders get the same relative depth.
_PAPER_LAYER, _PAPER_DEPTH = 14, 32


@dataclass(frozen=True)
class Preset:
    """One recipe.

    Attributes:
        name: preset name.
        encoder: encoder name (see ``tivit encoders``).
        renderer: renderer method; ``renderer_preset`` its named parameter set
            (``renderers.make_config(method, preset)``; the paper's: nearest resize, uint8
            truncation, lower median); ``renderer_params`` overrides (as sorted pairs).
        layer: an int, ``"auto"`` (CV on train), ``"mix"`` (learned layer mix), or ``"paper"``
            (14 for a 32-block encoder, the same relative depth otherwise).
        pool: token pooling (``mean`` = all tokens incl. the class token, published).
        norm: apply the encoder's final norm before pooling (published: no).
        normalize: L2-normalise each sample's embedding (published: yes).
        unequal_length: ``own-length`` (render each series from its own length), ``zeros`` (pad
            the end with zeros, published) or ``resample`` (linear resample to the longest).
        missing: ``interpolate`` (linear, edges nearest; published) or ``error``.
        head: head kind; ``head_params`` its parameters (as sorted pairs).
        fit_fraction: share of the training data the head is fitted on (published: 0.8).
        stratify_fit: stratify that split (published: no).
        precision: the encoder precision that ``"auto"`` means under this recipe (published: fp32,
            also on a GPU; ``"auto"``: bf16 autocast on CUDA, fp32 on CPU).
    """

    name: str
    encoder: str = "clip-h14"
    renderer: str = "tivit"
    renderer_preset: str | None = None
    renderer_params: tuple[tuple[str, Any], ...] = ()
    layer: Any = "auto"
    pool: str = "mean"
    norm: bool = False
    normalize: bool = False
    unequal_length: str = "own-length"
    missing: str = "interpolate"
    head: str = "linear"
    head_params: tuple[tuple[str, Any], ...] = (("C", 1.0), ("max_iter", 500))
    fit_fraction: float = 1.0
    stratify_fit: bool = False
    precision: str = "auto"
    description: str = field(default="", compare=False)

    def precision_for(self, asked: str) -> str:
        """The encoder precision to load: ``asked``, or this recipe's when ``asked`` is ``"auto"``."""
        return self.precision if asked == "auto" else asked

    def resolve(self, **given: Any) -> dict:
        """``given`` with every None replaced by this recipe's value (``C`` and ``max_iter`` from
        ``head_params``): what a parameter left at None means, for the estimators and ``tivit bench``."""
        head = dict(self.head_params)
        own = {"C": head.get("C", 1.0), "max_iter": head.get("max_iter", 500)}
        return {name: (own[name] if name in own else getattr(self, name)) if value is None else value
                for name, value in given.items()}

    def to_dict(self) -> dict:
        """Plain values (for printing, results and cache keys)."""
        out = asdict(self)
        out["renderer_params"] = dict(self.renderer_params)
        out["head_params"] = dict(self.head_params)
        return out


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        renderer_preset="paper",
        layer="paper",
        normalize=True,
        unequal_length="zeros",
        fit_fraction=0.8,
        stratify_fit=False,
        precision="fp32",
        description="the published TiViT protocol, reproduced exactly (random unstratified 80% fit split)",
    ),
    "default": Preset(
        name="default",
        renderer_preset="default",
        description="tivit's recipe: own-length rendering, layer by CV on train, head fitted on all of train",
    ),
}


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (a :class:`Preset` passes through).

    Args:
        name: ``"paper"`` or ``"default"``.
    """
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(map(repr, PRESETS))}")
    return PRESETS[name]


def paper_layer(depth: int) -> int:
    """The published layer for an encoder of ``depth`` blocks: 14 of 32, the same share otherwise."""
    return max(1, min(depth, round(depth * _PAPER_LAYER / _PAPER_DEPTH)))


def renderer_config(preset: str | Preset, renderer: str | None = None, params: dict | None = None):
    """The ``renderers`` config of a recipe (the estimators and ``tivit bench`` share this rule).

    The preset's named renderer parameter set (and its own parameters) apply to the preset's own
    renderer only; ``params`` override them.

    Args:
        preset: a preset or its name.
        renderer: a rendering method; None: the preset's.
        params: renderer parameters (``renderers.make_config``).
    """
    import renderers

    preset = get_preset(preset)
    own = renderer is None or renderer == preset.renderer
    method = preset.renderer if renderer is None else renderer
    merged = {**(dict(preset.renderer_params) if own else {}), **(params or {})}
    return renderers.make_config(method, preset.renderer_preset if own else None, **merged)


def fit_index(preset: str | Preset, y, seed: int = 0, *, stream: Any = None):
    """Indices of the training series the head is fitted on: all of them, or the preset's split.

    The paper's split is the published ``get_split`` (roschmsi/TiViT ``tivit/utils.py``): the
    indices shuffled by NumPy's legacy generator, the first ``int(0.2 n)`` held out, the other
    ``n - int(0.2 n)`` fitted on (unstratified), here sorted. The published run seeds one generator
    once and draws every dataset's split from it in turn; ``stream`` is that generator already
    advanced to this dataset (:func:`published_stream`), and by default a fresh
    ``RandomState(seed)``, as if the dataset came first. Raises ValueError when the split keeps a
    single class.

    Args:
        preset: a preset or its name.
        y: the training labels.
        seed: seed of the split (when no ``stream`` is given).
        stream: a ``numpy.random.RandomState`` to draw the shuffle from (it is advanced).
    """
    import numpy as np

    preset = get_preset(preset)
    y = np.asarray(y)
    index = np.arange(len(y))
    if preset.fit_fraction >= 1.0:
        return index
    if preset.stratify_fit:
        from sklearn.model_selection import train_test_split

        chosen, _ = train_test_split(index, train_size=preset.fit_fraction, random_state=int(seed), shuffle=True,
                                     stratify=y)
    else:
        keys = list(range(len(y)))  # a list, shuffled as the published code shuffles it
        (stream if stream is not None else np.random.RandomState(int(seed))).shuffle(keys)
        held_out = round(1.0 - preset.fit_fraction, 10)  # 0.2 exactly, as published (1 - 0.8 is 0.19999...)
        chosen = np.array(keys[int(len(y) * held_out):], dtype=np.int64)
    if len(np.unique(y[chosen])) < 2:
        raise ValueError(
            f"the {preset.name!r} preset's {preset.fit_fraction:.0%} fit split kept a single class; the training "
            "set is too small for this preset (use preset='default')"
        )
    return np.sort(chosen)


def published_order(archive: str) -> list[str]:
    """The datasets of ``archive`` (``ucr``, ``uea``) in the order the published run visits them
    (aeon's ``univariate``/``multivariate`` lists, kept in ``tivit/resources/published_order.json``)."""
    import json
    from importlib.resources import files

    return list(json.loads(files("tivit.resources").joinpath("published_order.json").read_text())[archive])


def published_stream(name: str, archive: str, seed: int, train_size) -> tuple[Any, str]:
    """The published run's generator as it stands when it reaches dataset ``name``, and a note.

    The published run (``tivit ... --datasets ucr --random_seed 2025``) seeds NumPy once, then for
    each UCR dataset in :func:`published_order` shuffles its training indices (:func:`fit_index`);
    nothing else draws from that generator. Replaying the shuffles of every earlier dataset needs
    their training sizes: ``train_size(name)`` returns one, or None when that dataset is not at
    hand, and then there is no stream (None) and the note says why. Only UCR: for UEA the
    published run also draws to subsample InsectWingbeat.
    """
    import numpy as np

    if archive != "ucr":
        return None, f"own stream (seed {seed}): the published run's stream is replayed for UCR only"
    order = published_order("ucr")
    if name not in order:
        return None, f"own stream (seed {seed}): {name} is not in the published run's UCR list"
    rng = np.random.RandomState(int(seed))
    for earlier in order[: order.index(name)]:
        n = train_size(earlier)
        if n is None:
            return None, (f"own stream (seed {seed}): replaying the published run's stream needs every earlier "
                          f"UCR dataset, and {earlier} is not in the data folder")
        rng.shuffle(list(range(int(n))))
    return rng, (f"the published run's stream: seed {seed}, dataset {order.index(name) + 1} of {len(order)} "
                 "in aeon's UCR order")

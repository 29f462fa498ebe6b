"""Frozen vision encoders that return the pooled hidden state of every requested block in one pass.

The encoder table (:data:`ENCODERS`) is data, like timm's ``default_cfgs``: a friendly name maps to
a timm model name with its pretrained tag, its depth, width, prefix tokens, input size, mean/std and
final norm. Any timm ViT-family name (``vit_small_patch16_224``, ``eva02_...``) passes through
unchanged, and extra timm arguments (``img_size=64, depth=4``) pass through too, so tests can build
tiny models.

Layers are numbered as the TiViT paper numbers them: layer ``k`` is the output of block ``k``
(``1..depth``) and layer ``0`` is the token embedding that enters the first block (after the
position embedding and, for CLIP, the pre-norm). CLIP ViT-H/14 "layer 14" is the published setting.

Weights come from one of three places, and every result says which:

* ``"pretrained"``: timm's hub loading (honours ``HF_HUB_OFFLINE`` and the local HF cache);
* a path to a local ``.safetensors`` / ``.pth`` / ``.bin`` file, loaded through the model's
  checkpoint filter (so DINOv2's 518-px position embedding is resampled to 224);
* ``"random"``: seeded initialisation (``seed``), labelled ``random`` everywhere.

MAE: timm's MAE ViTs are plain encoders without the random 75 % masking of the pretraining
model, so every patch is seen (the HF ``ViTMAEModel`` keeps masking in eval mode; tivit does not).
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import inspect
import operator
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from tivit._atomic import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    import torch

POOLS = ("mean", "mean_patch", "cls", "mean+cls")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class EncoderError(ValueError):
    """An encoder name, argument or layer request is not valid; the message says what is allowed."""


class EncoderWeightsError(RuntimeError):
    """Weights cannot be had (offline, missing file, wrong file); the message names the alternatives."""


@dataclass(frozen=True)
class EncoderSpec:
    """One row of the encoder table: what a friendly name means.

    Attributes:
        name: friendly name (``"clip-h14"``).
        timm_name: timm model name with its pretrained tag (``"vit_huge_patch14_clip_224.laion2b"``).
        family: ``dinov2``, ``clip``, ``siglip2`` or ``mae``.
        depth, width: number of blocks and token width.
        prefix_tokens: tokens before the patches (cls + registers; SigLIP has none).
        input_size: square input side in pixels (with ``timm_kwargs`` applied).
        mean, std: input normalisation of the pretrained weights.
        final_norm: whether the model has a final per-token norm (``norm=True`` applies it).
        timm_kwargs: default timm arguments (DINOv2 runs at 224 as in the paper, not 518).
        license: licence of the pretrained weights.
    """

    name: str
    timm_name: str
    family: str
    depth: int
    width: int
    prefix_tokens: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    final_norm: bool = True
    timm_kwargs: tuple[tuple[str, Any], ...] = ()
    license: str = "apache-2.0"

    @property
    def has_cls(self) -> bool:
        """True when the model prepends a class (or other prefix) token."""
        return self.prefix_tokens > 0


def _dinov2(name: str, size: str, depth: int, width: int, reg: bool) -> EncoderSpec:
    timm_name = f"vit_{size}_patch14_{'reg4_' if reg else ''}dinov2.lvd142m"
    return EncoderSpec(name, timm_name, "dinov2", depth, width, 5 if reg else 1, 224, *_IMAGENET,
                       timm_kwargs=(("img_size", 224),))


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in [
        _dinov2("dinov2-s", "small", 12, 384, False),
        _dinov2("dinov2-b", "base", 12, 768, False),
        _dinov2("dinov2-l", "large", 24, 1024, False),
        _dinov2("dinov2-g", "giant", 40, 1536, False),
        _dinov2("dinov2-s-reg", "small", 12, 384, True),
        _dinov2("dinov2-b-reg", "base", 12, 768, True),
        _dinov2("dinov2-l-reg", "large", 24, 1024, True),
        _dinov2("dinov2-g-reg", "giant", 40, 1536, True),
        EncoderSpec("clip-b32", "vit_base_patch32_clip_224.laion2b", "clip", 12, 768, 1, 224, *_OPENAI_CLIP),
        EncoderSpec("clip-b16", "vit_base_patch16_clip_224.laion2b", "clip", 12, 768, 1, 224, *_OPENAI_CLIP),
        EncoderSpec("clip-l14", "vit_large_patch14_clip_224.laion2b", "clip", 24, 1024, 1, 224, *_HALF),
        EncoderSpec("clip-h14", "vit_huge_patch14_clip_224.laion2b", "clip", 32, 1280, 1, 224, *_OPENAI_CLIP),
        EncoderSpec("siglip2-b", "vit_base_patch16_siglip_224.v2_webli", "siglip2", 12, 768, 0, 224, *_HALF),
        EncoderSpec("siglip2-so400m", "vit_so400m_patch14_siglip_224.v2_webli", "siglip2", 27, 1152, 0, 224, *_HALF),
        EncoderSpec("mae-b", "vit_base_patch16_224.mae", "mae", 12, 768, 1, 224, *_IMAGENET, license="cc-by-nc-4.0"),
        EncoderSpec("mae-l", "vit_large_patch16_224.mae", "mae", 24, 1024, 1, 224, *_IMAGENET, license="cc-by-nc-4.0"),
        EncoderSpec("mae-h", "vit_huge_patch14_224.mae", "mae", 32, 1280, 1, 224, *_IMAGENET, license="cc-by-nc-4.0"),
    ]
}


# ---------------------------------------------------------------------------------------------
# layers and pools


def resolve_layers(layers: int | str | Iterable[int] | None, depth: int) -> tuple[int, ...]:
    """Validate a layer request against a model of ``depth`` blocks; return sorted unique layers.

    Args:
        layers: ``"all"`` (or None) for ``1..depth``; an int; an iterable of ints; or a string such as
            ``"14"``, ``"1,4,8"``, ``"0-12"`` (low-high), ``"middle"`` (block ``depth // 2``). Negative
            ints count from the end (``-1`` is the last block; ``"8--1"`` is block 8 to the last).
            Layer 0 is the token embedding before block 1.
        depth: number of blocks of the encoder.
    """
    if layers is None or (isinstance(layers, str) and layers.strip().lower() == "all"):
        return tuple(range(1, depth + 1))
    if isinstance(layers, str):
        layers = _parse_layer_string(layers, depth)
    elif not hasattr(layers, "__iter__"):
        layers = [layers]
    out = set()
    for k in layers:
        try:
            if isinstance(k, (bool, float)):
                raise TypeError
            k = operator.index(k)
        except TypeError:
            raise EncoderError(f"layers must be integers, got {k!r}") from None
        k_abs = depth + 1 + k if k < 0 else k
        if not 0 <= k_abs <= depth:
            raise EncoderError(
                f"layer {k} is out of range for a model with {depth} blocks: valid layers are 0..{depth} "
                f"(0 = token embedding, k = output of block k; negative counts from the end)"
            )
        out.add(k_abs)
    if not out:
        raise EncoderError(f"layers is empty: ask for at least one layer (valid: 0..{depth} or 'all')")
    return tuple(sorted(out))


def _parse_layer_string(text: str, depth: int) -> list[int]:
    out: list[int] = []
    for part in text.replace(" ", "").lower().split(","):
        if part == "middle":
            out.append(max(1, depth // 2))
            continue
        match = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
        if not match:
            raise EncoderError(
                f"cannot read layers {text!r}: use 'all', 'middle', a number, a list '1,4,8' or a range '0-12'"
            )
        if match.group(2) is None:
            out.append(int(match.group(1)))
            continue
        lo, hi = (int(v) for v in match.groups())
        a, b = (depth + 1 + v if v < 0 else v for v in (lo, hi))  # negative bounds count from the end
        for v, v_abs in ((lo, a), (hi, b)):
            if not 0 <= v_abs <= depth:
                raise EncoderError(f"layer range {part!r}: layer {v} is out of range for a model with {depth} "
                                   f"blocks (valid layers are 0..{depth}; negative counts from the end)")
        if a > b:
            raise EncoderError(f"layer range {part!r} runs backwards: give the lower layer first ('{hi}-{lo}')")
        out.extend(range(a, b + 1))
    return out


def check_pool(pool: str, has_cls: bool = True) -> str:
    """Validate a pooling name for a model with (``has_cls``) or without a class token.

    ``mean`` averages all tokens including prefix tokens (the published recipe); ``mean_patch`` only
    the patch tokens; ``cls`` takes the class token; ``mean+cls`` concatenates ``mean`` and ``cls``
    so its output is twice the width (see :meth:`FrozenEncoder.pooled_width`).
    """
    if pool not in POOLS:
        close = difflib.get_close_matches(str(pool), POOLS, n=2)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise EncoderError(f"unknown pool {pool!r}{hint}; choose one of {', '.join(POOLS)}")
    if pool in ("cls", "mean+cls") and not has_cls:
        # register tokens alone are no class token (``*_reg4_gap`` models): token 0 would be a register
        raise EncoderError(f"pool {pool!r} needs a class token, but this model has none (SigLIP and the "
                           "'gap' models pool their tokens instead); use 'mean' or 'mean_patch'")
    return pool


def _pool(tokens: "torch.Tensor", pool: str, prefix_tokens: int) -> "torch.Tensor":
    tokens = tokens.float()
    if pool == "mean":
        return tokens.mean(dim=1)
    if pool == "mean_patch":
        return tokens[:, prefix_tokens:].mean(dim=1)
    if pool == "cls":
        return tokens[:, 0]
    import torch

    return torch.cat([tokens.mean(dim=1), tokens[:, 0]], dim=-1)


# ---------------------------------------------------------------------------------------------
# the frozen encoder


class _StopForward(Exception):
    """Raised by the layer-0 hook when no block is needed."""


@dataclass(eq=False)
class FrozenEncoder:
    """A timm ViT in eval mode without gradients, read block by block.

    Build it with :func:`load_encoder`. Pickling stores :meth:`identity`, not the weights; unpickling
    rebuilds the model (from the hub cache, the same file, or the same seed).

    Attributes:
        name: friendly name (or the timm name given).
        timm_name: timm model name with tag.
        model: the timm module (eval, ``requires_grad=False``).
        weights: label: ``"pretrained"``, ``"random(seed=0)"`` or ``"file:<sha256[:12]>"``.
        depth, width, input_size, mean, std, prefix_tokens, final_norm: read from the built model.
        device: torch device string; precision: ``fp32``, ``bf16`` or ``fp16`` (autocast on the device).
    """

    name: str
    timm_name: str
    model: Any = field(repr=False)
    weights: str
    timm_kwargs: dict = field(default_factory=dict)
    seed: int | None = None
    weights_path: str | None = None
    weights_sha256: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    _auto_precision: bool = field(default=True, repr=False)
    compile: bool = False

    def __post_init__(self) -> None:
        self._compiled = None
        self._compiled_batch = 0
        # one forward pass at a time: the layer-0 hook sits on the shared model while it runs, and
        # estimators built alike share one encoder (threads would read each other's layer 0)
        self._forward_lock = threading.Lock()
        m = self.model
        self.depth = len(m.blocks)
        self.width = int(m.embed_dim)
        self.prefix_tokens = int(getattr(m, "num_prefix_tokens", 0))
        self.has_cls = getattr(m, "cls_token", None) is not None
        size = tuple(m.patch_embed.img_size)
        if size[0] != size[1]:
            raise EncoderError(f"{self.timm_name}: input must be square, model takes {size}")
        self.input_size = int(size[0])
        cfg = getattr(m, "pretrained_cfg", {}) or {}
        self.mean = tuple(float(v) for v in cfg.get("mean", _IMAGENET[0]))
        self.std = tuple(float(v) for v in cfg.get("std", _IMAGENET[1]))
        norm = getattr(m, "norm", None)
        self.final_norm = norm is not None and type(norm).__name__ != "Identity"

    @property
    def random_weights(self) -> bool:
        """True for random weights: every result made with them must say so."""
        return self.weights.startswith("random")

    def identity(self) -> dict:
        """JSON-able description that rebuilds this encoder (:func:`load_encoder_from_identity`).

        Keys the embedding cache (without ``path`` and ``name``: a moved file or another name for the
        same model keeps the key) and is what a pickled classifier stores.
        """
        ident: dict[str, Any] = {
            "name": self.name,
            "timm_name": self.timm_name,
            "timm_kwargs": dict(sorted(self.timm_kwargs.items())),
            "weights": self.weights.split(":")[0].split("(")[0],
            "random_weights": self.random_weights,
        }
        if self.random_weights:
            ident["seed"] = self.seed
        if self.weights_sha256:
            ident["sha256"] = self.weights_sha256
            ident["path"] = self.weights_path
        return ident

    def __reduce__(self):
        # an automatic precision is chosen again for the device it is rebuilt on
        precision = "auto" if self._auto_precision else self.precision
        return (_rebuild, (self.identity(), self.device, precision, self.compile))

    def _run_compiled(self, x: "torch.Tensor", blocks: tuple[int, ...], norm: bool):
        """The same read through ``torch.compile`` (inductor, weights frozen): ~1.3x faster on CPU once
        compiled (tens of seconds, once per layer set). Batches are padded to one size so the last,
        smaller batch does not trigger a recompile."""
        import torch

        if self._compiled is None:
            model = self.model
            self._compiled = torch.compile(
                lambda images, idx, nrm: _intermediates(model, images, idx, nrm),
                dynamic=False,
                options={"freezing": True},
            )
        b = x.shape[0]
        self._compiled_batch = max(self._compiled_batch, b)
        if b < self._compiled_batch:
            x = torch.cat([x, x.new_zeros((self._compiled_batch - b,) + tuple(x.shape[1:]))])
        states = self._compiled(x, blocks, norm)
        return [tuple(t[:b] for t in s) if isinstance(s, tuple) else s[:b] for s in states]

    def __repr__(self) -> str:
        return (
            f"FrozenEncoder({self.name!r}, timm={self.timm_name!r}, weights={self.weights!r}, depth={self.depth}, "
            f"width={self.width}, input={self.input_size}, device={self.device!r}, precision={self.precision!r})"
        )

    def pooled_width(self, pool: str = "mean") -> int:
        """Width of one pooled layer vector: ``2 * width`` for ``mean+cls``, else ``width``."""
        return 2 * self.width if check_pool(pool, self.has_cls) == "mean+cls" else self.width

    def to(self, device: "str | torch.device") -> "FrozenEncoder":
        """Move the model to ``device`` in place. An automatic precision follows the device (bf16 or fp16
        autocast on CUDA, fp32 on CPU); one asked for by name stays."""
        self.device = str(device)
        self.model.to(self.device)
        self._compiled, self._compiled_batch = None, 0  # frozen weights belong to the old device
        if self._auto_precision:
            self.precision = _default_precision(self.device)
        return self

    def auto_batch_size(self, n_images: int | None = None) -> int:
        """Images per forward pass: from free GPU memory on CUDA, 32 on the CPU."""
        import torch

        if self.device.startswith("cuda") and torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(torch.device(self.device))
            tokens = (self.input_size // self.model.patch_embed.patch_size[0]) ** 2 + self.prefix_tokens
            per_image = tokens * self.width * 2 * 24 + 3 * self.input_size**2 * 4  # a block's live activations
            size = int(0.5 * free // per_image)
            size = max(1, min(1024, size))
        else:
            size = 32
        return min(size, n_images) if n_images else size

    def _autocast(self):
        import torch

        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(torch.device(self.device).type, dtype=dtype)
        return contextlib.nullcontext()

    def forward_layers(
        self,
        images: "torch.Tensor",
        layers: int | str | Sequence[int] = "all",
        pool: str = "mean",
        norm: bool = False,
    ) -> "torch.Tensor":
        """Pooled hidden states of the requested layers, in one forward pass that stops early.

        No block after the deepest requested one runs. Layer 0 (the token embedding) is read from the
        input of the first block.

        Args:
            images: ``(B, 3, S, S)`` float tensor, already normalised with ``mean``/``std``,
                ``S == input_size``.
            layers: see :func:`resolve_layers`; outputs come in ascending layer order.
            pool: one of :data:`POOLS`.
            norm: apply the model's final norm to each hidden state before pooling (off in the
                published recipe).

        Returns:
            float32 ``(B, len(layers), pooled_width(pool))`` on the encoder's device.
        """
        import torch

        layers = resolve_layers(layers, self.depth)
        check_pool(pool, self.has_cls)
        if norm and not self.final_norm:
            raise EncoderError(f"{self.name} has no final norm; use norm=False")
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, self.input_size, self.input_size):
            raise EncoderError(
                f"images must be (B, 3, {self.input_size}, {self.input_size}) for {self.name}, "
                f"got {tuple(images.shape)}"
            )
        model = self.model
        x = images.to(self.device, dtype=torch.float32, non_blocking=True)
        blocks = [k - 1 for k in layers if k > 0]
        captured: dict[str, torch.Tensor] = {}

        def _grab_embedding(_module, args):
            captured["x"] = args[0]
            if not blocks:
                raise _StopForward

        with self._forward_lock, torch.inference_mode(), self._autocast():
            handle = model.blocks[0].register_forward_pre_hook(_grab_embedding) if 0 in layers else None
            try:
                states = []
                if blocks and self.compile and handle is None:
                    states = self._run_compiled(x, tuple(blocks), norm)
                elif blocks:
                    states = _intermediates(model, x, blocks, norm)
                else:
                    try:
                        model.forward_intermediates(x, indices=[0], stop_early=True, output_fmt="NLC",
                                                    intermediates_only=True)
                    except _StopForward:
                        pass
            finally:
                if handle is not None:
                    handle.remove()
            tokens = [torch.cat([s[1], s[0]], dim=1) if isinstance(s, tuple) else s for s in states]
            if 0 in layers:
                embedding = captured["x"]
                tokens.insert(0, model.norm(embedding) if norm else embedding)
            pooled = [_pool(t, pool, self.prefix_tokens) for t in tokens]
            return torch.stack(pooled, dim=1).float()


def _intermediates(model, x, blocks, norm):
    """timm's one-pass, early-stopping read of the blocks in ``blocks`` (0-based), tokens as NLC."""
    return model.forward_intermediates(
        x,
        indices=list(blocks),
        # timm's ViTs without prefix tokens other than VisionTransformer itself (relpos, Eva, PE) fail
        # when asked for prefix tokens they do not have
        return_prefix_tokens=getattr(model, "num_prefix_tokens", 0) > 0,
        norm=norm,
        stop_early=True,
        output_fmt="NLC",
        intermediates_only=True,
    )


def _rebuild(identity: dict, device: str, precision: str, compile: bool = False) -> FrozenEncoder:
    return load_encoder_from_identity(identity, device=device, precision=precision, compile=compile)


# ---------------------------------------------------------------------------------------------
# loading


def _default_precision(device: str) -> str:
    import torch

    if not device.startswith("cuda"):
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_device(device) -> str:
    """``device`` as a string, if torch knows it and it is here; else an :class:`EncoderError` saying why."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise EncoderError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from err
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise EncoderError(f"device {str(device)!r} asked for, but torch sees no CUDA GPU here; use 'cpu'")
        if parsed.index is not None and parsed.index >= count:
            raise EncoderError(f"device {str(device)!r} asked for, but torch sees {count} CUDA GPU(s) (cuda:0..{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise EncoderError(f"device {str(device)!r} asked for, but the MPS backend is not available here; use 'cpu'")
    return str(device)


def _resolve_name(name: str) -> tuple[str, str, dict]:
    """Friendly or timm name -> (display name, timm name with tag, default timm kwargs)."""
    import timm

    key = name.strip()
    if key.lower() in ENCODERS:
        spec = ENCODERS[key.lower()]
        return spec.name, spec.timm_name, dict(spec.timm_kwargs)
    base, _, tag = key.partition(".")
    if timm.is_model(base) and tag:
        tags = [n.partition(".")[2] for n in timm.list_models(f"{base}.*", include_tags=True)]
        if tag not in tags:  # every tag timm registers, with downloadable weights or not (".untrained")
            known = f"its tags are {', '.join(tags)}" if tags else "timm registers no tags for it"
            raise EncoderError(f"unknown tag {tag!r} for {base}: {known}")
        return key, key, {}
    if timm.is_model(base):
        return key, key, {}
    choices = list(ENCODERS) + timm.list_models("*vit*") + timm.list_models("eva*")
    close = difflib.get_close_matches(key, choices, n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise EncoderError(
        f"unknown encoder {name!r}{hint} Friendly names: {', '.join(ENCODERS)}; any timm ViT name also works"
        " (`tivit encoders` lists the table)."
    )


def _check_sizes(kwargs: dict) -> None:
    """The size arguments tests and users pass to timm, checked before timm fails on them deep inside
    (``depth=-1`` surfaced as torch's "number of steps must be non-negative")."""
    def positive(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    for key in ("depth", "embed_dim", "num_heads"):
        if key in kwargs and not positive(kwargs[key]):
            raise EncoderError(f"{key}={kwargs[key]!r}: must be an integer >= 1")
    pairs = {}
    for key in ("img_size", "patch_size"):
        if key in kwargs:
            value = kwargs[key]
            pair = tuple(value) if isinstance(value, (tuple, list)) else (value,)
            if not (1 <= len(pair) <= 2 and all(positive(v) for v in pair)):
                raise EncoderError(f"{key}={value!r}: must be an integer >= 1 (or a pair of them)")
            pairs[key] = pair * (3 - len(pair))
    if len(pairs) == 2 and any(p > i for p, i in zip(pairs["patch_size"], pairs["img_size"])):
        raise EncoderError(f"patch_size={kwargs['patch_size']!r} is larger than img_size={kwargs['img_size']!r}: "
                           "the image would hold no patch")
    if kwargs.get("in_chans", 3) != 3:
        raise EncoderError(f"in_chans={kwargs['in_chans']!r}: the renderers feed 3-channel images (in_chans=3)")


def _create(timm_name: str, pretrained: bool, kwargs: dict):
    import timm

    return timm.create_model(timm_name, pretrained=pretrained, **{"num_classes": 0, **kwargs})


def _load_file(timm_name: str, kwargs: dict, path: Path):
    """The model with every tensor from the file at ``path``; a file that leaves one unset is an error.

    timm's own file loading turns non-strict as soon as the classifier differs (tivit drops it), so
    a file that fits no tensor at all loaded silently, leaving random weights labelled as a file's.
    Here the file goes through the model family's checkpoint conversion (timm's
    ``checkpoint_filter_fn``: original DINOv2/CLIP layouts, position embeddings resized to
    ``img_size``) and then every tensor but the classifier (``head.*``) must come from it. Tensors
    the model does not use (a deeper checkpoint read by a shallower model) are reported in a warning.
    """
    import sys

    from timm.models import load_state_dict

    if path.stat().st_size == 0:
        raise EncoderWeightsError(f"weights file {path} is empty")
    model = _build(timm_name, kwargs, seed=0)  # whatever the checks below miss is at least the same on every load
    try:
        state = load_state_dict(str(path), use_ema=True, device="cpu")
        _check_patch_size(state, model, path)
        convert = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
        if convert is not None:
            state = convert(state, model)
        result = model.load_state_dict(state, strict=False)
    except EncoderWeightsError:
        raise
    except Exception as err:  # torch, safetensors and pickle each fail in their own way on a bad file
        if "weights_only" in str(err):  # a whole pickled model, not a state dict
            raise EncoderWeightsError(f"weights file {path} holds a pickled object, not a state dict: save "
                                      "model.state_dict() (or a .safetensors file) instead") from err
        raise EncoderWeightsError(f"weights file {path} does not fit {timm_name}: {_load_error(err)}") from err
    missing = [k for k in result.missing_keys if not k.startswith("head")]
    if missing:
        used = [k for k in model.state_dict() if not k.startswith("head") and k not in result.missing_keys]
        hint = ("give the timm name and arguments the file was saved from" if used else
                f"none of its tensors has a name of the model; its top-level keys are {_top_keys(path)}")
        raise EncoderWeightsError(
            f"weights file {path} does not fit {timm_name}: it leaves {len(missing)} of its tensors unset "
            f"(e.g. {', '.join(missing[:3])}); {hint}"
        )
    unused = [k for k in result.unexpected_keys if not k.startswith("head")]
    if unused:
        warnings.warn(f"weights file {path}: {len(unused)} tensors are not used by {timm_name} with {kwargs} "
                      f"(e.g. {', '.join(unused[:3])})", stacklevel=3)
    return model


def _build(timm_name: str, kwargs: dict, seed: int, pretrained: bool = False):
    """``timm.create_model`` under a fixed seed; timm's refusals of the arguments (asserts, negative
    sizes) become :class:`EncoderError` naming them."""
    import torch

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return _create(timm_name, pretrained, kwargs)
    except (TypeError, AssertionError, ValueError) as err:
        raise EncoderError(f"timm rejected the arguments {kwargs} for {timm_name}: {err or type(err).__name__}") from err
    except RuntimeError as err:
        if pretrained:
            raise
        raise EncoderError(f"timm cannot build {timm_name} with {kwargs}: {_load_error(err)}") from err


def _load_error(err: BaseException) -> str:
    """The telling line of a loading error: torch's begins with "Error(s) in loading state_dict for
    VisionTransformer:" and names the tensors on the lines after it."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    telling = [line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    return (telling or lines or [type(err).__name__])[0][:300]


def _top_keys(path: Path) -> list[str]:
    """The top-level keys of a torch checkpoint (what wraps its state dict), for an error message."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - only for a message
        return []
    return sorted(map(str, obj))[:8] if isinstance(obj, dict) else []


def _check_patch_size(state: dict, model, path: Path) -> None:
    """Refuse a file saved with another patch size: timm's conversion would resample its patch
    kernels to the model's without a word, and the features would no longer be the file's model."""
    saved = state.get("patch_embed.proj.weight")
    built = getattr(getattr(model.patch_embed, "proj", None), "weight", None)
    if saved is not None and built is not None and tuple(saved.shape[-2:]) != tuple(built.shape[-2:]):
        raise EncoderWeightsError(
            f"weights file {path} was saved with patch size {tuple(saved.shape[-2:])}, the model is built with "
            f"{tuple(built.shape[-2:])}: give patch_size={saved.shape[-1]} (the file's architecture)")


def load_encoder(
    name: str,
    weights: str | os.PathLike = "pretrained",
    device: str | None = None,
    seed: int = 0,
    precision: str = "auto",
    compile: bool = False,
    **timm_kwargs: Any,
) -> FrozenEncoder:
    """Build a frozen encoder.

    Args:
        name: friendly name from :data:`ENCODERS` or any timm ViT-family name (optionally with tag).
        weights: ``"pretrained"``, ``"random"`` or a path to a ``.safetensors``/``.pth``/``.bin`` file.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA if available, else CPU.
        seed: seed of the random initialisation (``weights="random"`` only).
        precision: ``"auto"`` (bf16 autocast on CUDA, fp16 where the GPU lacks bf16, fp32 on CPU),
            ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast on any device). On CPUs with bf16 units
            (AVX512-BF16 or AMX: AMD Zen 4, Intel Sapphire Rapids and later) ``"bf16"`` runs a ViT
            about 3x faster than fp32, with embeddings within about 0.5 %; elsewhere it is slower.
        compile: run the blocks through ``torch.compile`` (faster for long extractions; the first
            batch of each layer set pays the compile time; layer 0 requests run eagerly).
        **timm_kwargs: passed to ``timm.create_model`` (``img_size=64, depth=4`` for tiny test models).

    Raises:
        EncoderError: unknown name (with close matches), not a ViT-family model, bad precision.
        EncoderWeightsError: pretrained weights cannot be had, or the weights file is missing or does not fit.
    """
    if not isinstance(weights, (str, os.PathLike)):
        raise EncoderError(f"weights must be 'pretrained', 'random' or a path to a weights file, got {weights!r}")
    display, timm_name, kwargs = _resolve_name(name)
    kwargs.update(timm_kwargs)
    device = _check_device(device) if device is not None else _default_device()
    if precision not in PRECISIONS:
        raise EncoderError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    _check_sizes(kwargs)
    weights_label, path, sha = str(weights), None, None
    try:
        # before any weights are looked for (random weights look for none: the real build is judged)
        shape_only = None if weights == "random" else _weightless(timm_name, kwargs)
        if shape_only is not None:
            _check_family(shape_only, timm_name)
            _check_grid(shape_only, timm_name, "img_size" in timm_kwargs and not _REBUILDING.get())
        if weights == "random":
            model = _build(timm_name, kwargs, seed)
            weights_label = f"random(seed={int(seed)})"
        elif weights == "pretrained":
            model = _load_pretrained(display, timm_name, kwargs)
        else:
            path = Path(weights).expanduser().resolve()
            if not path.is_file():
                what = "is a folder, not a file" if path.is_dir() else "does not exist"
                raise EncoderWeightsError(
                    f"weights file {str(weights)!r} {what}; weights must be 'pretrained', 'random' or a path "
                    "to a .safetensors/.pth/.bin file"
                )
            sha = sha256_file(path)
            model = _load_file(timm_name, kwargs, path)
            weights_label = f"file:{sha[:12]}"
    except (TypeError, AssertionError) as err:
        raise EncoderError(f"timm rejected the arguments {kwargs} for {timm_name}: {err}") from err
    if shape_only is None:
        _check_family(model, timm_name)
        _check_grid(model, timm_name, "img_size" in timm_kwargs and not _REBUILDING.get())
    model.eval().requires_grad_(False).float().to(device)  # fp32 weights whatever torch's default dtype
    resolved = _default_precision(device) if precision == "auto" else precision
    return FrozenEncoder(
        name=display,
        timm_name=timm_name,
        model=model,
        weights=weights_label,
        timm_kwargs=kwargs,
        seed=int(seed) if weights == "random" else None,
        weights_path=str(path) if path else None,
        weights_sha256=sha,
        device=device,
        precision=resolved,
        _auto_precision=precision == "auto",
        compile=bool(compile),
    )


def _weightless(timm_name: str, kwargs: dict):
    """The model built on the ``meta`` device (shapes, no memory, no weights), or None for a model
    whose construction needs real tensors. It lets a model tivit cannot read be refused before any
    weights are looked for: a ResNet is "not a ViT" rather than "weights missing"."""
    import torch

    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm's own warnings come once, from the real build
            return _create(timm_name, False, kwargs)
    except (TypeError, AssertionError):
        raise  # timm rejected the arguments: reported by the caller
    except Exception:  # noqa: BLE001 - e.g. .item() at construction; judged after the real build instead
        return None


def _check_family(model, timm_name: str) -> None:
    """Refuse a model whose blocks tivit cannot read layer by layer."""
    if not (hasattr(model, "forward_intermediates") and hasattr(model, "blocks") and hasattr(model, "patch_embed")):
        raise EncoderError(f"{timm_name} is not a ViT-family model (no blocks/patch_embed/forward_intermediates)")
    if "return_prefix_tokens" not in inspect.signature(model.forward_intermediates).parameters:
        # CaiT, XCiT: blocks without the class token (it joins after them), so no per-layer prefix tokens
        raise EncoderError(f"{timm_name} does not return its prefix tokens per block (CaiT/XCiT-style class "
                           "attention); tivit reads ViT-family models whose blocks carry every token")


# set while an identity is rebuilt: an encoder fitted and pickled before the grid check stays loadable
_REBUILDING: contextvars.ContextVar[bool] = contextvars.ContextVar("tivit_rebuilding", default=False)


def _check_grid(model, timm_name: str, size_given: bool) -> None:
    """An input side that is not a multiple of the patch side: the patch grid stops short of the
    image's far edge, so its last rows and columns never reach the model. Refused when the size was
    given (a tiny ``img_size=64`` with patch 14 would drop 8 of 64 pixels); a warning when it is the
    model's own (``*_patch14_siglip_384`` reads 378 of its 384 pixels, as it was trained)."""
    embed = model.patch_embed
    if getattr(embed, "dynamic_img_pad", False) or getattr(embed, "img_size", None) is None:
        return  # timm pads the image up to whole patches itself
    size, patch = tuple(embed.img_size), tuple(embed.patch_size)
    seen = tuple(s // p * p for s, p in zip(size, patch))
    if seen == size:
        return
    message = (f"{timm_name}: img_size {size[0]} is not a multiple of the patch size {patch[0]}; the model reads "
               f"only the first {seen[0]} pixels of each row and column of the rendered image")
    if size_given:
        lower, upper = seen[0], seen[0] + patch[0]
        raise EncoderError(f"{message}. Use img_size={lower} or img_size={upper}")
    warnings.warn(message, stacklevel=3)


def _load_pretrained(display: str, timm_name: str, kwargs: dict):
    """The model with timm's pretrained weights, every tensor but the classifier from them.

    timm loads a checkpoint non-strictly whenever its classifier differs from the model's, which it
    always does for tivit's headless models, and only logs what it left unset: asked for a deeper or
    otherwise changed architecture (``depth=``, ``qk_norm=True``...), CLIP's checkpoints loaded with
    random blocks, labelled pretrained. Every load is recorded and such a model refused.
    """
    try:
        with _recorded_loads() as loads:
            model = _build(timm_name, kwargs, seed=0, pretrained=True)
    except RuntimeError as err:
        if "No pretrained weights" in str(err):
            raise _unavailable(display, timm_name, err, "timm has no pretrained weights for this name "
                                                        "(give a tag, e.g. name.tag)") from err
        reason = _load_error(err) if "loading state_dict" in str(err) else str(err).strip()[:300]
        raise _misfit(display, timm_name, kwargs, reason) from err
    except OSError as err:  # the hub or its cache: the weights cannot be had
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set and they are not in the local cache" if offline else (
            "the hub cannot be reached and they are not in the local cache")
        raise _unavailable(display, timm_name, err, why) from err
    missing = sorted({k for result in loads for k in result.missing_keys if not k.startswith("head")})
    if missing:
        raise _misfit(display, timm_name, kwargs, f"they leave {len(missing)} tensors unset "
                                                   f"(e.g. {', '.join(missing[:3])}), which would stay random")
    return model


def _unavailable(display: str, timm_name: str, err: BaseException, why: str) -> EncoderWeightsError:
    text = str(err)
    return EncoderWeightsError(
        f"pretrained weights for {display} ({timm_name}) cannot be loaded: {why}. "
        f"Either pass weights=PATH to a local .safetensors/.pth file (CLI: --weights PATH), "
        f"or weights='random' (CLI: --weights random) for seeded random weights, labelled 'random' "
        f"in every result. [{type(err).__name__}: {text.splitlines()[0][:200] if text else ''}]")


def _misfit(display: str, timm_name: str, kwargs: dict, reason: str) -> EncoderWeightsError:
    return EncoderWeightsError(
        f"pretrained weights for {display} ({timm_name}) do not fit the model built with {kwargs}: {reason}; "
        "drop the arguments that change its architecture, or use weights=PATH or 'random'")


_LOADS = threading.Lock()  # one recording at a time: each restores exactly what it replaced


@contextlib.contextmanager
def _recorded_loads():
    """Collect what every ``load_state_dict`` of this thread returns during the block (its missing
    keys). timm offers no other view of what its pretrained loading left unset; the patch of
    ``torch.nn.Module`` is held under a lock and records the calling thread's loads only."""
    import torch

    with _LOADS:
        original = torch.nn.Module.load_state_dict
        owner = threading.get_ident()
        results: list = []

        def recording(module, *args, **kwargs):
            result = original(module, *args, **kwargs)
            if threading.get_ident() == owner:
                results.append(result)
            return result

        torch.nn.Module.load_state_dict = recording
        try:
            yield results
        finally:
            torch.nn.Module.load_state_dict = original


def load_encoder_from_identity(
    identity: dict, device: str | None = None, precision: str = "auto", compile: bool = False
) -> FrozenEncoder:
    """Rebuild the encoder described by :meth:`FrozenEncoder.identity`.

    A file-weights identity needs the file at its recorded path with the same sha256.
    """
    weights = identity.get("weights", "pretrained")
    seed = identity.get("seed") or 0
    if weights == "file":
        path = identity.get("path")
        if not path or not Path(path).is_file():
            raise EncoderWeightsError(
                f"weights file {path!r} recorded for {identity.get('name')} (sha256 "
                f"{str(identity.get('sha256'))[:12]}) is gone; put that file back at this path")
        sha = sha256_file(Path(path))
        if sha != identity.get("sha256"):
            raise EncoderWeightsError(
                f"weights file {path} changed since it was used (sha256 {sha[:12]} != {str(identity.get('sha256'))[:12]})"
            )
        weights = path
    token = _REBUILDING.set(True)
    try:
        return load_encoder(identity["name"], weights=weights, device=device, seed=seed, precision=precision,
                            compile=compile, **identity.get("timm_kwargs", {}))
    finally:
        _REBUILDING.reset(token)


def describe_encoders() -> list[dict]:
    """The encoder table as rows of plain values (for ``tivit encoders`` and docs)."""
    stats = {_OPENAI_CLIP[0]: "CLIP", _IMAGENET[0]: "ImageNet", _HALF[0]: "0.5/0.5"}
    return [
        {
            "name": spec.name,
            "timm model": spec.timm_name,
            "blocks": spec.depth,
            "width": spec.width,
            "prefix": spec.prefix_tokens,
            "px": spec.input_size,
            "mean/std": stats.get(spec.mean, str(spec.mean)),
            "license": spec.license,
        }
        for spec in ENCODERS.values()
    ]

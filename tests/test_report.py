"""`tivit report`: numbers (mean accuracy, ranks, wins/ties/losses), Markdown/HTML, and both PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tivit._atomic import atomic_append_lines, atomic_write_json
from tivit.cli import app
from tivit.report import (
    ReportError,
    accuracy_table,
    load_run,
    mean_ranks,
    reference_accuracies,
    wins_ties_losses,
    write_report,
)

# per dataset: accuracy of layers 1..3, the CV layer, and MiniRocket's accuracy
RUN = {
    "GunPoint": ({1: 0.70, 2: 0.80, 3: 0.75}, 2, 0.99),
    "Coffee": ({1: 1.00, 2: 1.00, 3: 0.90}, 1, 1.00),
    "Beef": ({1: 0.50, 2: 0.60, 3: 0.70}, 2, 0.60),
    "NotInTheReferences": ({1: 0.40, 2: 0.30, 3: 0.20}, 3, 0.50),
}


def _record(name: str, accuracy: dict, cv: int, minirocket: float) -> dict:
    oracle = max(accuracy, key=lambda k: (accuracy[k], -k))
    seconds = {str(k): 0.1 for k in accuracy}
    return {
        "dataset": name, "archive": "ucr", "status": "done", "n_train": 10, "n_test": 10, "length_max": 50,
        "tivit": {"model": "tivit-x", "layers": sorted(accuracy), "accuracy": {str(k): v for k, v in accuracy.items()},
                  "cv_layer": cv, "last_layer": max(accuracy), "oracle_layer": oracle, "fit_seconds": seconds,
                  "predict_seconds": seconds, "embed_train_seconds": 1.0, "embed_test_seconds": 1.0,
                  "cv_seconds": 0.5, "random_weights": True},
        "baselines": [{"model": "minirocket", "accuracy": minirocket, "fit_seconds": 0.2, "predict_seconds": 0.1}],
        "results": [], "summary": [],
    }


def _make_run(folder: Path, random_weights: bool = True, run=RUN) -> Path:
    atomic_write_json(folder / "config.json", {
        "config": {"encoder": "x", "baselines": ["minirocket"], "renderer": "tivit", "pool": "mean", "head": "linear",
                   "C": 1.0, "layers": "all", "seed": 0},
        "archive": "ucr", "datasets": list(run), "model": "tivit-x",
        "weights": "random(seed=0)" if random_weights else "pretrained", "random_weights": random_weights,
        "versions": {"tivit": "0"}, "seeds": {"seed": 0},
        "encoder_info": {"input_size": 64, "precision": "bf16", "device": "cpu"},
    })
    lines = [json.dumps({"dataset": "Beef", "status": "failed", "error": "boom"})]  # later retried and done
    lines += [json.dumps(_record(name, *spec)) for name, spec in run.items()]
    atomic_append_lines(folder / "runs.jsonl", lines)
    return folder


def test_accuracy_table_ranks_and_wins(tmp_path):
    run = load_run(_make_run(tmp_path))
    assert run.failed == {}  # Beef's failure was followed by a finished line
    names, columns, values, layers = accuracy_table(run)
    assert names == list(RUN)
    assert columns[:4] == ["tivit cv", "tivit last", "tivit oracle", "minirocket"]
    assert columns[4] == "MiniRocket published"
    np.testing.assert_allclose(values[:, 0], [0.80, 1.00, 0.60, 0.20])  # cv
    np.testing.assert_allclose(values[:, 1], [0.75, 0.90, 0.70, 0.20])  # last
    np.testing.assert_allclose(values[:, 2], [0.80, 1.00, 0.70, 0.40])  # oracle
    assert layers["tivit oracle"] == [2, 1, 3, 1]
    ref = reference_accuracies()["MiniRocket published"]
    assert values[0, 4] == ref["GunPoint"] and np.isnan(values[3, 4])
    assert wins_ties_losses(values[:, 0], values[:, 3]) == (0, 2, 2)
    assert wins_ties_losses(values[:, 2], values[:, 3]) == (1, 1, 2)
    # rows: cv, last, minirocket -> ranks per dataset (1 = best, ties averaged)
    np.testing.assert_allclose(mean_ranks(values[:, [0, 1, 3]]), [(2 + 1.5 + 2.5 + 2.5) / 4, (3 + 3 + 1 + 2.5) / 4,
                                                                  (1 + 1.5 + 2.5 + 1) / 4])


def test_report_files_and_random_weights_banner(tmp_path):
    from PIL import Image

    files = write_report(_make_run(tmp_path / "run"), tmp_path / "rep")
    md, page = files.markdown.read_text(), files.html.read_text()
    for text in (md, page):
        assert text.count("RANDOM WEIGHTS") >= 2  # top and bottom of the page
        assert "NotInTheReferences" in text and "oracle" in text and "Critical difference" in text
        assert "64 px input, bf16 on cpu" in text  # the precision the embeddings were made in
    assert "| tivit cv | 0 / 2 / 2 |" in md
    assert "| tivit cv | 0.6500 |" in md  # mean accuracy of the cv column
    assert "<div class='banner'>" in page and "<table>" in page
    assert "accuracy_by_layer.png" in md and "critical_difference.png" in page
    for png in (files.layers_png, files.cd_png):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 150


def test_report_without_random_weights_has_no_banner(tmp_path):
    files = write_report(_make_run(tmp_path, random_weights=False))
    assert files.markdown.parent == tmp_path / "report"
    assert "RANDOM WEIGHTS" not in files.markdown.read_text()
    assert "RANDOM WEIGHTS" not in files.html.read_text()


def test_report_with_one_dataset_skips_the_cd_diagram(tmp_path):
    files = write_report(_make_run(tmp_path, run={"GunPoint": RUN["GunPoint"]}))
    assert files.cd_png is None and not (tmp_path / "report" / "critical_difference.png").exists()
    assert "Not drawn" in files.markdown.read_text()


def test_report_of_a_run_without_baselines_or_search_skips_the_cd_diagram(tmp_path):
    """Two ranked columns (cv, last): aeon's diagram starts with a Friedman test that needs three, and
    `tivit bench --baselines none --search-trials 0` ended in its ValueError after every dataset ran."""
    folder = _make_run(tmp_path / "run")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["baselines"] = []
    (folder / "config.json").write_text(json.dumps(config))
    lines = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    for record in lines:
        record["baselines"] = []
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    files = write_report(folder, tmp_path / "rep")
    assert files.cd_png is None and "three ranked models" in files.markdown.read_text()


def test_report_errors(tmp_path):
    with pytest.raises(ReportError, match="not a tivit bench folder"):
        load_run(tmp_path)
    atomic_write_json(tmp_path / "config.json", {"config": {}, "datasets": ["A"]})
    atomic_append_lines(tmp_path / "runs.jsonl", [json.dumps({"dataset": "A", "status": "failed", "error": "x"})])
    with pytest.raises(ReportError, match="no dataset has finished"):
        load_run(tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no dataset has finished" in " ".join(result.output.split())
    runs = tmp_path / "runs.jsonl"
    runs.write_text(runs.read_text() + '{"dataset": "B", "stat\n')  # cut outside tivit
    with pytest.raises(ReportError, match=r"runs\.jsonl, line 2 is corrupt"):
        load_run(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(config.read_text()[:10])
    with pytest.raises(ReportError, match=r"config\.json is corrupt"):
        load_run(tmp_path)


def test_reference_file_is_sourced():
    from importlib import resources

    refs = reference_accuracies()["MiniRocket published"]
    assert len(refs) == 109 and refs["GunPoint"] == pytest.approx(0.992444)
    assert all(0.0 < v <= 1.0 for v in refs.values())
    sources = resources.files("tivit.resources").joinpath("REFERENCE_SOURCES.md").read_text()
    assert "angus924/minirocket" in sources and "results_ucr109_mean.csv" in sources


def test_report_says_how_the_paper_split_was_drawn(tmp_path):
    folder = _make_run(tmp_path / "run")
    lines = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    notes = iter(["the published run's stream: seed 2025, dataset 1 of 128 in aeon's UCR order"] * 3
                 + ["own stream (seed 2025): ..."])
    for record in lines:
        if record.get("status") == "done":
            record["tivit"]["fit_split"] = next(notes)
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    text = write_report(folder, tmp_path / "rep").markdown.read_text()
    assert "drawn from the published run's NumPy stream for 3 of 4 datasets" in text
    assert "from a stream of their own for NotInTheReferences" in text
    assert "published run's NumPy stream" not in write_report(_make_run(tmp_path / "plain"),
                                                                tmp_path / "rep2").markdown.read_text()


def test_report_title_names_the_datasets_own_archives(tmp_path):
    folder = _make_run(tmp_path / "run")
    lines = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    for record in lines:
        if record.get("dataset") == "Coffee":
            record["archive"] = "uea"
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert "on 4 UCR and UEA datasets" in write_report(folder, tmp_path / "rep").markdown.read_text()


def test_a_partial_run_failed_baselines_and_uneven_means_are_said(tmp_path):
    """An interrupted run looked complete; a failed baseline, or a summary missing on some datasets,
    gave means over other datasets side by side with nothing said."""
    folder = _make_run(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    atomic_write_json(folder / "config.json", {**config, "datasets": [*config["datasets"], "Later"]})
    lines = (folder / "runs.jsonl").read_text().splitlines()
    broken = json.loads(lines[-1])
    broken["baselines"] = [{"model": "minirocket", "accuracy": None, "fit_seconds": None, "predict_seconds": None,
                            "error": "ValueError: MiniRocket needs series of length >= 9, got 8"}]
    (folder / "runs.jsonl").write_text("\n".join([*lines[:-1], json.dumps(broken)]) + "\n")
    md = write_report(folder).markdown.read_text()
    assert "on 4 of 5 UCR datasets" in md and "Partial run: 4 of 5 datasets finished; not run yet: Later." in md
    assert "Failed baselines (their cells stay empty): NotInTheReferences: minirocket (ValueError: MiniRocket" in md
    mean_row = next(line for line in md.splitlines() if line.startswith("| **mean**"))
    assert "(3 of 4)" in mean_row  # minirocket's mean is over 3 datasets
    assert "mean rank (3 datasets)" in md


def test_dataset_names_are_shown_as_named(tmp_path):
    folder = _make_run(tmp_path, run={"Odd<b>&Name": RUN["GunPoint"], "Star**Bold**": RUN["Coffee"]})
    files = write_report(folder)
    md, page = files.markdown.read_text(), files.html.read_text()
    assert "| Odd\\<b\\>&Name |" in md and "| Star\\*\\*Bold\\*\\* |" in md
    assert "<td class=''>Odd&lt;b&gt;&amp;Name</td>" in page and "<td class=''>Star**Bold**</td>" in page
    assert "<td class=''><b>mean</b></td>" in page


def test_a_finished_line_without_its_tivit_entry_is_corrupt(tmp_path):
    folder = _make_run(tmp_path)
    atomic_append_lines(folder / "runs.jsonl", [json.dumps({"dataset": "X", "status": "done", "results": [],
                                                            "summary": []})])
    with pytest.raises(ReportError, match="without its results, summary and tivit entries"):
        load_run(folder)


def test_summary_rows_name_a_layer_only_beside_a_number(tmp_path):
    from tivit.report import summary_rows

    folder = _make_run(tmp_path)
    lines = (folder / "runs.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    records[1]["tivit"]["searched"] = {"layer": 2, "C": 1.0, "accuracy": 0.8}  # one dataset searched, the rest not
    (folder / "runs.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    header, rows = summary_rows(load_run(folder))
    col = header.index("tivit searched")
    assert [row[col] for row in rows] == ["0.8000 (L2)", "", "", "", "0.8000 (1 of 4)"]

"""The report of a ``tivit bench`` run: tables, ranks, wins/ties/losses, two plots, Markdown and HTML.

Read from the run's folder only (``config.json`` and ``runs.jsonl``, see :mod:`tivit.bench`), so a
report can be rebuilt at any time, also for a run that is still going. Contents:

- per-dataset accuracy: tivit's ``cv`` (the honest number), ``last``, ``searched`` (layer and C
  from the Optuna search on train, when the run made one) and ``oracle`` (best layer on TEST:
  optimistic, shown for reference only), each baseline, and the published reference accuracy
  where the dataset has one (``tivit/resources/reference_accuracies.csv``);
- mean accuracy and mean rank (ranks among ``cv``, ``last``, ``searched`` and the baselines; the
  oracle is not ranked), wins/ties/losses of each tivit summary against each baseline;
- ``accuracy_by_layer.png`` (test accuracy of every layer, per dataset and mean) and
  ``critical_difference.png`` (aeon's ``plot_critical_difference``: Wilcoxon-Holm cliques);
- the run's configuration, package versions and seeds.

A run with random encoder weights carries a RANDOM WEIGHTS banner on every page and plot.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tivit._atomic import CorruptFileError, atomic_write_bytes, atomic_write_text, read_json, sweep_temporaries

REFERENCE_FILE = "reference_accuracies.csv"
ARCHIVE_MEANS_FILE = "reference_archive_means.csv"
RANDOM_BANNER = (
    "RANDOM WEIGHTS: the encoder had random weights ({weights}); these numbers say nothing about "
    "a pretrained model."
)


class ReportError(ValueError):
    """A report cannot be written (no run in the folder, nothing finished yet)."""


@dataclass
class RunData:
    """A bench run as read from its folder.

    Attributes:
        out_dir: the run's folder.
        header: ``config.json`` (settings, encoder, versions, seeds).
        records: the ``done`` record of each finished dataset, in the run's dataset order.
        failed: ``{dataset: error}`` of datasets whose last attempt failed.
    """

    out_dir: Path
    header: dict
    records: list[dict]
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        """True when the run's encoder had random weights (the report says so on top)."""
        return bool(self.header.get("random_weights"))

    @property
    def model(self) -> str:
        """The tivit model name in the run's tables."""
        return str(self.header.get("model", "tivit"))

    @property
    def baselines(self) -> list[str]:
        """Baseline names the run compared against."""
        return list(self.header.get("config", {}).get("baselines", []))

    @property
    def searched(self) -> bool:
        """True when the run has a ``searched`` summary (``tivit bench --search-trials N``, N > 0)."""
        return any(r["tivit"].get("searched") for r in self.records)


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    markdown: Path
    html: Path
    layers_png: Path
    cd_png: Path | None


def load_run(out_dir: str | os.PathLike) -> RunData:
    """Read a bench folder.

    Args:
        out_dir: folder written by ``tivit bench`` (holds ``config.json`` and ``runs.jsonl``).
    """
    from tivit.bench import CONFIG_FILE, RUNS_FILE, run_records

    out_dir = Path(out_dir)
    config_path = out_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ReportError(f"{out_dir} holds no {CONFIG_FILE}: not a tivit bench folder")
    try:
        header, records = read_json(config_path), run_records(out_dir)
    except CorruptFileError as err:
        raise ReportError(str(err)) from err
    if not isinstance(header, dict):
        raise ReportError(f"{config_path} holds a JSON {type(header).__name__}, not the run's settings: it was "
                          "changed outside tivit")
    finished: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for record in records:
        name = record["dataset"]
        if record.get("status") == "done":
            finished[name] = record
            failed.pop(name, None)
        elif name not in finished:
            failed[name] = record.get("error", "")
    order = {n: i for i, n in enumerate(header.get("datasets", []))}
    done = sorted(finished.values(), key=lambda r: order.get(r["dataset"], len(order)))
    if not done:
        raise ReportError(f"{out_dir}: no dataset has finished yet ({RUNS_FILE} holds no finished line)")
    return RunData(out_dir, header, done, failed)


def reference_accuracies() -> dict[str, dict[str, float]]:
    """Published per-dataset accuracies: ``{model: {dataset: accuracy}}`` (see REFERENCE_SOURCES.md)."""
    import csv

    out: dict[str, dict[str, float]] = {}
    text = resources.files("tivit.resources").joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    for row in csv.DictReader(text.splitlines()):
        out.setdefault(f"{row['model']} published", {})[row["dataset"]] = float(row["accuracy"])
    return out


def archive_means() -> list[dict]:
    """Published archive-level mean accuracies (see REFERENCE_SOURCES.md)."""
    import csv

    text = resources.files("tivit.resources").joinpath(ARCHIVE_MEANS_FILE).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


# ---------------------------------------------------------------------------------------------
# numbers


def accuracy_table(run: RunData) -> tuple[list[str], list[str], np.ndarray, dict[str, list[Any]]]:
    """Per-dataset accuracies.

    Returns:
        ``(datasets, columns, values, layers)``: ``values`` is ``(datasets, columns)`` with NaN where
        missing; columns are ``tivit cv``, ``tivit last``, ``tivit searched`` (runs with a search),
        ``tivit oracle``, the baselines, then the published references; ``layers`` gives the layer
        of each tivit column per dataset.
    """
    names = [r["dataset"] for r in run.records]
    tivit_columns = _tivit_columns(run)
    columns = tivit_columns + run.baselines
    layers: dict[str, list[Any]] = {c: [] for c in tivit_columns}
    rows = []
    for r in run.records:
        t = r["tivit"]
        base = {b["model"]: b["accuracy"] for b in r.get("baselines", []) if b.get("accuracy") is not None}
        row = []
        for col in tivit_columns:
            if col == "tivit searched":
                found = t.get("searched") or {}
                row.append(found.get("accuracy", np.nan))
                layers[col].append(found.get("layer", ""))
                continue
            key = {"tivit cv": "cv_layer", "tivit last": "last_layer", "tivit oracle": "oracle_layer"}[col]
            row.append(t["accuracy"][str(t[key])])
            layers[col].append(t[key])
        row += [base.get(b, np.nan) for b in run.baselines]
        rows.append(row)
    values = np.array(rows, dtype=float).reshape(len(names), len(columns))
    refs = reference_accuracies()
    for label, table in refs.items():
        col = np.array([table.get(n, np.nan) for n in names], dtype=float)
        if np.isfinite(col).any():
            columns.append(label)
            values = np.column_stack([values, col])
    return names, columns, values, layers


def _tivit_columns(run: RunData) -> list[str]:
    return ["tivit cv", "tivit last"] + (["tivit searched"] if run.searched else []) + ["tivit oracle"]


def ranked_columns(run: RunData) -> list[str]:
    """Columns that compete in ranks and the CD diagram: tivit cv, last and searched, and the baselines."""
    return [c for c in _tivit_columns(run) if c != "tivit oracle"] + run.baselines


def mean_ranks(values: np.ndarray) -> np.ndarray:
    """Mean rank of each column over rows (1 = most accurate; ties share the average rank)."""
    from scipy.stats import rankdata

    return np.mean([rankdata(-row) for row in values], axis=0)


def wins_ties_losses(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> tuple[int, int, int]:
    """Datasets where ``a`` beats, ties and loses to ``b`` (pairs with a NaN are skipped)."""
    ok = np.isfinite(a) & np.isfinite(b)
    diff = a[ok] - b[ok]
    return int((diff > tol).sum()), int((np.abs(diff) <= tol).sum()), int((diff < -tol).sum())


# ---------------------------------------------------------------------------------------------
# plots


def _png(fig) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _title_suffix(run: RunData) -> str:
    return " [RANDOM WEIGHTS]" if run.random_weights else ""


def plot_layers(run: RunData, path: str | os.PathLike) -> Path:
    """Test accuracy of every layer: one thin line per dataset, the mean in bold, baseline means dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    curves = {}
    for r in run.records:
        t = r["tivit"]
        ks = [int(k) for k in t["layers"]]
        acc = [t["accuracy"][str(k)] for k in ks]
        curves[r["dataset"]] = dict(zip(ks, acc))
        ax.plot(ks, acc, color="0.75", linewidth=0.8)
    all_layers = sorted({k for c in curves.values() for k in c})
    mean = [np.mean([c[k] for c in curves.values() if k in c]) for k in all_layers]
    ax.plot(all_layers, mean, color="C0", linewidth=2.5, marker="o", label=f"{run.model}: mean over datasets")
    for i, b in enumerate(run.baselines):
        accs = [x["accuracy"] for r in run.records for x in r.get("baselines", [])
                if x["model"] == b and x.get("accuracy") is not None]
        if accs:
            ax.axhline(np.mean(accs), color=f"C{i + 1}", linestyle="--", label=f"{b}: mean")
    ax.set_xlabel("layer (k = output of block k)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Test accuracy by layer, {len(run.records)} datasets{_title_suffix(run)}",
                 color="red" if run.random_weights else "black")
    ax.set_xticks(all_layers)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return atomic_write_bytes(path, _png(fig))


def plot_cd(run: RunData, path: str | os.PathLike) -> Path | None:
    """Critical-difference diagram (aeon) over the ranked tivit summaries and the baselines.

    Returns None (and writes nothing) when fewer than two datasets have all of them, or fewer than
    three columns compete (aeon's diagram starts from a Friedman test, which needs three; a run
    without baselines or search ranks only ``cv`` and ``last``).
    """
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from aeon.visualisation import plot_critical_difference

    names, columns, values, _ = accuracy_table(run)
    keep = ranked_columns(run)
    scores = values[:, [columns.index(c) for c in keep]]
    scores = scores[np.isfinite(scores).all(axis=1)]
    if scores.shape[0] < 2 or scores.shape[1] < 3:
        return None
    labels = [run.model + c[len("tivit"):] if c.startswith("tivit ") else c for c in keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about exact p-values on few datasets
        fig, ax = plot_critical_difference(scores, labels)
    fig.suptitle(f"Critical difference, {scores.shape[0]} datasets (Wilcoxon-Holm, alpha 0.1)"
                 f"{_title_suffix(run)}", color="red" if run.random_weights else "black", fontsize=10)
    return atomic_write_bytes(path, _png(fig))


# ---------------------------------------------------------------------------------------------
# documents: one list of blocks, rendered as Markdown and as HTML


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if not np.isfinite(value) else f"{value:.4f}"
    return str(value)


def _args(params: dict | None) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else ""


def _blocks(run: RunData, layers_png: str, cd_png: str | None) -> list[tuple[str, Any]]:
    names, columns, values, layers = accuracy_table(run)
    header = run.header
    cfg, info = header.get("config", {}), header.get("encoder_info", {})
    # the datasets' own archives (a run may name datasets of both); the run's --archive otherwise
    archives = sorted({str(r.get("archive") or header.get("archive", "ucr")).upper() for r in run.records})
    archive = " and ".join(archives) or str(header.get("archive", "ucr")).upper()
    planned = [str(d) for d in header.get("datasets", [])]
    pending = [d for d in planned if d not in names and d not in run.failed]
    count = f"{len(names)} of {len(planned)}" if pending else str(len(names))
    blocks: list[tuple[str, Any]] = [("h1", f"tivit benchmark: {run.model} on {count} {archive} datasets")]
    if run.random_weights:
        blocks.append(("banner", RANDOM_BANNER.format(weights=header.get("weights", "random"))))
    blocks.append(("p", (
        f"Preset `{cfg.get('preset', 'default')}`. "
        f"Encoder `{cfg.get('encoder')}`{_args(cfg.get('encoder_args'))} ({header.get('weights')}), "
        f"{info.get('input_size', '?')} px input, {info.get('precision', '?')} on {info.get('device', '?')}, "
        f"renderer `{cfg.get('renderer')}`"
        f"{_args(cfg.get('renderer_params'))}, "
        f"pool `{cfg.get('pool')}`, head `{cfg.get('head')}` (C={cfg.get('C')}), layers `{cfg.get('layers')}`, "
        f"official train/test splits. `cv` = layer chosen by stratified cross-validation on TRAIN only "
        f"(the honest number); `last` = deepest layer; "
        + (f"`searched` = layer and C chosen together by a {cfg.get('search_trials')}-trial Optuna search "
           "scored by CV on TRAIN only; " if run.searched else "")
        + f"`oracle` = best layer on TEST at the run's C (optimistic, not ranked; not a bound for `searched`, "
        "which also tunes C). "
        f"Unequal lengths: `{cfg.get('unequal_length')}`; NaN inside a series: `{cfg.get('missing')}`; "
        f"baselines see NaN interpolated and unequal lengths resampled to the longest. Seed {cfg.get('seed')}."
    )))
    splits = [r.get("tivit", {}).get("fit_split") for r in run.records]
    if any(splits):  # the paper preset's 80 % fit split: drawn as the published run draws it, or not
        published = [r["dataset"] for r, s in zip(run.records, splits) if s and s.startswith("the published")]
        own = [r["dataset"] for r, s in zip(run.records, splits) if s and not s.startswith("the published")]
        blocks.append(("p", (
            f"Heads fitted on the paper's 80 % split, drawn from the published run's NumPy stream for "
            f"{len(published)} of {len(published) + len(own)} datasets (so on the published subsets when the seed "
            "is the published command's, 2025)"
            + (f"; from a stream of their own for {', '.join(own)} (an earlier dataset of the published order "
               "was not in the data folder, or the archive is not UCR)" if own else "") + "."
        )))
    if pending:  # an interrupted run, or one still going
        blocks.append(("p", f"Partial run: {len(names)} of {len(planned)} datasets finished; not run yet: "
                            f"{', '.join(pending)}."))
    if run.failed:
        blocks.append(("p", "Failed datasets: " + "; ".join(f"{n} ({e})" for n, e in run.failed.items())))
    broken = [f"{r['dataset']}: {b['model']} ({b.get('error', '')})" for r in run.records
              for b in r.get("baselines", []) if b.get("accuracy") is None]
    if broken:
        blocks.append(("p", "Failed baselines (their cells stay empty): " + "; ".join(broken)))

    ranked = ranked_columns(run)
    rank_vals = values[:, [columns.index(c) for c in ranked]]
    complete = np.isfinite(rank_vals).all(axis=1)
    ranks = mean_ranks(rank_vals[complete]) if complete.any() else np.full(len(ranked), np.nan)
    summary_rows = []
    for j, col in enumerate(columns):
        col_vals = values[:, j]
        rank = ranks[ranked.index(col)] if col in ranked else float("nan")
        summary_rows.append([col, _fmt(float(np.nanmean(col_vals)) if np.isfinite(col_vals).any() else np.nan),
                             _fmt(float(rank)) if np.isfinite(rank) else "", str(int(np.isfinite(col_vals).sum()))])
    blocks += [("h2", "Summary"),
               ("table", (["model", "mean accuracy", f"mean rank ({int(complete.sum())} datasets)", "datasets"],
                          summary_rows)),
               ("p", f"Mean accuracy over each model's own datasets (the `datasets` column); mean ranks over the "
                     f"{int(complete.sum())} datasets where every ranked model has a number; "
                     "published references (`... published`: MiniRocket, mean of 30 resamples, Dempster et al. 2021) "
                     "are means over other splits and are not ranked.")]
    if run.baselines:
        wtl_rows = []
        for col in _tivit_columns(run):
            a = values[:, columns.index(col)]
            wtl_rows.append([col] + ["%d / %d / %d" % wins_ties_losses(a, values[:, columns.index(b)])
                                     for b in run.baselines])
        blocks += [("h2", "Wins / ties / losses against each baseline"),
                   ("table", (["tivit"] + [f"vs {b}" for b in run.baselines], wtl_rows))]
    table_rows = []
    for i, n in enumerate(names):
        row = [n]
        for j, col in enumerate(columns):
            cell = _fmt(values[i, j])
            if col in layers and cell:
                cell += f" (L{layers[col][i]})"
            row.append(cell)
        table_rows.append(row)
    table_rows.append([_MEAN_LABEL] + _mean_cells(values))
    blocks += [("h2", "Accuracy per dataset"), ("p", "(Lk) = the layer used."),
               ("table", (["dataset"] + columns, table_rows))]
    blocks += [("h2", "Accuracy by layer"), ("img", (layers_png, "test accuracy by layer"))]
    blocks.append(("h2", "Critical difference"))
    if cd_png:
        blocks.append(("img", (cd_png, "critical difference diagram")))
    else:
        blocks.append(("p", "Not drawn: it needs at least two datasets with every ranked model, and at least "
                            "three ranked models (a run without baselines or search ranks only cv and last)."))
    timing_rows = []
    for r in run.records:
        t = r["tivit"]
        base = {b["model"]: b for b in r.get("baselines", [])}
        timing_rows.append([r["dataset"], str(r["n_train"]), str(r["n_test"]), str(r.get("length_max", "")),
                            _fmt(t["embed_train_seconds"] + t["embed_test_seconds"]),
                            _fmt(sum(t["fit_seconds"].values())), _fmt(t["cv_seconds"])]
                           + ([_fmt(t.get("search_seconds", ""))] if run.searched else [])
                           + [_fmt(base[b]["fit_seconds"] + base[b]["predict_seconds"])
                              if base.get(b, {}).get("fit_seconds") is not None else "" for b in run.baselines])
    blocks += [("h2", "Time (seconds)"),
               ("table", (["dataset", "train", "test", "length", "embed (train+test)", "heads fit (all layers)",
                           "layer CV"] + (["layer + C search"] if run.searched else [])
                          + [f"{b} fit+predict" for b in run.baselines], timing_rows))]
    means = archive_means()
    blocks += [("h2", "Published archive means (other dataset lists and splits: context, not comparison)"),
               ("table", (["archive", "datasets", "model", "accuracy", "protocol", "source"],
                          [[m["archive"], m["n_datasets"], m["model"], m["accuracy"], m["protocol"], m["source"]]
                           for m in means]))]
    shown = {k: header[k] for k in ("config", "archive", "datasets", "encoder", "encoder_info", "weights",
                                     "random_weights", "seeds", "versions", "machine", "started", "batch_size")
             if k in header}
    blocks += [("h2", "Run configuration"), ("pre", json.dumps(shown, indent=2, sort_keys=True, default=str))]
    if run.random_weights:
        blocks.append(("banner", RANDOM_BANNER.format(weights=header.get("weights", "random"))))
    return blocks


def _markdown(blocks: Sequence[tuple[str, Any]]) -> str:
    out: list[str] = []
    for kind, body in blocks:
        if kind == "h1":
            out.append(f"# {body}")
        elif kind == "h2":
            out.append(f"## {body}")
        elif kind == "banner":
            out.append(f"> **{body.split(':', 1)[0]}**:{body.split(':', 1)[1]}")
        elif kind == "p":
            out.append(body)
        elif kind == "table":
            head, rows = body
            right = [all(_numeric(r[j]) for r in rows if r[j]) and j > 0 for j in range(len(head))]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
            out += ["| " + " | ".join(_md_cell(str(c)) for c in row) + " |" for row in rows]
        elif kind == "img":
            out.append(f"![{body[1]}]({body[0]})")
        elif kind == "pre":
            out.append(f"```json\n{body}\n```")
        out.append("")
    return "\n".join(out)


_MEAN_LABEL = "**mean**"  # the one table cell that carries markup; every other cell is data


def _md_cell(text: str) -> str:
    """A table cell as Markdown text: a dataset named ``Odd<b>`` or ``Star**x**`` is shown as named."""
    if text == _MEAN_LABEL:
        return text
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return text


def _html_cell(text: str) -> str:
    return "<b>mean</b>" if text == _MEAN_LABEL else html.escape(text)


def _numeric(text: str) -> bool:
    try:
        float(str(text).split(" ")[0].strip("*"))
        return True
    except ValueError:
        return False


def _inline(text: str) -> str:
    """Escape, then turn `code` and **bold** into HTML."""
    import re

    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _html(blocks: Sequence[tuple[str, Any]], title: str) -> str:
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}"
        ".banner{background:#b00;color:#fff;font-weight:bold;padding:.7em 1em;margin:1em 0}"
        "pre{background:#f4f4f4;padding:1em;overflow:auto}</style></head><body>",
    ]
    for kind, body in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{_inline(body)}</{kind}>")
        elif kind == "banner":
            parts.append(f"<div class='banner'>{_inline(body)}</div>")
        elif kind == "p":
            parts.append(f"<p>{_inline(body)}</p>")
        elif kind == "table":
            head, rows = body
            parts.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(
                    f"<td class='{'n' if j and _numeric(c) else ''}'>{_html_cell(str(c))}</td>" for j, c in enumerate(row)
                ) + "</tr>")
            parts.append("</table>")
        elif kind == "img":
            parts.append(f"<p><img src='{html.escape(body[0])}' alt='{html.escape(body[1])}'></p>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(body)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(out_dir: str | os.PathLike, report_dir: str | os.PathLike | None = None) -> ReportFiles:
    """Write ``report.md``, ``report.html``, ``accuracy_by_layer.png`` and ``critical_difference.png``.

    Args:
        out_dir: a ``tivit bench`` output folder.
        report_dir: where to write (default: ``out_dir/report``).
    """
    run = load_run(out_dir)
    report_dir = Path(report_dir) if report_dir is not None else Path(out_dir) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(report_dir)  # of a report killed while it was written
    layers_png = plot_layers(run, report_dir / "accuracy_by_layer.png")
    cd_png = plot_cd(run, report_dir / "critical_difference.png")
    if cd_png is None:
        (report_dir / "critical_difference.png").unlink(missing_ok=True)
    blocks = _blocks(run, layers_png.name, cd_png.name if cd_png else None)
    md = atomic_write_text(report_dir / "report.md", _markdown(blocks))
    page = atomic_write_text(report_dir / "report.html", _html(blocks, blocks[0][1]))
    return ReportFiles(md, page, layers_png, cd_png)


def summary_rows(run: RunData) -> tuple[list[str], list[list[str]]]:
    """The per-dataset table (header, rows) as text, with a mean row: what ``tivit bench`` prints at the end."""
    names, columns, values, layers = accuracy_table(run)
    rows = []
    for i, n in enumerate(names):
        rows.append([n] + [_fmt(values[i, j]) + (f" (L{layers[c][i]})" if c in layers and np.isfinite(values[i, j])
                                                 else "") for j, c in enumerate(columns)])
    rows.append(["mean"] + _mean_cells(values))
    return ["dataset"] + columns, rows


def _mean_cells(values: np.ndarray) -> list[str]:
    """Column means of a (datasets, columns) table; a mean over fewer datasets than the table's says
    over how many (``0.7598 (2 of 3)``), so means over different sets are not read side by side."""
    cells = []
    for col in values.T:
        have = int(np.isfinite(col).sum())
        mean = _fmt(float(np.nanmean(col))) if have else ""
        cells.append(mean + (f" ({have} of {len(col)})" if 0 < have < len(col) else ""))
    return cells

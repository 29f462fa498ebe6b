"""The ``tivit`` command line. Thin: every command calls a library function.

Heavy modules (torch, timm, lightning, optuna, sktime) are imported inside the commands so that
``tivit --help`` answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Time series classification with frozen vision transformers (TiViT).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDirOption = typer.Option(
    None, "--data-dir", help="A folder of UCR/UEA datasets (default: $TIVIT_DATA, then bundled sets)."
)


def _version(value: bool) -> None:
    if value:
        from tivit import __version__

        typer.echo(f"tivit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Time series classification with frozen vision transformers (TiViT)."""


def _fail(message: str) -> None:
    """Print a user-facing error and exit with status 2 (no traceback for errors the user can fix)."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def datasets(
    data_dir: Optional[Path] = DataDirOption,
    archive: Optional[str] = typer.Option(None, help="Only this archive: ucr or uea."),
) -> None:
    """List the datasets that can be loaded, and where each comes from."""
    from rich.console import Console
    from rich.table import Table

    from tivit.data import list_datasets

    infos = list_datasets(data_dir)
    if archive:
        infos = [i for i in infos if i.archive == archive.lower()]
    table = Table(title=f"{len(infos)} datasets")
    for col in ("name", "archive", "source", "path"):
        table.add_column(col)
    for info in infos:
        table.add_row(info.name, info.archive, info.source, str(info.path))
    Console().print(table)


# --- commands added by later modules (encoders, render, embed, bench, report, search) go below ---


@app.command()
def encoders() -> None:
    """List the encoder table: friendly names, timm models, depth, width, input, normalisation."""
    from rich.console import Console
    from rich.table import Table

    from tivit.encoders import describe_encoders

    rows = describe_encoders()
    table = Table(title=f"{len(rows)} encoders (any timm ViT name also works; layers 0..depth, 0 = token embedding)")
    for col in rows[0]:
        table.add_column(col, justify="right" if col in ("blocks", "width", "prefix", "px") else "left",
                         no_wrap=col not in ("timm model", "license"), overflow="fold",
                         min_width=22 if col == "timm model" else None)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def _parse_encoder_args(text: Optional[str]) -> dict:
    """``"img_size=64,depth=4"`` -> ``{"img_size": 64, "depth": 4}`` (values read as Python literals)."""
    import ast

    args: dict = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            _fail(f"--encoder-args must look like key=value,key=value; got {part.strip()!r}")
        key, value = (s.strip() for s in part.split("=", 1))
        try:
            args[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            args[key] = value
    return args


@app.command()
def embed(
    dataset: str = typer.Option(..., "--dataset", help="Dataset name (see `tivit datasets`)."),
    out: Path = typer.Option(..., "--out", help="Output .npz: values (n, layers, dim), layers, config, y, split."),
    encoder: str = typer.Option("clip-h14", help="Encoder name (see `tivit encoders`) or a timm ViT name."),
    encoder_args: Optional[str] = typer.Option(None, help="Extra timm arguments, e.g. img_size=64,depth=4."),
    weights: str = typer.Option("pretrained", help="pretrained, random, or a path to a weights file."),
    seed: int = typer.Option(0, help="Seed of random weights."),
    renderer: str = typer.Option("tivit", help="Rendering method."),
    layers: str = typer.Option("all", help="all, middle, 14, 1,4,8 or 0-12 (k = output of block k)."),
    pool: str = typer.Option("mean", help="mean, mean_patch, cls or mean+cls."),
    norm: bool = typer.Option(False, "--norm/--no-norm", help="Apply the encoder's final norm before pooling."),
    normalize: bool = typer.Option(False, "--normalize/--no-normalize", help="L2-normalise each sample per layer."),
    split: str = typer.Option("all", help="train, test or all (train then test)."),
    batch_size: str = typer.Option("auto", help="Images per forward pass, or auto."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda if available)."),
    devices: int = typer.Option(1, help="Devices (or CPU processes) for DDP extraction."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the encoder (pays off on long runs)."),
    data_dir: Optional[Path] = DataDirOption,
) -> None:
    """Embed a dataset with a frozen encoder and write the per-layer embeddings (atomically)."""
    import numpy as np
    from rich.console import Console

    from tivit.data import DatasetError, load_dataset
    from tivit.embed import extract
    from tivit.encoders import EncoderError, EncoderWeightsError, load_encoder

    if split not in ("train", "test", "all"):
        _fail(f"--split must be train, test or all, got {split!r}")
    try:
        ds = load_dataset(dataset, data_dir)
        parts = {"train": [(ds.X_train, ds.y_train)], "test": [(ds.X_test, ds.y_test)]}
        chosen = parts["train"] + parts["test"] if split == "all" else parts[split]
        X = np.concatenate([x for x, _ in chosen]) if len(chosen) > 1 else chosen[0][0]
        y = np.concatenate([lab for _, lab in chosen]).astype(str)
        which = np.concatenate([np.full(len(lab), name) for name, (_, lab) in zip(
            ["train", "test"] if split == "all" else [split], chosen)])
        bs = batch_size if batch_size == "auto" else int(batch_size)
        enc = load_encoder(encoder, weights=weights, device=device, seed=seed, compile=compile,
                           **_parse_encoder_args(encoder_args))
        emb = extract(
            X, renderer, enc, layers=layers, pool=pool, norm=norm, normalize=normalize, batch_size=bs,
            devices=devices, cache_dir=False if no_cache else None,
        )
    except (DatasetError, EncoderError, EncoderWeightsError, ValueError, TypeError, KeyError) as err:
        _fail(str(err))
        return
    emb.save(out, y=y, split=which)
    label = " [bold red]RANDOM WEIGHTS[/]" if emb.random_weights else ""
    Console().print(
        f"{dataset}: {emb.n} series x layers {list(emb.layers)} x dim {emb.dim} "
        f"({emb.config['encoder']['name']}, {emb.config['weights']}){label} -> {out}",
        highlight=False,
    )


def _csv(text: Optional[str], cast=str) -> tuple:
    """``"a,b"`` -> ``(cast(a), cast(b))``; empty -> ``()``."""
    return tuple(cast(part.strip()) for part in (text or "").split(",") if part.strip())


def _number_or_text(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


@app.command()
def search(
    dataset: str = typer.Option(..., "--dataset", help="Dataset name (see `tivit datasets`)."),
    out: Path = typer.Option(..., "--out", help="Result JSON (written atomically)."),
    encoder: str = typer.Option("clip-h14", help="Encoder name (see `tivit encoders`) or a timm ViT name."),
    encoder_args: Optional[str] = typer.Option(None, help="Extra timm arguments, e.g. img_size=64,depth=4."),
    weights: str = typer.Option("pretrained", help="pretrained, random, or a path to a weights file."),
    trials: int = typer.Option(50, "--trials", help="Finished trials the study should hold (resume runs the rest)."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage, e.g. sqlite:///study.db (default: memory)."),
    study_name: Optional[str] = typer.Option(None, help="Study name (default: tivit-<dataset>-<encoder>-seed<seed>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the existing study of that name."),
    seed: int = typer.Option(0, help="Seed of sampler, folds, heads and random weights."),
    layers: str = typer.Option("all", help="Layers to search: all, 0-12, 4,8,12 ..."),
    pools: str = typer.Option("mean", help="Pools to search, comma separated (mean, mean_patch, cls, mean+cls)."),
    heads: str = typer.Option("linear", help="Heads to search: linear, mlp, layer_mix (comma separated)."),
    c_range: str = typer.Option("1e-3,1e2", "--C", help="Log-uniform bounds of C: low,high."),
    renderers_: str = typer.Option("tivit", "--renderers", help="Rendering methods to search (comma separated)."),
    segment: Optional[str] = typer.Option(None, help="tivit segment rules: sqrt, 0.5sqrt, 2sqrt, 16 (comma separated)."),
    stride: Optional[str] = typer.Option(None, help="tivit stride fractions, e.g. 0.1,0.5,1.0."),
    resize: Optional[str] = typer.Option(None, help="Resize modes for every searched renderer: nearest,box."),
    folds: int = typer.Option(5, help="CV folds on train (capped by the smallest class; repeated for tiny sets)."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Fold-level median pruning."),
    normalize: bool = typer.Option(False, "--normalize/--no-normalize", help="L2-normalise embeddings per sample."),
    test: bool = typer.Option(True, "--test/--no-test", help="Score the best configuration on test afterwards."),
    plots: Optional[Path] = typer.Option(None, help="Folder for the PNG plots (default: <out stem>_plots)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Do not draw plots."),
    batch_size: str = typer.Option("auto", help="Images per forward pass, or auto."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda if available)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    data_dir: Optional[Path] = DataDirOption,
) -> None:
    """Search layer, pool, renderer and head by cross-validation on TRAIN; score the best once on TEST."""
    from rich.console import Console

    from tivit.data import DatasetError
    from tivit.encoders import EncoderError, EncoderWeightsError
    from tivit.search import SearchError, SearchSpace
    from tivit.search import search as run_search

    try:
        bounds = _csv(c_range, float)
        if len(bounds) != 2:
            _fail(f"--C must be low,high, got {c_range!r}")
        methods = _csv(renderers_)
        params: dict = {m: {} for m in methods}
        if segment or stride:
            if "tivit" not in methods:
                _fail("--segment and --stride apply to the tivit renderer; add it to --renderers")
            if segment:
                params["tivit"]["segment"] = [_number_or_text(v) for v in _csv(segment)]
            if stride:
                params["tivit"]["stride"] = list(_csv(stride, float))
        if resize:
            for m in methods:
                params[m]["resize"] = list(_csv(resize))
        space = SearchSpace.from_dict({
            "layers": layers, "pools": _csv(pools), "heads": _csv(heads), "C": bounds, "renderers": methods,
            "renderer_params": {m: p for m, p in params.items() if p},
        })
        result = run_search(
            dataset, encoder, weights=weights, encoder_args=_parse_encoder_args(encoder_args), space=space,
            n_trials=trials, storage=storage, study_name=study_name, resume=resume, seed=seed, n_splits=folds,
            prune=prune, normalize=normalize, score_test=test, data_dir=data_dir, device=device,
            batch_size=batch_size if batch_size == "auto" else int(batch_size),
            cache_dir=False if no_cache else None,
            plots_dir=None if no_plots else (plots or out.parent / f"{out.stem}_plots"),
        )
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "interrupted: finished trials are kept" + (f" in {storage}; rerun with --resume to continue" if storage
                                                       else " only with --storage; nothing was saved"))
        raise typer.Exit(code=130)
    except (SearchError, DatasetError, EncoderError, EncoderWeightsError, ValueError, TypeError, KeyError) as err:
        _fail(str(err))
        return
    result.save(out)
    Console().print(result.summary(), highlight=False, soft_wrap=True)
    if result.random_weights:
        Console().print("[bold red]RANDOM WEIGHTS[/]: these numbers say nothing about the pretrained model")
    Console().print(f"-> {out}" + (f" and plots in {Path(result.plots[0]).parent}" if result.plots else ""))


def _index_list(text: str) -> list[int]:
    """``"0,1,5-7"`` -> ``[0, 1, 5, 6, 7]``."""
    rows: list[int] = []
    for part in _csv(text):
        first, _, last = part.partition("-")
        try:
            rows.extend(range(int(first), int(last or first) + 1))
        except ValueError:
            _fail(f"--index takes numbers and ranges such as 0,1,5-7; got {part!r}")
    return rows


@app.command()
def render(
    dataset: str = typer.Option(..., "--dataset", help="Dataset name (see `tivit datasets`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the PNG files (created if missing)."),
    method: str = typer.Option("tivit", help="tivit, gasf, gadf, mtf, recurrence or lineplot."),
    index: str = typer.Option("0", "--index", help="Series to draw: 0,1,2 or 0-4 (rows of --split)."),
    size: int = typer.Option(224, help="Image side in pixels."),
    split: str = typer.Option("train", help="train or test."),
    preset: Optional[str] = typer.Option(None, help="Renderer preset (tivit: paper or default)."),
    param: Optional[list[str]] = typer.Option(None, "--param", help="Renderer parameter key=value (repeatable)."),
    data_dir: Optional[Path] = DataDirOption,
) -> None:
    """Write PNGs of chosen series as the encoder sees them (one image per series and channel)."""
    import io

    import numpy as np
    from PIL import Image
    from rich.console import Console

    import renderers
    from tivit._atomic import atomic_write_bytes
    from tivit.data import DatasetError, interpolate_missing, load_dataset

    if split not in ("train", "test"):
        _fail(f"--split must be train or test, got {split!r}")
    params = {}
    for item in param or []:
        if "=" not in item:
            _fail(f"--param must look like key=value, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        params[key] = None if value.lower() == "none" else _number_or_text(value)
    rows = _index_list(index)
    try:
        cfg = renderers.make_config(method, preset, **params)
        ds = load_dataset(dataset, data_dir)
        X, y = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)
        bad = [i for i in rows if not 0 <= i < len(X)]
        if bad:
            _fail(f"--index {bad} out of range: {ds.name} {split} has {len(X)} series (0..{len(X) - 1})")
        chosen = interpolate_missing(X[rows])
        n, c, t = chosen.shape
        images = renderers.render(chosen.reshape(n * c, t), cfg, size=size, backend="numpy")
    except (DatasetError, ValueError, TypeError) as err:
        _fail(str(err))
        return
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    for k, image in enumerate(images[:, 0]):
        row, channel = rows[k // c], k % c
        name = f"{ds.name}_{split}_{row}" + (f"_c{channel}" if c > 1 else "") + f"_{cfg.method}.png"
        buffer = io.BytesIO()
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, format="PNG")
        atomic_write_bytes(out / name, buffer.getvalue())
        console.print(f"{out / name}  (label {y[row]})", highlight=False)


def _bench_line(record: dict, index: int, total: int, eta: float | None) -> str:
    """One line per finished dataset: the three summaries, the baselines, time and ETA."""
    head = f"[{index}/{total}] {record['dataset']}"
    if record.get("status") != "done":
        return f"{head}  [bold red]FAILED[/] {record.get('error', '')}"
    t = record["tivit"]
    acc = t["accuracy"]
    parts = [f"cv {acc[str(t['cv_layer'])]:.3f} (L{t['cv_layer']})", f"last {acc[str(t['last_layer'])]:.3f}"]
    if t.get("searched"):
        s = t["searched"]
        parts.append(f"searched {s['accuracy']:.3f} (L{s['layer']}" + (f", C={s['C']:.3g})" if s.get("C") else ")"))
    parts.append(f"oracle {acc[str(t['oracle_layer'])]:.3f} (L{t['oracle_layer']})")
    parts += [f"{b['model']} {b['accuracy']:.3f}" for b in record.get("baselines", [])]
    rw = " [red]RANDOM WEIGHTS[/]" if t.get("random_weights") else ""
    left = f"  ETA {eta / 60:.1f} min" if eta else ""
    return f"{head}  {' | '.join(parts)}{rw}  ({record['seconds']:.1f} s){left}"


@app.command()
def bench(
    datasets_: str = typer.Option("all", "--datasets", help="Dataset names (GunPoint,Coffee) or all (of --archive)."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.csv, summary.csv, runs.jsonl, config.json."),
    archive: str = typer.Option("ucr", help="ucr or uea: which datasets 'all' means."),
    preset: str = typer.Option(
        "default", help="Recipe: default, or paper (published: paper renderer, zero padding, L2-normalised "
        "embeddings, heads fitted on a random 80% of train). Options given below override it."
    ),
    encoder: Optional[str] = typer.Option(
        None, help="Encoder name (`tivit encoders`) or a timm ViT name (preset: clip-h14)."
    ),
    encoder_args: Optional[str] = typer.Option(None, help="Extra timm arguments, e.g. img_size=64,depth=4."),
    weights: str = typer.Option("pretrained", help="pretrained, random, or a path to a weights file."),
    renderer: Optional[str] = typer.Option(None, help="Rendering method (preset: tivit)."),
    renderer_args: Optional[str] = typer.Option(None, help="Renderer parameters, e.g. stride=0.5."),
    layers: str = typer.Option("all", help="Layers to evaluate: all, 0-12, 4,8,12 (k = output of block k)."),
    pool: Optional[str] = typer.Option(None, help="mean, mean_patch, cls or mean+cls (preset: mean)."),
    head: Optional[str] = typer.Option(None, help="Head fitted per layer: linear or mlp (preset: linear)."),
    c: Optional[float] = typer.Option(None, "--C", help="Inverse L2 strength of the head (preset: 1)."),
    normalize: Optional[bool] = typer.Option(
        None, "--normalize/--no-normalize", help="L2-normalise each sample's embedding (preset: paper yes)."
    ),
    unequal_length: Optional[str] = typer.Option(
        None, help="own-length, zeros or resample (preset: default own-length, paper zeros)."
    ),
    missing: Optional[str] = typer.Option(
        None, help="NaN inside a series: interpolate or error (preset: interpolate)."
    ),
    baselines: str = typer.Option("minirocket", help="Baselines: minirocket, 1nn-dtw (comma separated) or none."),
    search_trials: int = typer.Option(
        20, "--search-trials", help="Trials of the layer + C search (train CV) behind the 'searched' summary; 0: off."
    ),
    seed: int = typer.Option(0, help="Seed of random weights, CV folds, heads, the search and baselines."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out; finished datasets are kept."),
    batch_size: str = typer.Option("auto", help="Images per forward pass, or auto."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda if available)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write OUT/report (Markdown, HTML, PNGs) at the end."),
    data_dir: Optional[Path] = DataDirOption,
) -> None:
    """Benchmark on the official splits: every layer's test accuracy, summaries last/cv/searched/oracle, baselines."""
    from rich.console import Console
    from rich.table import Table

    from tivit.bench import BenchConfig, BenchError, run_bench
    from tivit.data import DatasetError
    from tivit.encoders import EncoderError, EncoderWeightsError
    from tivit.report import load_run, summary_rows, write_report

    console = Console()
    try:
        config = BenchConfig(
            preset=preset, encoder=encoder, weights=weights,
            encoder_args=tuple(_parse_encoder_args(encoder_args).items()),
            renderer=renderer, renderer_params=tuple(_parse_encoder_args(renderer_args).items()), layers=layers,
            pool=pool, head=head, C=c, normalize=normalize, unequal_length=unequal_length, missing=missing,
            baselines=baselines, search_trials=search_trials, seed=seed,
        )
        run = run_bench(
            datasets_, out, config, archive=archive, data_dir=data_dir, resume=resume,
            batch_size=batch_size if batch_size == "auto" else int(batch_size), device=device,
            cache_dir=False if no_cache else None,
            on_dataset=lambda rec, i, n, eta: console.print(_bench_line(rec, i, n, eta), highlight=False),
        )
    except KeyboardInterrupt:
        Console(stderr=True).print(f"interrupted: finished datasets are kept in {out}; rerun with --resume")
        raise typer.Exit(code=130)
    except (BenchError, DatasetError, EncoderError, EncoderWeightsError, ValueError, TypeError) as err:
        _fail(str(err))
        return
    if run.skipped:
        console.print(f"resumed: {len(run.skipped)} finished datasets kept ({', '.join(run.skipped)})", highlight=False)
    if run.records:
        header, rows = summary_rows(load_run(out))
        title = f"{len(run.records)} datasets" + (" [bold red]RANDOM WEIGHTS[/]" if run.random_weights else "")
        table = Table(title=title)
        for col in header:
            table.add_column(col, justify="left" if col == "dataset" else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if report:
            files = write_report(out)
            console.print(f"report: {files.markdown} and {files.html.name}", highlight=False)
    console.print(f"-> {run.results_csv}, {run.summary_csv}", highlight=False)
    if run.failed:
        _fail(f"{len(run.failed)} dataset(s) failed: {', '.join(run.failed)} (details in {out / 'runs.jsonl'}); "
              "fix the cause and rerun with --resume")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A `tivit bench` output folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: RUN_DIR/report)."),
) -> None:
    """Write the Markdown and HTML report of a bench run, with the layer curves and the CD diagram (PNG)."""
    from rich.console import Console

    from tivit.report import ReportError, write_report

    try:
        files = write_report(run_dir, out)
    except ReportError as err:
        _fail(str(err))
        return
    pngs = [str(p) for p in (files.layers_png, files.cd_png) if p is not None]
    Console().print(f"{files.markdown}\n{files.html}\n" + "\n".join(pngs), highlight=False)


def main() -> None:
    """Entry point of the ``tivit`` script."""
    app()


if __name__ == "__main__":
    main()

"""The ``tivit`` command line. Thin: every command calls a library function.

Heavy modules (torch, timm, lightning, optuna, sktime) are imported inside the commands so that
``tivit --help`` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

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
ThreadsOption = typer.Option(
    None, "--threads", min=1,
    help="CPU threads for torch and the BLAS (default: torch's, all cores); lower it when jobs share a machine.",
)

_PRECISION_HELP = ("Encoder precision: auto (bf16 autocast on CUDA, fp32 on CPU{paper}), fp32, bf16 or fp16. On a "
                   "CPU with bf16 units (AVX512-BF16/AMX) bf16 runs about 3x faster than fp32; embeddings move by "
                   "about 0.5%.")
PrecisionOption = typer.Option("auto", "--precision",
                               help=_PRECISION_HELP.format(paper="; fp32 everywhere under --preset paper"))
SearchPrecisionOption = typer.Option("auto", "--precision", help=_PRECISION_HELP.format(paper=""))


def _set_threads(threads: Optional[int]) -> None:
    """``--threads``: two jobs that each take every core slow each other down several times over."""
    if threads is not None:
        from tivit._threads import limit_threads

        limit_threads(threads)


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


# --- output: user text (paths, dataset names, hints such as tivit[data]) is never rich markup ---


def _fail(message: str) -> NoReturn:
    """Print a user-facing error and exit with status 2 (no traceback for errors the user can fix)."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _say(text: str, *, err: bool = False) -> None:
    """Print plain text: a ``[`` in a path or a name is printed, not read as markup."""
    typer.echo(text, err=err)


def _console():
    """A rich console; into a pipe or a file (no terminal, so no width) lines are printed whole,
    not folded at rich's default 80 columns, unless ``COLUMNS`` asks for a width."""
    from rich.console import Console

    console = Console()
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(width=max(console.width, 200))


def _red(label: str) -> str:
    """A bold red label, to join only to escaped text."""
    return f" [bold red]{label}[/]"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the CLI: one ``warning: ...`` line on stderr, no source line."""
    try:
        print("warning: " + " ".join(str(message).split()), file=file or sys.stderr)
    except OSError:  # a closed stderr must not turn a warning into a crash
        pass


# --- option values ------------------------------------------------------------------------------

_WORDS = {"true": True, "yes": True, "false": False, "no": False, "none": None}


def _value(text: str) -> Any:
    """A typed value: true/false/yes/no -> bool, none -> None, numbers, Python literals such as
    ``(32,32)``; anything else stays text (``threshold=point``), since 'false' as text is true."""
    import ast

    text = text.strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _top_level(text: str) -> list[str]:
    """Split at the commas outside brackets and quotes: ``img_size=(32,32),depth=2`` -> 2 parts."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _pair(text: str, option: str) -> tuple[str, Any]:
    """``"stride=0.5"`` -> ``("stride", 0.5)``."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        _fail(f"{option} must look like key=value,key=value; got {text.strip()!r}")
    return key.strip(), _value(value)


def _pairs(text: Optional[str], option: str) -> dict:
    """``"img_size=(32,32),depth=2"`` -> ``{"img_size": (32, 32), "depth": 2}``."""
    return dict(_pair(part, option) for part in _top_level(text or "") if part.strip())


def _csv(text: Optional[str], cast=str) -> tuple:
    """``"a,b"`` -> ``(cast(a), cast(b))``; empty -> ``()``."""
    return tuple(cast(part.strip()) for part in (text or "").split(",") if part.strip())


def _floats(text: Optional[str], option: str) -> tuple[float, ...]:
    """Comma-separated numbers; a bad one is reported with its option, not as a float() error."""
    try:
        return _csv(text, float)
    except ValueError:
        _fail(f"{option} takes comma-separated numbers, got {text!r}")


def _batch_size(text: str) -> int | str:
    """``--batch-size``: ``auto`` or a positive count."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        _fail(f"--batch-size must be a positive integer or auto, got {text!r}")
    return count


def _renderer_config(option: str, build: Callable[[dict], Any], params: dict) -> Any:
    """``build(params)``; when a parameter is bad, the error names the option and that key=value."""
    try:
        return build(params)
    except (ValueError, TypeError) as err:
        if not _builds(build, {}):  # the method or the preset itself, not a parameter
            _fail(str(err))
        bad = [f"{k}={v!r}" for k, v in params.items() if not _builds(build, {k: v})]
        _fail(f"{option} {', '.join(bad) or _show_pairs(params)}: {err}")


def _builds(build: Callable[[dict], Any], params: dict) -> bool:
    """Whether ``build(params)`` succeeds (to find the parameter behind an error)."""
    try:
        build(params)
    except (ValueError, TypeError):
        return False
    return True


def _show_pairs(params: dict) -> str:
    return ",".join(f"{k}={v!r}" for k, v in params.items())


def _preset_renderer(preset: str, renderer: Optional[str], option: str, params: dict) -> Any:
    """The renderer config of a recipe, by the rule ``tivit bench`` and the estimators share."""
    from tivit.presets import renderer_config

    return _renderer_config(option, lambda p: renderer_config(preset, renderer, p), params)


# --- output locations: checked before the work, so a typo costs seconds, not the whole run ------


def _check_writable(path: Path, option: str, *, folder: bool) -> None:
    """Fail now when ``path`` (a file, or a folder when ``folder``) could not be written later."""
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        _fail(f"{option} {path} is a {'folder' if path.is_dir() else 'file'}; give a {kind} path")
    base = path if folder else path.parent
    while not base.exists() and base != base.parent:  # the nearest existing folder will hold the new ones
        base = base.parent
    if not base.is_dir():
        _fail(f"{option} {path}: {base} is a file, so the {kind} cannot be created")
    if not os.access(base, os.W_OK | os.X_OK):
        _fail(f"{option} {path}: {base} is not writable")


def _write_error(path: Path, err: OSError) -> NoReturn:
    _fail(f"cannot write {path}: {err.strerror or err}")


def _is_main_rank() -> bool:
    """False in the extra processes of a multi-device run: DDP re-runs the command in each of
    them, and only global rank 0 should print and write the output."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


# --- commands ----------------------------------------------------------------------------------


def _archive(archive: Optional[str]) -> Optional[str]:
    """``--archive`` checked as ``tivit bench`` checks it."""
    from tivit.bench import ARCHIVES

    if archive is not None and archive.lower() not in ARCHIVES:
        _fail(f"--archive must be one of {', '.join(ARCHIVES)}, got {archive!r}")
    return archive.lower() if archive else None


@app.command()
def datasets(
    data_dir: Optional[Path] = DataDirOption,
    archive: Optional[str] = typer.Option(None, help="Only this archive: ucr or uea."),
) -> None:
    """List the datasets that can be loaded, and where each comes from."""
    from rich.markup import escape
    from rich.table import Table

    from tivit.data import DatasetError, incomplete_datasets, list_datasets

    archive = _archive(archive)
    try:
        infos = list_datasets(data_dir)
    except DatasetError as err:
        _fail(str(err))
    infos = [i for i in infos if archive is None or i.archive == archive]
    table = Table(title=f"{len(infos)} datasets")
    # names never shrink (``tivit datasets | grep Name`` must find them); source and path fold instead
    table.add_column("name", no_wrap=True, min_width=max((len(i.name) for i in infos), default=4))
    table.add_column("archive", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("path", overflow="fold")
    for info in infos:
        table.add_row(*(escape(str(v)) for v in (info.name, info.archive, info.source, info.path)))
    _console().print(table)
    for train in incomplete_datasets(data_dir):
        _console().print(f"[yellow]not loadable:[/] {escape(str(train))} has no TEST file beside it "
                         "(and hides any later copy of that dataset)")


@app.command()
def encoders() -> None:
    """List the encoder table: friendly names, timm models, depth, width, input, normalisation."""
    from rich.table import Table

    from tivit.encoders import describe_encoders

    rows = describe_encoders()
    table = Table(title=f"{len(rows)} encoders (any timm ViT name also works; layer k = output of block k, 0 = the "
                        "token embedding; 'all' = 1..depth)")
    for col in rows[0]:
        table.add_column(col, justify="right" if col in ("blocks", "width", "prefix", "px") else "left",
                         no_wrap=col not in ("timm model", "license"), overflow="fold",
                         min_width=22 if col == "timm model" else None)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    _console().print(table)


RendererArgsOption = typer.Option(None, help="Renderer parameters, e.g. stride=0.5,quantize=false.")


def _embedding_split(ds, split: str):
    """``(X, y, which)`` of ``train``, ``test`` or ``all`` (train then test)."""
    import numpy as np

    names = ["train", "test"] if split == "all" else [split]
    chosen = [(ds.X_train, ds.y_train) if name == "train" else (ds.X_test, ds.y_test) for name in names]
    X = np.concatenate([x for x, _ in chosen]) if len(chosen) > 1 else chosen[0][0]
    y = np.concatenate([lab for _, lab in chosen]).astype(str)
    which = np.concatenate([np.full(len(lab), name) for name, (_, lab) in zip(names, chosen)])
    return X, y, which


@app.command()
def embed(
    dataset: str = typer.Option(..., "--dataset", help="Dataset name (see `tivit datasets`)."),
    out: Path = typer.Option(..., "--out", help="Output .npz: values (n, layers, dim), layers, config, y, split."),
    encoder: str = typer.Option("clip-h14", help="Encoder name (see `tivit encoders`) or a timm ViT name."),
    encoder_args: Optional[str] = typer.Option(None, help="Extra timm arguments, e.g. img_size=64,depth=4."),
    weights: str = typer.Option("pretrained", help="pretrained, random, or a path to a weights file."),
    seed: int = typer.Option(0, help="Seed of random weights."),
    preset: str = typer.Option(
        "default", help="Recipe whose renderer settings apply: default, or paper (the published renderer)."
    ),
    renderer: Optional[str] = typer.Option(None, help="Rendering method (preset: tivit)."),
    renderer_args: Optional[str] = RendererArgsOption,
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
    precision: str = PrecisionOption,
    data_dir: Optional[Path] = DataDirOption,
    threads: Optional[int] = ThreadsOption,
) -> None:
    """Embed a dataset with a frozen encoder and write the per-layer embeddings (atomically)."""
    from rich.console import Console
    from rich.markup import escape

    from tivit.data import DatasetError, load_dataset
    from tivit.embed import extract
    from tivit.encoders import EncoderError, EncoderWeightsError, load_encoder
    from tivit.presets import get_preset

    if split not in ("train", "test", "all"):
        _fail(f"--split must be train, test or all, got {split!r}")
    _check_writable(out, "--out", folder=False)
    bs = _batch_size(batch_size)
    _set_threads(threads)
    extra = _pairs(encoder_args, "--encoder-args")
    rcfg = _preset_renderer(preset, renderer, "--renderer-args", _pairs(renderer_args, "--renderer-args"))
    try:
        X, y, which = _embedding_split(load_dataset(dataset, data_dir), split)
        precision = get_preset(preset).precision_for(precision)  # paper: fp32 for auto, as published
        enc = load_encoder(encoder, weights=weights, device=device, seed=seed, compile=compile, precision=precision,
                           **extra)
        emb = extract(
            X, rcfg, enc, layers=layers, pool=pool, norm=norm, normalize=normalize, batch_size=bs,
            devices=devices, cache_dir=False if no_cache else None,
        )
    except (DatasetError, EncoderError, EncoderWeightsError, ValueError, TypeError, KeyError) as err:
        _fail(str(err))
    if not _is_main_rank():
        return
    try:
        emb.config.update(dataset=dataset, split=split)
        emb.save(out, y=y, split=which)
    except OSError as err:
        _write_error(out, err)
    label = _red("RANDOM WEIGHTS") if emb.random_weights else ""
    Console().print(
        escape(f"{dataset}: {emb.n} series x layers {list(emb.layers)} x dim {emb.dim} "
               f"({emb.config['encoder']['name']}, {emb.config['weights']})") + label + escape(f" -> {out}"),
        highlight=False, soft_wrap=True,
    )


def _segments(text: str) -> list:
    """tivit segment rules: numbers, or text rules such as ``sqrt`` and ``0.5sqrt``."""
    return [_value(v) for v in _csv(text)]


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
    resume: bool = typer.Option(False, "--resume", help="Continue the existing study of that name (needs --storage)."),
    seed: int = typer.Option(0, help="Seed of sampler, folds, heads and random weights."),
    layers: str = typer.Option("all", help="Layers to search: all, 0-12, 4,8,12 ..."),
    pools: str = typer.Option("mean", help="Pools to search, comma separated (mean, mean_patch, cls, mean+cls)."),
    heads: str = typer.Option("linear", help="Heads to search: linear, mlp, layer_mix (comma separated)."),
    c_range: str = typer.Option("1e-3,1e2", "--C", help="Log-uniform bounds of C: low,high."),
    renderers_: str = typer.Option("tivit", "--renderers", help="Rendering methods to search (comma separated)."),
    segment: Optional[str] = typer.Option(None, help="tivit segment rules: sqrt, 0.5sqrt, 2sqrt, 16 (comma separated)."),
    stride: Optional[str] = typer.Option(None, help="tivit stride fractions, e.g. 0.1,0.5,1.0."),
    resize: Optional[str] = typer.Option(None, help="Resize modes for every searched renderer that resizes (all but lineplot): nearest,box."),
    folds: int = typer.Option(5, help="CV folds on train (capped by the smallest class; repeated for tiny sets)."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Fold-level median pruning."),
    normalize: bool = typer.Option(False, "--normalize/--no-normalize", help="L2-normalise embeddings per sample."),
    test: bool = typer.Option(True, "--test/--no-test", help="Score the best configuration on test afterwards."),
    plots: Optional[Path] = typer.Option(None, help="Folder for the PNG plots (default: <out stem>_plots)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Do not draw plots."),
    batch_size: str = typer.Option("auto", help="Images per forward pass, or auto."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda if available)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    precision: str = SearchPrecisionOption,
    data_dir: Optional[Path] = DataDirOption,
    threads: Optional[int] = ThreadsOption,
) -> None:
    """Search layer, pool, renderer and head by cross-validation on TRAIN; score the best once on TEST."""
    from rich.console import Console

    from tivit.data import DatasetError
    from tivit.encoders import EncoderError, EncoderWeightsError
    from tivit.search import SearchError, SearchSpace
    from tivit.search import search as run_search

    if resume and not storage:
        _fail("--resume needs --storage (e.g. sqlite:///study.db): an in-memory study ends with its process")
    bounds = _floats(c_range, "--C")
    if len(bounds) != 2:
        _fail(f"--C must be two numbers low,high; got {c_range!r}")
    plots_dir = None if no_plots else (plots or out.parent / f"{out.stem}_plots")
    _check_writable(out, "--out", folder=False)
    _set_threads(threads)
    if plots_dir is not None:
        _check_writable(plots_dir, "--plots", folder=True)
    methods = _csv(renderers_)
    params: dict = {m: {} for m in methods}
    if segment or stride:
        if "tivit" not in methods:
            _fail("--segment and --stride apply to the tivit renderer; add it to --renderers")
        if segment:
            params["tivit"]["segment"] = _segments(segment)
        if stride:
            params["tivit"]["stride"] = list(_floats(stride, "--stride"))
    if resize:
        import renderers

        resizable = [m for m in methods if m in renderers.METHODS and hasattr(renderers.make_config(m), "resize")]
        if not resizable:
            _fail(f"--resize applies to renderers with a resize step; none of {', '.join(methods)} has one")
        for m in resizable:  # a renderer without a resize step (lineplot draws at the image size) is left as is
            params[m]["resize"] = list(_csv(resize))
    try:
        space = SearchSpace.from_dict({
            "layers": layers, "pools": _csv(pools), "heads": _csv(heads), "C": bounds, "renderers": methods,
            "renderer_params": {m: p for m, p in params.items() if p},
        })
        result = run_search(
            dataset, encoder, weights=weights, encoder_args=_pairs(encoder_args, "--encoder-args"), space=space,
            n_trials=trials, storage=storage, study_name=study_name, resume=resume, seed=seed, n_splits=folds,
            prune=prune, normalize=normalize, score_test=test, data_dir=data_dir, device=device, precision=precision,
            batch_size=_batch_size(batch_size), cache_dir=False if no_cache else None, plots_dir=plots_dir,
        )
    except KeyboardInterrupt:
        _say("interrupted: finished trials are kept" + (f" in {storage}; rerun with --resume to continue" if storage
                                                         else " only with --storage; nothing was saved"), err=True)
        raise typer.Exit(code=130)
    except (SearchError, DatasetError, EncoderError, EncoderWeightsError, ValueError, TypeError, KeyError) as err:
        _fail(str(err))
    try:
        result.save(out)
    except OSError as err:
        _write_error(out, err)
    if resume and result.n_trials == result.trials_this_run:
        _say(f"warning: --resume found no finished trials in study {result.study_name!r} of {result.storage}; "
             "this run started it from scratch (check --study-name)", err=True)
    _say(result.summary())
    if result.random_weights:
        Console().print("[bold red]RANDOM WEIGHTS[/]: these numbers say nothing about the pretrained model")
    _say(f"-> {out}" + (f" and plots in {Path(result.plots[0]).parent}" if result.plots else ""))


def _index_ranges(text: str) -> list[tuple[int, int]]:
    """``"0,1,5-7"`` -> ``[(0, 0), (1, 1), (5, 7)]``: ranges stay unexpanded until checked against
    the data, so ``0-100000000`` costs nothing."""
    ranges = []
    for part in _csv(text):
        first, dash, last = part.partition("-")
        try:
            ranges.append((int(first), int(last) if dash else int(first)))
        except ValueError:
            _fail(f"--index takes numbers and ranges such as 0,1,5-7; got {part!r}")
    backwards = [f"{a}-{b}" for a, b in ranges if a > b]
    if backwards:
        _fail(f"--index range {backwards[0]} runs backwards: ranges go low-high, such as 0,1,5-7")
    if not ranges:
        _fail(f"the --index selection {text!r} is empty: give rows such as 0,1,5-7")
    return ranges


def _index_rows(ranges: list[tuple[int, int]], n: int, where: str) -> list[int]:
    """The rows of ``ranges``, once all lie in ``0..n-1``; otherwise name the first few outside it."""
    bad = [str(a) if a == b else f"{a}-{b}" for a, b in ranges if b >= n]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        _fail(f"--index {', '.join(bad[:3])}{more} out of range: {where} has {n} series (0..{n - 1})")
    return [i for a, b in ranges for i in range(a, b + 1)]


@app.command()
def render(
    dataset: str = typer.Option(..., "--dataset", help="Dataset name (see `tivit datasets`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the PNG files (created if missing; a file of the same "
                             "name is replaced)."),
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

    import renderers
    from tivit._atomic import atomic_write_bytes
    from tivit.data import DatasetError, interpolate_missing, load_dataset

    if split not in ("train", "test"):
        _fail(f"--split must be train or test, got {split!r}")
    params = dict(_pair(item, "--param") for item in param or [])
    ranges = _index_ranges(index)
    _check_writable(out, "--out", folder=True)
    cfg = _renderer_config("--param", lambda p: renderers.make_config(method, preset, **p), params)
    try:
        ds = load_dataset(dataset, data_dir)
        X, y = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)
        rows = _index_rows(ranges, len(X), f"{ds.name} {split}")
        chosen = interpolate_missing(X[rows])
        n, c, t = chosen.shape
        images = renderers.render(chosen.reshape(n * c, t), cfg, size=size, backend="numpy")
    except (DatasetError, ValueError, TypeError) as err:
        _fail(str(err))
    for k, image in enumerate(images[:, 0]):
        row, channel = rows[k // c], k % c
        path = out / (f"{ds.name}_{split}_{row}" + (f"_c{channel}" if c > 1 else "") + f"_{cfg.method}.png")
        buffer = io.BytesIO()
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, format="PNG")
        try:
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as err:
            _write_error(path, err)
        _say(f"{path}  (label {y[row]})")


def _bench_line(record: dict, index: int, total: int, eta: float | None) -> str:
    """One line per finished dataset (rich markup; names and errors escaped): the three summaries,
    the baselines, time and ETA."""
    from rich.markup import escape

    head = escape(f"[{index}/{total}] {record['dataset']}")
    if record.get("status") != "done":
        return f"{head}  [bold red]FAILED[/] {escape(str(record.get('error', '')))}"
    t = record["tivit"]
    acc = t["accuracy"]
    parts = [f"cv {acc[str(t['cv_layer'])]:.3f} (L{t['cv_layer']})", f"last {acc[str(t['last_layer'])]:.3f}"]
    if t.get("searched"):
        s = t["searched"]
        parts.append(f"searched {s['accuracy']:.3f} (L{s['layer']}" + (f", C={s['C']:.3g})" if s.get("C") else ")"))
    parts.append(f"oracle {acc[str(t['oracle_layer'])]:.3f} (L{t['oracle_layer']})")
    parts += [f"{b['model']} " + (f"{b['accuracy']:.3f}" if b.get("accuracy") is not None else "failed")
              for b in record.get("baselines", [])]
    rw = " [red]RANDOM WEIGHTS[/]" if t.get("random_weights") else ""
    left = f"  ETA {eta / 60:.1f} min" if eta else ""
    return f"{head}  {escape(' | '.join(parts))}{rw}  ({record['seconds']:.1f} s){left}"


def _summary_table(title: str, header: list[str], rows: list[list[str]]):
    """The bench summary: dataset names never shrink; other headers and cells fold rather than
    end in an ellipsis, so piped (80-column) output keeps every name whole."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for col in header:
        if col == "dataset":
            table.add_column(col, no_wrap=True, min_width=max((len(r[0]) for r in rows), default=7))
        else:
            table.add_column(escape(col), justify="right", overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(v)) for v in row))
    return table


@app.command()
def bench(
    datasets_: str = typer.Option("all", "--datasets", help="Dataset names (GunPoint,Coffee) or all (of --archive; in --data-dir when given)."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.csv, summary.csv, runs.jsonl, config.json."),
    archive: str = typer.Option("ucr", help="ucr or uea: which datasets 'all' means."),
    preset: str = typer.Option(
        "default", help="Recipe: default, or paper (published: paper renderer, zero padding, L2-normalised "
        "embeddings, heads fitted on a random 80% of train, drawn as the published run draws it: use --seed 2025 for "
        "its subsets). Options given below override it."
    ),
    encoder: Optional[str] = typer.Option(
        None, help="Encoder name (`tivit encoders`) or a timm ViT name (preset: clip-h14)."
    ),
    encoder_args: Optional[str] = typer.Option(None, help="Extra timm arguments, e.g. img_size=64,depth=4."),
    weights: str = typer.Option("pretrained", help="pretrained, random, or a path to a weights file."),
    renderer: Optional[str] = typer.Option(None, help="Rendering method (preset: tivit)."),
    renderer_args: Optional[str] = RendererArgsOption,
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
    precision: str = PrecisionOption,
    data_dir: Optional[Path] = DataDirOption,
    threads: Optional[int] = ThreadsOption,
) -> None:
    """Benchmark on the official splits: every layer's test accuracy, summaries last/cv/searched/oracle, baselines."""

    from tivit.bench import BenchConfig, BenchError, run_bench
    from tivit.data import DatasetError
    from tivit.encoders import EncoderError, EncoderWeightsError
    from tivit.report import load_run, summary_rows, write_report

    console = _console()
    bs = _batch_size(batch_size)
    _check_writable(out, "--out", folder=True)
    _set_threads(threads)
    rparams = _pairs(renderer_args, "--renderer-args")
    try:
        config = BenchConfig(
            preset=preset, encoder=encoder, weights=weights,
            encoder_args=tuple(_pairs(encoder_args, "--encoder-args").items()),
            renderer=renderer, renderer_params=tuple(rparams.items()), layers=layers,
            pool=pool, head=head, C=c, normalize=normalize, unequal_length=unequal_length, missing=missing,
            baselines=baselines, search_trials=search_trials, seed=seed, precision=precision,
        )
        _preset_renderer(config.preset, config.renderer, "--renderer-args", rparams)  # a bad one fails now
        run = run_bench(
            datasets_, out, config, archive=archive, data_dir=data_dir, resume=resume, batch_size=bs, device=device,
            cache_dir=False if no_cache else None,
            on_dataset=lambda rec, i, n, eta: console.print(_bench_line(rec, i, n, eta), highlight=False,
                                                            soft_wrap=True),
        )
    except KeyboardInterrupt:
        _say(f"interrupted: finished datasets are kept in {out}; rerun with --resume", err=True)
        raise typer.Exit(code=130)
    except (BenchError, DatasetError, EncoderError, EncoderWeightsError, ValueError, TypeError) as err:
        _fail(str(err))
    if run.skipped:
        _say(f"resumed: {len(run.skipped)} finished datasets kept ({', '.join(run.skipped)})")
    if run.records or run.skipped:
        header, rows = summary_rows(load_run(out))
        title = f"{len(rows) - 1} datasets" + (_red("RANDOM WEIGHTS") if run.random_weights else "")  # less the mean row
        console.print(_summary_table(title, header, rows))
        if report:
            files = write_report(out)
            _say(f"report: {files.markdown} and {files.html.name}")
    _say(f"-> {run.results_csv}, {run.summary_csv}")
    if run.failed:
        _fail(f"{len(run.failed)} dataset(s) failed: {', '.join(run.failed)} (details in {out / 'runs.jsonl'}); "
              "fix the cause and rerun with --resume (a fix that changes a setting needs another --out)")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A `tivit bench` output folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: RUN_DIR/report)."),
) -> None:
    """Write the Markdown and HTML report of a bench run, with the layer curves and the CD diagram (PNG)."""
    from tivit.report import ReportError, write_report

    if out is not None:
        _check_writable(out, "--out", folder=True)
    try:
        files = write_report(run_dir, out)
    except ReportError as err:
        _fail(str(err))
    except OSError as err:
        _fail(f"cannot write the report to {out or run_dir / 'report'}: {err.strerror or err}")
    pngs = [str(p) for p in (files.layers_png, files.cd_png) if p is not None]
    _say(f"{files.markdown}\n{files.html}\n" + "\n".join(pngs))


def main() -> None:
    """Entry point of the ``tivit`` script. Warnings raised while a command runs (a corrupt cache
    chunk, a library's notice) print as one ``warning: ...`` line, not Python's two-line format."""
    import warnings

    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        app()
    except (MemoryError, RuntimeError) as err:
        # an absurd --size or img_size, or a batch too large for this machine: a line, not a traceback
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        typer.echo(f"error: out of memory ({str(err).strip().splitlines()[-1][:200]}); lower --size, "
                   "--batch-size or the encoder's image size", err=True)
        raise SystemExit(2) from None
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    main()

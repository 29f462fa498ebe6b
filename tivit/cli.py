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


def main() -> None:
    """Entry point of the ``tivit`` script."""
    app()


if __name__ == "__main__":
    main()

"""One progress bar for long loops (rich, on stderr, with ETA); silent when asked or under tests.

``TIVIT_NO_PROGRESS=1`` turns every bar off (tests/conftest.py sets it); ``enabled=False`` turns one off.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


class _Silent:
    def advance(self, amount: float = 1) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class _Bar:
    def __init__(self, progress, task) -> None:
        self._progress, self._task = progress, task

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task, amount)

    def describe(self, text: str) -> None:
        self._progress.update(self._task, description=text)


def progress_enabled(enabled: bool = True) -> bool:
    """False when ``enabled`` is False or ``TIVIT_NO_PROGRESS`` is set to a true value."""
    return bool(enabled) and os.environ.get("TIVIT_NO_PROGRESS", "").lower() not in ("1", "true", "yes", "on")


@contextlib.contextmanager
def progress_bar(total: float, description: str, enabled: bool = True, unit: str = "") -> Iterator[_Bar | _Silent]:
    """A bar over ``total`` units; yields an object with ``advance(n)`` and ``describe(text)``.

    Args:
        total: amount of work (e.g. number of series).
        description: text left of the bar.
        enabled: False for no output (also off when ``TIVIT_NO_PROGRESS=1``).
        unit: unit shown after the count (``"series"``).
    """
    if not progress_enabled(enabled) or total <= 0:
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield _Bar(progress, task)

"""An exclusive lock on a file, held while one process writes what it guards.

``flock`` on the lock file: the OS releases it when the process dies (kill -9 included), so a
stale lock never blocks a later run. The holder's pid is written into the file for the message of
whoever is refused. Windows has no ``fcntl``: there the block runs unguarded.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


class LockBusy(RuntimeError):
    """Another live process holds the lock; ``owner`` is its pid as it wrote it (or "unknown")."""

    def __init__(self, path: Path, owner: str) -> None:
        super().__init__(f"{path} is held by pid {owner}")
        self.path, self.owner = path, owner


@contextlib.contextmanager
def held(path: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock ``path`` (created if missing) for the block; raise :class:`LockBusy`
    at once if another process holds it."""
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            raise LockBusy(path, handle.read().strip() or "unknown") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

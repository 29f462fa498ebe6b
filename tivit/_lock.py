"""An exclusive lock on a file, held while one process writes what it guards.

``flock`` on the lock file: the OS releases it when the process dies (kill -9 included), so a
stale lock never blocks a later run. The holder's pid is written into the file for the message of
whoever is refused. Windows has no ``fcntl``: there the block runs unguarded.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def held(path: str | os.PathLike, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold the exclusive lock ``path`` (created if missing) for the block; if another process holds
    it, raise at once the caller's error ``busy(owner's pid)``."""
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
            owner = handle.read().strip() or "unknown"
            raise busy(owner) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

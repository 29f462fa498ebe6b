"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every file tivit writes (cache entries, benchmark results, search results, reports) goes through
these helpers: write to a temporary file in the same folder, flush and fsync, then ``os.replace``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (weights files are gigabytes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically (keys sorted, so equal objects give equal files)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")


def atomic_append_lines(path: str | os.PathLike, lines: Iterable[str]) -> Path:
    """Append whole lines to a text file atomically: rewrite old content + new lines, then replace.

    Appending in place could leave a torn last line after ``kill -9``; rewriting keeps the file whole.
    Result files are small (one line per dataset x model x layer), so the rewrite is cheap.
    """
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        raise ValueError(f"{path} does not end with a newline: it was not written by tivit")
    new = "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode("utf-8")
    return atomic_write_bytes(path, old + new)


def sweep_temporaries(folder: str | os.PathLike, name: str = "*", age_s: float = 3600.0) -> None:
    """Remove the temporary files that :func:`atomic_write_bytes` left for target ``name`` in
    ``folder`` when its process was killed, those older than ``age_s`` (a writer still at work
    has a younger one; 0 when the caller holds the folder's lock)."""
    import time

    now = time.time()
    try:
        found = list(Path(folder).glob(f".{name}.*.tmp"))
    except OSError:
        return
    for tmp in found:
        try:
            if now - tmp.stat().st_mtime >= age_s:
                tmp.unlink()
        except OSError:
            pass


class CorruptFileError(ValueError):
    """A file tivit wrote no longer parses: it was changed or cut outside tivit (its writes are atomic)."""


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a file that does not parse is a :class:`CorruptFileError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path} is corrupt ({err}); tivit writes it whole, so it was changed "
                               "or cut outside tivit") from err


def read_jsonl(path: str | os.PathLike, check: Callable[[Any], str | None] | None = None) -> list[dict]:
    """Read a JSON-lines file; a missing file reads as empty, a line that does not parse (or that
    ``check`` says is not a record of this file: it returns why) is a :class:`CorruptFileError`
    naming the file and the line."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorruptFileError(f"{path}, line {number} is corrupt ({err.msg}); tivit writes it whole, so "
                                       "it was changed or cut outside tivit: remove that line to re-run what "
                                       "it recorded") from err
            why = check(record) if check is not None else None
            if why:
                raise CorruptFileError(f"{path}, line {number} is not a record tivit wrote ({why}): it was "
                                       "changed outside tivit; remove that line to re-run what it recorded")
            records.append(record)
    return records

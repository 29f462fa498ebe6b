"""Atomic writes: whole files with the usual permissions, the old file kept when a write fails."""

from __future__ import annotations

import os

import pytest

from tivit._atomic import atomic_append_lines, atomic_write_bytes, atomic_write_json, read_jsonl


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "a" / "b.bin", b"x")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"x"
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_append_adds_whole_lines_and_refuses_a_torn_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    atomic_append_lines(path, ['{"a": 1}'])
    atomic_append_lines(path, ['{"a": 2}\n'])
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a"')
    with pytest.raises(ValueError, match="does not end with a newline"):
        atomic_append_lines(path, ['{"a": 3}'])

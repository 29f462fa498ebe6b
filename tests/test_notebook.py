"""The quickstart notebook runs top to bottom offline, and is committed without outputs."""

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_quickstart_runs(tmp_path, monkeypatch):
    from ipykernel.kernelspec import write_kernel_spec
    from nbclient import NotebookClient

    # a kernel on THIS interpreter (sys.executable), whatever "python3" kernels the user has installed
    write_kernel_spec(tmp_path / "jupyter" / "kernels" / "tivit-test")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the inline backend renders with Agg (no display needed) and keeps the figures as outputs
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TIVIT_NO_PROGRESS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    workdir = tmp_path / "run"
    workdir.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="tivit-test",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    text = _text(nb)
    print(text)
    assert "reloaded predictions equal: True" in text
    assert "MiniRocket" in text and "random weights" in text
    assert "chosen layer (train CV):" in text
    images = sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
    assert images >= 2  # the renderer grid and the accuracy-by-layer plot


def test_quickstart_is_stripped():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs; strip them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count; strip it before committing"

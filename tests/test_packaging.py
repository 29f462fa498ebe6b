"""The built wheel carries both import packages, the CUDA sources and the `tivit` script.

Builds the wheel, installs it (without dependencies) into a fresh virtual environment, and asks
that installation, not the source tree, where the kernels are.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = out.glob("tivit-*.whl")
    return path


def test_wheel_contains_packages_kernels_and_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    kernels = sorted(p.name for p in (ROOT / "cuda").iterdir() if p.suffix in (".cu", ".cuh", ".h"))
    assert kernels, "cuda/ holds no kernel sources"
    for kernel in kernels:
        assert f"renderers/cuda/{kernel}" in names
    assert "tivit/__init__.py" in names and "renderers/__init__.py" in names
    resources = sorted(p.name for p in (ROOT / "tivit" / "resources").iterdir() if p.suffix in (".csv", ".json", ".md"))
    assert resources and all(f"tivit/resources/{name}" in names for name in resources)  # reference accuracies
    assert not any(n.startswith(("tests/", "benchmarks/", "notebooks/")) for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)  # BSD-3-Clause: ship its text
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tivit = tivit.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_finds_its_kernels(wheel, tmp_path):
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)]
    result = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # Dependencies come from the test environment, appended AFTER the new venv's own site-packages,
    # so `renderers` and `tivit` are the installed copies, not this checkout.
    deps = sysconfig.get_paths()["purelib"]
    code = (
        f"import sys; sys.path.append({deps!r}); import renderers, tivit; from renderers import _cuda; "
        "assert 'site-packages' in str(_cuda.source_dir()), _cuda.source_dir(); "
        "print(sorted(p.name for p in _cuda.source_files()))"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = sorted(p.name for p in (ROOT / "cuda").glob("*.cu"))
    assert result.stdout.strip() == str(expected)
    # The installed script (its own copy of tivit; dependencies through PYTHONPATH, whose .pth files
    # are not processed, so the editable checkout stays out of the way).
    script_env = {"PYTHONPATH": deps, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    for args, needle in ((["--help"], "datasets"), (["datasets"], "GunPoint")):
        run = subprocess.run([str(env / "bin" / "tivit"), *args], capture_output=True, text=True, timeout=120,
                             env=script_env, cwd=tmp_path)
        assert run.returncode == 0 and needle in run.stdout, run.stderr[-3000:]


def test_sdist_can_run_its_own_tests(tmp_path):
    """The sdist shipped tests/ without benchmarks/ and notebooks/, which two test files read."""
    import tarfile

    cmd = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = tmp_path.glob("tivit-*.tar.gz")
    names = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    for needed in ("LICENSE", "Makefile", ".ci/run", "benchmarks/_machine.py", "notebooks/quickstart.ipynb",
                   "tests/test_benchmark_args.py", "cuda/common.cuh"):
        assert needed in names, needed
    assert not any("__pycache__" in name for name in names)

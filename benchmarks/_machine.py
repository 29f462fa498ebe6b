"""What a benchmark ran on, recorded next to its figures.

Ratios against a baseline move with the machine, not only with our code: the ``heads`` baseline
ran 3.4x faster on an AMD EPYC than on the (unrecorded) machine of earlier records, and MKL's
fastest matrix layouts differ between the two. A record without its CPU model, BLAS and library
versions cannot be compared with another.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "pyts", "sktime", "timm", "optuna", "lightning", "tivit")


_ISA = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_model() -> dict:
    """The CPU as ``/proc/cpuinfo`` describes it (vendor, model name, the vector extensions that
    decide which BLAS kernels run); elsewhere what ``platform`` knows."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("vendor_id", "model name", "flags") and key not in fields:
                    fields[key] = value.strip()
    except OSError:
        pass
    if "model name" not in fields:
        return {"model": platform.processor() or platform.machine()}
    flags = set(fields.get("flags", "").split())
    return {"vendor": fields.get("vendor_id"), "model": fields["model name"], "isa": [f for f in _ISA if f in flags]}


def versions() -> dict:
    """Python's version and those of the packages the benchmarks time (as ``tivit bench`` records them)."""
    from tivit.bench import _versions

    return _versions(_PACKAGES)


def describe(**extra) -> dict:
    """The machine record of a result file: platform, CPU, core count, torch's BLAS and threads,
    package versions, the load average now; ``extra`` entries are added as given."""
    import torch

    config = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")),
                None)
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch_blas": blas,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "versions": versions(),
        "load_average": list(os.getloadavg()),
        **extra,
    }


# ---------------------------------------------------------------------------------------------
# command-line arguments shared by the scripts: checked before minutes of measuring, not after


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (runs, repeats, threads, series, batch sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def count(text: str) -> int:
    """argparse type: an integer >= 0 (0 skips that part)."""
    value = positive_int(text) if text.strip() != "0" and not text.strip().startswith("-") else int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0 (0 skips it)")
    return value


def result_file(text: str) -> Path:
    """argparse type: a JSON file to write at the end, checked now (a folder, or a folder that
    does not exist or cannot be written, would lose the whole run at its last step)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name such as {path / 'result.json'}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable")
    return path

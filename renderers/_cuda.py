"""Host side of the CUDA kernels in ``renderers.cuda``: one code path, two ways to run it.

``_render_rows`` prepares each method's small per-series buffers and launches the kernels. It is
written against an array module ``xp`` and a ``launch(kernel, items, args)`` callable, so the very
same code drives

- CuPy on a GPU (``cupy.RawModule`` per ``.cu`` file, compiled once and cached), and
- the host emulation: each ``.cu`` file compiled by g++ into a shared library (``host_emulation.h``)
  and called through ctypes once per emulated (block, thread), with NumPy arrays.

Kernels write the final, normalised pixels straight into the output (``store_pixel``), so the
encoder-input form costs no extra pass when the output is float32. They read the series as float64
and do the per-series arithmetic (PAA, scaling, bin edges, distances and thresholds, line heights)
in double, as the NumPy reference does: in float32 a series far from zero loses the digits the image
shows, and finite values beyond float32's range overflow. Recurrence plots and line plots take the
series multiplied by a power of two, as the reference does (``_scale``), so that squares and ranges
of values near float64's largest stay finite. Only the TiViT recipe with the published
lower median computes in float32, as the published code does, for its exact pixels.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from renderers import _lineplot, _mtf, _recurrence, _tivit
from renderers._config import Config
from renderers._resize import bounds
from renderers._scale import pow2_limit, pow2_scale
from renderers._series import groups, own_lengths

KERNEL_FILES = {
    "tivit": "tivit.cu", "gasf": "gaf.cu", "gadf": "gaf.cu", "mtf": "mtf.cu",
    "recurrence": "recurrence.cu", "lineplot": "lineplot.cu",
}
THREADS = 256
MAX_BLOCKS = 65535


def source_dir() -> Path:
    """The folder holding the ``.cu`` sources and headers.

    Installed from a wheel they sit in ``renderers/cuda/``; in a source checkout (editable install)
    they are the repository's top-level ``cuda/``. That folder has no ``__init__.py`` on purpose: a
    regular package named ``cuda`` at the repository root would shadow NVIDIA's ``cuda`` namespace
    package (``cuda.bindings``, used for NVRTC) whenever the root is on ``sys.path``.
    """
    here = Path(__file__).resolve().parent
    for folder in (here / "cuda", here.parent / "cuda"):
        if (folder / "common.cuh").is_file():
            return folder
    raise FileNotFoundError(f"CUDA sources not found next to {here} (looked for cuda/common.cuh)")


def source_files() -> list[Path]:
    """Every kernel source, one ``.cu`` file per method family."""
    return sorted(source_dir().glob("*.cu"))


# ---------------------------------------------------------------------------------------------
# launchers


@lru_cache(maxsize=None)
def _cupy_module(filename: str):
    import cupy

    folder = source_dir()
    code = (folder / filename).read_text()
    return cupy.RawModule(code=code, options=("-std=c++17", f"-I{folder}"))


def _cupy_launcher(filename: str) -> Callable:
    module = _cupy_module(filename)

    def launch(kernel: str, items: int, args: Sequence[Any]) -> None:
        blocks = max(1, min(MAX_BLOCKS, -(-items // THREADS)))
        module.get_function(kernel)((blocks,), (THREADS,), tuple(args))

    return launch


def _cache_root() -> Path:
    """Where compiled emulation libraries are kept: ``$RENDERERS_CACHE``, else the user's cache folder
    (``$XDG_CACHE_HOME/renderers``, ``~/.cache/renderers``) if only its owner can write it, else a
    private folder for this process. A library found there is loaded and run, so the default is never
    a shared, predictable path (``/tmp/renderers-<uid>`` was: another user could create it first)."""
    given = os.environ.get("RENDERERS_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "renderers"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
        if info.st_uid == os.getuid() and not info.st_mode & 0o022:
            return folder
    except OSError:
        pass
    return _private_folder()


@lru_cache(maxsize=None)
def _private_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="renderers-"))  # mode 0o700, removed with the machine's temp files


def build_emulated(filename: str, folder: Path | None = None) -> Path:
    """Compile one ``.cu`` file with g++ as host C++ (shared library, cached by source hash).

    Args:
        filename: the kernel file, e.g. ``"gaf.cu"``.
        folder: where to build (default: :func:`_cache_root`).
    """
    src = source_dir()
    digest = hashlib.sha256(b"".join((src / f).read_bytes() for f in (filename, "common.cuh", "host_emulation.h")))
    folder = Path(folder or _cache_root())
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / f"{Path(filename).stem}-{digest.hexdigest()[:16]}.so"
    if library.exists():
        return library
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("the host emulation of the CUDA kernels needs g++ (or c++) on PATH")
    partial = library.with_suffix(f".{os.getpid()}.tmp")
    cmd = [compiler, "-std=c++17", "-O2", "-shared", "-fPIC", "-x", "c++", str(src / filename),
           f"-I{src}", "-o", str(partial)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"g++ failed on {filename}:\n{result.stderr[-4000:]}")
    os.replace(partial, library)
    return library


def _ctype(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise ValueError("emulated kernels need C-contiguous arrays")
        return ctypes.c_void_p(value.ctypes.data)
    for kind, ctype in ((np.int32, ctypes.c_int32), (np.int64, ctypes.c_int64),
                        (np.float32, ctypes.c_float), (np.float64, ctypes.c_double)):
        if isinstance(value, kind):
            return ctype(value)
    raise TypeError(f"kernel argument of type {type(value).__name__} needs an exact numpy type")


def emulated_launcher(filename: str, grid: int = 2, block: int = 3, folder: Path | None = None) -> Callable:
    """A ``launch`` that runs the g++ build of ``filename`` as ``grid`` blocks of ``block`` threads.

    Args:
        filename: the kernel file.
        grid: emulated blocks per launch.
        block: emulated threads per block.
        folder: build folder (see :func:`build_emulated`).
    """
    lib = ctypes.CDLL(str(build_emulated(filename, folder)))

    def launch(kernel: str, items: int, args: Sequence[Any]) -> None:
        function = getattr(lib, kernel)
        function.restype = None
        converted = [_ctype(a) for a in args]
        for b in range(grid):
            for t in range(block):
                lib.emu_set_thread(b, t, grid, block)
                function(*converted)

    return launch


# ---------------------------------------------------------------------------------------------
# per method: small buffers, then the pixel kernel


def _render_rows(xp, launch: Callable, x, lengths: np.ndarray, cfg: Config, size: int, out, row_offset: int,
                 mean, stdev) -> None:
    """Render every row of ``x`` into ``out[row_offset + row]`` (rows of equal length together)."""
    channels = np.int32(out.shape[1])
    for length, rows in groups(lengths):
        # float64, as the NumPy reference: float32 would lose the digits of a series far from zero,
        # and overflow on finite float64 values beyond its range
        xg = xp.ascontiguousarray(x[xp.asarray(rows), :length], dtype=xp.float64)
        out_rows = xp.asarray(rows.astype(np.int64) + row_offset)
        epilogue = (out_rows, out, channels, mean, stdev)
        _METHOD_KERNELS[cfg.method](xp, launch, xg, length, cfg, size, epilogue)


def _i32(xp, values: np.ndarray):
    return xp.asarray(np.ascontiguousarray(values, dtype=np.int32))


def _fits_float32(xp, x) -> bool:
    """Whether every value stays finite in float32 (the published TiViT recipe computes in it)."""
    with np.errstate(over="ignore"):  # numpy warns on the cast that overflows; cupy does not
        return bool(xp.isfinite(x.astype(xp.float32)).all())


def _scaling_fits(xp, sorted_rows, cfg) -> bool:
    """Whether the kernel's robust-scaled range stays finite (in float32 for the published recipe),
    judged in float64 from the sorted rows: the kernel cannot report an overflow."""
    n = sorted_rows.shape[1]
    q25, q75 = (xp.quantile(sorted_rows, q, axis=1) for q in (0.25, 0.75))
    with np.errstate(over="ignore", invalid="ignore"):
        span = (sorted_rows[:, -1] - sorted_rows[:, 0]) / ((q75 - q25) + cfg.eps) + cfg.eps
    limit = float(np.finfo(np.float32).max) if cfg.median == "lower" else np.inf
    return bool(n == 0 or (xp.abs(span) < limit).all())


def _tivit_kernels(xp, launch, xg, length, cfg, size, epilogue) -> None:
    idx = _tivit.index_map(length, cfg)
    h, w = idx.shape
    rs, re_ = bounds(h, size, cfg.resize)
    cs, ce = bounds(w, size, cfg.resize)
    if cfg.median == "lower":
        _tivit.check_float32_range(_fits_float32(xp, xg))
    sorted_rows = xp.sort(xg, axis=1)
    _tivit.check_scaling_range(_scaling_fits(xp, sorted_rows, cfg), cfg)
    n = np.int64(xg.shape[0])
    launch("tivit_image", int(n) * size * size, (
        xg, sorted_rows, np.int32(length), n, _i32(xp, idx), np.int32(w),
        _i32(xp, rs), _i32(xp, re_), _i32(xp, cs), _i32(xp, ce), np.int32(size),
        np.float64(cfg.eps), np.float32(cfg.gamma), np.int32(cfg.median == "lower"), np.int32(cfg.quantize),
        *epilogue,
    ))


def _gaf_kernels(xp, launch, xg, length, cfg, size, epilogue) -> None:
    xg = xg * pow2_limit(xg, xp)  # as the reference: block sums of values near float64's largest stay finite
    n = np.int64(xg.shape[0])
    m = min(length, size)
    start, end = bounds(length, m, "box")
    cos = xp.empty((int(n), m), dtype=xp.float64)
    sin = xp.empty_like(cos)
    launch("gaf_paa", int(n) * m, (xg, np.int32(length), n, _i32(xp, start), _i32(xp, end), np.int32(m), cos))
    launch("gaf_angles", int(n), (cos, sin, n, np.int32(m)))
    grow = bounds(m, size, cfg.resize)[0]
    launch("gaf_image", int(n) * size * size, (
        cos, sin, n, np.int32(m), _i32(xp, grow), np.int32(size), np.int32(cfg.kind == "difference"), *epilogue,
    ))


def _mtf_kernels(xp, launch, xg, length, cfg, size, epilogue) -> None:
    n = np.int64(xg.shape[0])
    nb = np.int32(cfg.n_bins)
    sorted_rows = xp.sort(xg, axis=1)
    bins = xp.empty(xg.shape, dtype=xp.int32)
    levels = xp.asarray(_mtf.levels(int(nb)))
    launch("mtf_bins", int(n) * length, (xg, sorted_rows, np.int32(length), n, nb, levels, bins))
    w = xp.empty((int(n), int(nb), int(nb)), dtype=xp.float64)
    launch("mtf_matrix", int(n), (bins, np.int32(length), n, nb, w))
    m = min(length, size)
    start, end = bounds(length, m, "box")
    shares = xp.empty((int(n), m, int(nb)), dtype=xp.float64)
    launch("mtf_shares", int(n) * m, (bins, np.int32(length), n, nb, _i32(xp, start), _i32(xp, end), np.int32(m), shares))
    grow = bounds(m, size, cfg.resize)[0]
    launch("mtf_image", int(n) * size * size, (w, shares, n, nb, np.int32(m), _i32(xp, grow), np.int32(size), *epilogue))


def _recurrence_kernels(xp, launch, xg, length, cfg, size, epilogue) -> None:
    scale = pow2_scale(xg, xp)  # exact, as the reference: no (1e300)**2 = inf in the distances
    xg = xg * scale
    n = np.int64(xg.shape[0])
    n_traj = _recurrence.n_trajectories(length, cfg)
    shape = (xg, np.int32(length), n, np.int32(n_traj), np.int32(cfg.dimension), np.int32(cfg.time_delay))
    pairs = int(n) * n_traj * n_traj
    if cfg.threshold is None or cfg.threshold == "distance":
        top = xp.zeros(int(n), dtype=xp.uint64)
        launch("recurrence_max", pairs, (*shape, top))
        limit = top.view(xp.float64)
        if cfg.threshold == "distance":
            limit = cfg.percentage / 100 * limit
    elif cfg.threshold == "point":
        dist = xp.empty((int(n), n_traj * n_traj), dtype=xp.float64)
        launch("recurrence_distances", pairs, (*shape, dist))
        limit = xp.percentile(dist, cfg.percentage, axis=1)
    else:
        limit = float(cfg.threshold) * scale[:, 0]
    start, end = bounds(n_traj, size, cfg.resize)
    mode = np.int32(cfg.threshold is not None)
    launch("recurrence_image", int(n) * size * size, (
        *shape, xp.ascontiguousarray(limit, dtype=xp.float64), mode, _i32(xp, start), _i32(xp, end), np.int32(size),
        *epilogue,
    ))


def _lineplot_kernels(xp, launch, xg, length, cfg, size, epilogue) -> None:
    xg = xg * pow2_scale(xg, xp)  # exact, as the reference: high - low stays finite
    n = np.int64(xg.shape[0])
    low, high = xp.ascontiguousarray(xg.min(axis=1)), xp.ascontiguousarray(xg.max(axis=1))
    reach = _lineplot.ink_reach(cfg, size)
    first, last = _lineplot.segment_range(length, size, reach)
    launch("lineplot_image", int(n) * size * size, (
        xg, np.int32(length), n, low, high, np.float64(cfg.margin), np.float32(reach),
        _i32(xp, first), _i32(xp, last), np.int32(size), *epilogue,
    ))


_METHOD_KERNELS = {
    "tivit": _tivit_kernels, "gasf": _gaf_kernels, "gadf": _gaf_kernels, "mtf": _mtf_kernels,
    "recurrence": _recurrence_kernels, "lineplot": _lineplot_kernels,
}


# ---------------------------------------------------------------------------------------------
# entry points


def render_emulated(series: np.ndarray, cfg: Config, size: int, mean: Sequence[float] = (0.0,),
                    stdev: Sequence[float] = (1.0,), grid: int = 2, block: int = 3,
                    folder: Path | None = None) -> np.ndarray:
    """Run the CUDA kernels on the CPU (g++ host emulation): ``(n, len(mean), S, S)`` float32.

    Args:
        series: ``(n, t)`` NumPy array with a NaN tail as padding (checked like :func:`render`).
        cfg: renderer config.
        size: output side.
        mean: per-channel mean of the epilogue (one channel per value).
        stdev: per-channel standard deviation.
        grid: emulated blocks per launch.
        block: emulated threads per block.
        folder: build folder for the shared libraries.
    """
    from renderers._series import as_rows_numpy

    x = as_rows_numpy(series)
    lengths = own_lengths(x)
    out = np.empty((len(x), len(mean), size, size), dtype=np.float32)
    launch = emulated_launcher(KERNEL_FILES[cfg.method], grid, block, folder)
    _render_rows(np, launch, x, lengths, cfg, size, out, 0,
                 np.asarray(mean, np.float32), np.asarray(stdev, np.float32))
    return out


def _torch_stream():
    """CuPy's handle on torch's current stream (kernels then order with torch's work)."""
    import cupy

    try:
        import torch

        if torch.cuda.is_initialized():
            return cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
    except ImportError:
        pass
    return cupy.cuda.get_current_stream()


def _as_cupy(series: Any):
    import cupy

    from renderers._series import array_kind, check_has_data, check_shape

    kind = array_kind(series)
    if kind == "torch":
        import torch

        t = check_has_data(series).detach()
        if t.dtype not in (torch.float32, torch.float64):  # the kernels read float64 (_render_rows)
            t = t.double()
        x = cupy.from_dlpack(t.cuda().contiguous())
    else:
        x = cupy.asarray(series)
    if x.dtype.kind != "f":
        x = x.astype(cupy.float64)
    return check_shape(x)


def render(series: Any, cfg: Config, size: int):
    """The cupy backend of :func:`renderers.render`: ``(n, 1, S, S)`` float32 CuPy array."""
    import cupy

    with _torch_stream():
        x = _as_cupy(series)
        lengths = own_lengths(x)
        out = cupy.empty((x.shape[0], 1, size, size), dtype=cupy.float32)
        launch = _cupy_launcher(KERNEL_FILES[cfg.method])
        _render_rows(cupy, launch, x, lengths, cfg, size, out, 0,
                     cupy.zeros(1, cupy.float32), cupy.ones(1, cupy.float32))
    return out


def render_for_encoder(series: Any, cfg: Config, size: int, mean, stdev, dtype, device, out, batch_size: int):
    """The cupy backend of :func:`renderers.render_for_encoder` (fused into ``out`` when float32)."""
    import cupy
    import torch

    with torch.cuda.device(device), _torch_stream():
        x = _as_cupy(series)
        n = x.shape[0]
        if out is None:
            out = torch.empty((n, 3, size, size), dtype=dtype, device=device)
        elif tuple(out.shape) != (n, 3, size, size):
            raise ValueError(f"out must have shape {(n, 3, size, size)}, got {tuple(out.shape)}")
        lengths = own_lengths(x)
        mean_d, std_d = cupy.asarray(mean, cupy.float32), cupy.asarray(stdev, cupy.float32)
        launch = _cupy_launcher(KERNEL_FILES[cfg.method])
        fused = out.dtype == torch.float32 and out.is_contiguous() and out.device.type == "cuda"
        target = cupy.from_dlpack(out) if fused else None
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            if fused:
                _render_rows(cupy, launch, x[start:stop], lengths[start:stop], cfg, size, target, start, mean_d, std_d)
            else:
                part = cupy.empty((stop - start, 3, size, size), dtype=cupy.float32)
                _render_rows(cupy, launch, x[start:stop], lengths[start:stop], cfg, size, part, 0, mean_d, std_d)
                out[start:stop].copy_(torch.from_dlpack(part))
    return out


def compile_ptx(filename: str, arch: str = "compute_90") -> str:
    """Compile one ``.cu`` file to PTX with NVRTC (``cuda.bindings``), else ``nvcc``; returns the PTX.

    Args:
        filename: the kernel file.
        arch: virtual architecture, e.g. ``"compute_90"`` or ``"compute_80"``.
    """
    folder = source_dir()
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        nvrtc = None
    if nvrtc is not None:
        code = (folder / filename).read_bytes()
        err, prog = nvrtc.nvrtcCreateProgram(code, filename.encode(), 0, [], [])
        _nvrtc_check(nvrtc, err, "create")
        opts = [f"--gpu-architecture={arch}".encode(), b"-std=c++17", f"-I{folder}".encode()]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise RuntimeError(f"NVRTC failed on {filename} for {arch}:\n{log.decode(errors='replace')}")
        err, size = nvrtc.nvrtcGetPTXSize(prog)
        ptx = b" " * size
        (err,) = nvrtc.nvrtcGetPTX(prog, ptx)
        _nvrtc_check(nvrtc, err, "get PTX")
        nvrtc.nvrtcDestroyProgram(prog)
        return ptx.rstrip(b"\x00").decode()
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise RuntimeError("no CUDA compiler: neither cuda.bindings (NVRTC) nor nvcc is available")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "kernel.ptx"
        cmd = [nvcc, "-std=c++17", f"-arch={arch}", "-ptx", str(folder / filename), "-o", str(target)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"nvcc failed on {filename} for {arch}:\n{result.stderr[-4000:]}")
        return target.read_text()


def _nvrtc_check(nvrtc, err, what: str) -> None:
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"NVRTC {what} failed: {err}")

"""Large CPU output tensors without paying 4 KiB page faults for every image.

A fresh ``(n, 1, S, S)`` output is tens to hundreds of MiB; on Linux, the first write to each
4 KiB page costs a page fault, which for rendering is about half of the total time. Advising the
kernel that the block may use transparent huge pages (``madvise(MADV_HUGEPAGE)``, honoured when
``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` or ``always``) cuts that cost about
in half. Elsewhere (other systems, GPU tensors, small tensors) this is a plain ``torch.empty``.

:func:`cache_chunks` cuts such an output, and the operands that fill it, into chunks that several
in-place passes fill while they are in cache, so that only the last pass goes out to memory.
"""

from __future__ import annotations

import ctypes
import math
import sys
from typing import Any, Iterator

_MADV_HUGEPAGE = 14
_PAGE = 4096
_MIN_BYTES = 4 << 20  # below this, faults are cheap next to the work
_CHUNK_PIXELS = 1 << 18  # float32 pixels per in-cache chunk on the CPU (1 MiB)
_madvise = None


def _libc_madvise():
    global _madvise
    if _madvise is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).madvise
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            fn.restype = ctypes.c_int
            _madvise = fn
        except (OSError, AttributeError):
            _madvise = False
    return _madvise


def empty(shape: tuple[int, ...], dtype: Any = None, device: Any = None):
    """``torch.empty(shape, dtype, device)``; a large CPU block is advised to use huge pages (Linux)."""
    import torch

    out = torch.empty(shape, dtype=dtype or torch.float32, device=device)
    nbytes = out.numel() * out.element_size()
    if out.device.type == "cpu" and nbytes >= _MIN_BYTES and sys.platform.startswith("linux"):
        madvise = _libc_madvise()
        if madvise:
            start = -(-out.data_ptr() // _PAGE) * _PAGE
            end = (out.data_ptr() + nbytes) // _PAGE * _PAGE
            if end > start:
                madvise(start, end - start, _MADV_HUGEPAGE)  # advice only: a failure changes nothing
    return out


def cache_chunks(out, *operands, pixels: int | None = None) -> Iterator[tuple]:
    """``(out_chunk, *operand_chunks)``: views of ``out`` and of each operand along the first axis,
    a few images at a time, small enough for several in-place passes over one to run in cache:
    about 1 MiB on the CPU (at least one image); all at once on a GPU. ``pixels`` is how many
    float32 values the passes touch per image (default: an output image's). ``torch.split`` makes
    the views in one call (slicing every chunk in Python cost ~8 % at 224 px)."""
    step = max(1, len(out))
    if out.device.type == "cpu":
        step = max(1, _CHUNK_PIXELS // max(1, pixels or math.prod(out.shape[1:])))
    return zip(out.split(step), *(operand.split(step) for operand in operands))

"""Series -> images for vision encoders: TiViT segment stacking, GAF, MTF, recurrence plots, line plots.

One entry point, :func:`render`, over three backends: ``numpy`` (the readable reference, one
function per method), ``torch`` (batched, CPU or CUDA) and ``cupy`` (the CUDA C kernels shipped in
``renderers.cuda``). :func:`render_for_encoder` writes an encoder's normalised 3-channel input
batch by batch. This package never imports ``tivit``; torch and cupy are imported when used.

>>> import numpy as np, renderers
>>> renderers.render(np.sin(np.arange(96.0))[None], "tivit", size=32, backend="numpy").shape
(1, 1, 32, 32)
"""

from renderers._config import (
    METHODS,
    PRESETS,
    GAFConfig,
    LinePlotConfig,
    MTFConfig,
    RecurrenceConfig,
    TiViTConfig,
    make_config,
)
from renderers._render import BACKENDS, render, render_for_encoder, resolve_backend
from renderers._series import SeriesError

__all__ = [
    "BACKENDS",
    "METHODS",
    "PRESETS",
    "GAFConfig",
    "LinePlotConfig",
    "MTFConfig",
    "RecurrenceConfig",
    "SeriesError",
    "TiViTConfig",
    "make_config",
    "render",
    "render_for_encoder",
    "resolve_backend",
]

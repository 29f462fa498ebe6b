"""One CPU thread for the heads, so a benchmark number does not depend on the machine's core count.

The linear head is a float32 L-BFGS solve. On small, separable training sets (DiatomSizeReduction:
16 series, 384 features) the objective is flat near its minimum, and the last-bit differences that
a multi-threaded reduction makes (torch splits sums differently for 1, 2 or 16 threads) move the
point where L-BFGS stops enough to flip a borderline test series: the same seed gave 0.935 with
one thread and 0.938 with two. The cross-validated layer choice, one solver run, flips in the
same way on large sets. On one thread every kernel runs the same sums in the same order, so the
numbers are a function of the data, the settings and the seed only. Heads are small next to the
encoder, which keeps all its threads (only the head calls are wrapped).
"""

from __future__ import annotations

import contextlib
from typing import Iterator


def limit_threads(threads: int) -> None:
    """Cap torch's threads and the BLAS/OpenMP pools (threadpoolctl) for the rest of the process."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(int(threads))
    threadpool_limits(limits=int(threads))


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the block (cheap enough per Optuna trial): for code already inside a
    one-thread BLAS limit, where :func:`single_threaded`'s pool scan would cost more than the heads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one torch thread and one BLAS/OpenMP thread; restore the counts after."""
    from threadpoolctl import threadpool_limits

    with one_torch_thread(), threadpool_limits(limits=1):
        yield

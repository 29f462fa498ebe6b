"""Multi-device extraction: 2 CPU processes (DDP, gloo) give the same embeddings as one process.

DDP re-runs the calling script, so the 2-process run is a small script file run in a subprocess.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np

from tivit.embed import extract
from tivit.encoders import load_encoder

SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np

    from tivit.embed import extract
    from tivit.encoders import load_encoder


    if __name__ == "__main__":
        out, cache = sys.argv[1], sys.argv[2]
        X = np.random.default_rng(0).normal(size=(11, 2, 30)).astype(np.float32)
        enc = load_encoder("vit_small_patch16_224", weights="random", device="cpu", img_size=32, depth=2)
        kwargs = dict(layers="all", devices=2, chunk_size=3, batch_size=4, progress=False)
        import os

        import torch

        os.cpu_count = lambda: 16  # a bigger machine: the ranks took cpu_count / 2 = 8 threads each
        torch.set_num_threads(1)  # as --threads 1 asks: the ranks must not take more
        plain = extract(X, "tivit", enc, cache_dir=False, **kwargs)
        assert torch.get_num_threads() == 1, torch.get_num_threads()
        cached = extract(X, "tivit", enc, cache_dir=cache, **kwargs)  # second call reuses the process group
        import torch.distributed as dist

        rank = dist.get_rank()
        np.save(f"{out}.plain.rank{rank}.npy", plain.values)
        np.save(f"{out}.cached.rank{rank}.npy", cached.values)
    """
)


def test_two_processes_equal_one_and_fill_one_cache(tmp_path):
    script = tmp_path / "extract_ddp.py"
    script.write_text(SCRIPT)
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TIVIT_NO_PROGRESS": "1", "PYTHONWARNINGS": "ignore"}
    out = tmp_path / "emb"
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(cache)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for kind in ("plain", "cached"):  # every rank gets every chunk back
        np.testing.assert_array_equal(np.load(f"{out}.{kind}.rank0.npy"), np.load(f"{out}.{kind}.rank1.npy"))

    enc = load_encoder("vit_small_patch16_224", weights="random", device="cpu", img_size=32, depth=2)
    X = np.random.default_rng(0).normal(size=(11, 2, 30)).astype(np.float32)
    single = extract(X, "tivit", enc, layers="all", cache_dir=False, batch_size=4)
    plain = np.load(f"{out}.plain.rank0.npy")
    assert plain.shape == (11, 2, 2 * enc.width)
    np.testing.assert_allclose(plain, single.values, atol=1e-5, rtol=1e-5)

    # the ranks wrote their own chunks of one cache entry; a single-process call is now a pure hit
    assert len(list(cache.rglob("chunk-*.json"))) == 4  # 11 series in chunks of 3

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cache should have served every chunk")

    enc.forward_layers = no_encoding
    hit = extract(X, "tivit", enc, layers="all", cache_dir=cache, chunk_size=3)
    np.testing.assert_array_equal(hit.values, np.load(f"{out}.cached.rank0.npy"))


DIFFERENT_DATA = textwrap.dedent(
    """
    import os

    import numpy as np

    from tivit.embed import extract
    from tivit.encoders import load_encoder


    if __name__ == "__main__":
        seed = int(os.environ.get("LOCAL_RANK", "0"))  # as an unseeded shuffle would differ per run
        X = np.random.default_rng(seed).normal(size=(8, 1, 30)).astype(np.float32)
        enc = load_encoder("vit_small_patch16_224", weights="random", device="cpu", img_size=32, depth=2)
        extract(X, "tivit", enc, layers=[1], devices=2, chunk_size=2, cache_dir=False, progress=False)
    """
)


def test_ranks_with_different_data_are_refused(tmp_path):
    """Each rank re-runs the script: with data that differ between runs, rank 1's chunks of ITS data
    were merged into rank 0's result without a word."""
    script = tmp_path / "differ.py"
    script.write_text(DIFFERENT_DATA)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TIVIT_NO_PROGRESS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert "the DDP ranks hold different data" in proc.stderr, proc.stderr[-3000:]

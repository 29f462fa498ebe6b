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
        plain = extract(X, "tivit", enc, cache_dir=False, **kwargs)
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

"""Test-wide settings: offline hub, a private cache, few threads, fp32."""

import os

# A missing-weights lookup retries for about a minute without this; tests must never touch a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIVIT_NO_PROGRESS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test writes its embedding cache under its own temporary folder."""
    monkeypatch.setenv("TIVIT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def float64_default():
    """torch's default dtype set to float64 for one test (some users do): tivit stays float32."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)

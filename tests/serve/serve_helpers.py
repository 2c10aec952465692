"""Helpers of the server tests (a module of its own: test files never import conftest)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

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


def wait_idle(engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.scheduler.has_work() or engine.cache.seqs:
        if time.monotonic() > deadline:
            raise AssertionError(f"engine still busy: {len(engine.cache.seqs)} sequences hold KV cache")
        time.sleep(0.02)

"""`qwq serve` as users run it: a subprocess on a free port serving a checkpoint directory; bad input exits 2 with
one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from chat_model import ADD_ANSWER, ADD_QUESTION
from serve_helpers import free_port


def qwq(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qwq", "serve", *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


def test_serve_a_checkpoint_directory(chat_model_dir):
    import openai

    port = free_port()
    env = {**os.environ, "QWQ_API_KEY": ""}
    process = subprocess.Popen([sys.executable, "-m", "qwq", "serve", "-m", str(chat_model_dir), "--port", str(port),
                                "--max-batch-size", "4", "--threads", "1", "--served-model-name", "tiny-chat",
                                "--api-key", "k1", "--log-level", "warning"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.communicate()[1][-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k1", max_retries=0)
        reply = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": ADD_QUESTION}],
                                               temperature=0)
        assert reply.choices[0].message.content == ADD_ANSWER
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="nope", max_retries=0).models.list()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode in (0, 130), err[-2000:]  # uvicorn re-raises the SIGINT after a clean shutdown
    assert "Traceback" not in err and f"http://127.0.0.1:{port}/" in err


def test_missing_model_exits_2_with_one_line(tmp_path):
    result = qwq("-m", str(tmp_path / "nothing-here"), "--port", str(free_port()))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qwq serve: error:") and "nothing-here" in lines[0]


def test_busy_port_and_bad_numbers_exit_2(chat_model_dir):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        busy = qwq("-m", str(chat_model_dir), "--port", str(port))
    assert busy.returncode == 2 and f"127.0.0.1:{port}" in busy.stderr
    bad = qwq("-m", str(chat_model_dir), "--port", str(free_port()), "--max-batch-size", "0")
    assert bad.returncode == 2 and "--max-batch-size" in bad.stderr

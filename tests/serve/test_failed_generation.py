"""A request the engine fails on gets a clear error in OpenAI's shape (a 500 naming the failure, or an error event in
its stream), and the server goes on answering the next requests."""

from __future__ import annotations

import json

import httpx
import pytest

from chat_model import ADD_ANSWER, ADD_QUESTION
from serve_helpers import MODEL_ID, live_server

CHAT = "/v1/chat/completions"
POISON = "PoisonPill"


class Boom(RuntimeError):
    pass


@pytest.fixture(scope="module")
def poisoned_server(chat_model_dir):
    """A server whose model raises on any forward that sees the tokens of POISON."""
    import torch

    from qwq.engine import Engine
    from qwq.serve.app import create_app
    from qwq.serve.service import ServeContext

    engine = Engine.load(str(chat_model_dir), max_batch_size=4)
    marker = torch.tensor(engine.encode(POISON))
    poisoned = engine.render_chat([{"role": "user", "content": POISON}])
    assert any(poisoned[i:i + len(marker)] == marker.tolist() for i in range(len(poisoned)))

    def check(module, args):
        rows = args[0].unfold(1, len(marker), 1) if args[0].shape[1] >= len(marker) else args[0][:, :0, None]
        if (rows == marker).all(-1).any():
            raise Boom("poison seen by the model")

    engine.model.model.embed_tokens.register_forward_pre_hook(check)
    ctx = ServeContext.from_engine(engine, MODEL_ID)
    with live_server(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http, ctx


def body(content: str, **extra) -> dict:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": content}], "temperature": 0,
            "max_tokens": 32, **extra}


def test_a_failed_generation_is_a_clear_error_and_the_next_request_works(poisoned_server):
    http, ctx = poisoned_server
    failed = http.post(CHAT, json=body(POISON))
    assert failed.status_code == 500
    error = failed.json()["error"]
    assert error["code"] == "generation_failed" and error["type"] == "server_error"
    assert "Boom: poison seen by the model" in error["message"] and "Traceback" not in failed.text

    with http.stream("POST", CHAT, json=body(POISON, stream=True)) as stream:
        assert stream.status_code == 200
        lines = [line[len("data: "):] for line in stream.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    assert "poison seen by the model" in json.loads(lines[-2])["error"]["message"]

    answer = http.post(CHAT, json=body(ADD_QUESTION))
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == ADD_ANSWER
    assert http.get("/health").status_code == 200 and ctx.aengine.error is None
    assert not ctx.engine.cache.seqs

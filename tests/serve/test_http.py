"""Raw HTTP against the live server: error shapes and statuses for malformed requests, size limits, the API key,
health, metrics, the OpenAPI schema and the SSE wire format."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from chat_model import ADD_QUESTION
from serve_helpers import MODEL_ID, live_server

CHAT = "/v1/chat/completions"
GOOD = {"model": MODEL_ID, "messages": [{"role": "user", "content": ADD_QUESTION}], "max_tokens": 4}


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=60) as session:
        yield session


def assert_error(response, status, fragment=None, code=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    if fragment is not None:
        assert fragment in body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize("content, fragment", [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", None),
    (b'"just a string"', None),
    (b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "\\ud800"}]}', "Unicode"),
    (b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}', "temperature"),
    (b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "x"}], "n": 1e400}', "n"),
    (b'{"model": "tiny-chat", "messages": "hello"}', "messages"),
])
def test_malformed_bodies_are_400(http, content, fragment):
    response = http.post(CHAT, content=content, headers={"Content-Type": "application/json"})
    assert_error(response, 400, fragment)


def test_unknown_field_is_named(http):
    error = assert_error(http.post(CHAT, json={**GOOD, "temprature": 0.5}), 400, "temprature")
    assert error["param"] == "temprature" and error["type"] == "invalid_request_error"


def test_field_errors_name_the_parameter(http):
    error = assert_error(http.post(CHAT, json={**GOOD, "messages": [{"role": "user", "content": 5}]}), 400)
    assert error["param"].startswith("messages.0.content")


def test_unknown_routes_and_methods(http):
    assert_error(http.get("/v1/nothing"), 404)
    assert_error(http.get(CHAT), 405)
    assert_error(http.get("/v1/models/other-model"), 404, code="model_not_found")


def test_request_size_limits(http):
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    assert_error(http.post(CHAT, json=big), 413, code="request_too_large")

    def chunks():  # no Content-Length: counted as it streams in
        yield b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}]}'

    response = http.post(CHAT, content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(response, 413)


def test_completions_token_ids_outside_the_vocabulary(http, engine):
    body = {"model": MODEL_ID, "prompt": [1, 2, engine.vocab_limit + 5], "max_tokens": 2}
    assert_error(http.post("/v1/completions", json=body), 400, "vocabulary")
    assert_error(http.post("/v1/completions", json={"model": MODEL_ID, "prompt": [], "max_tokens": 2}), 400)


def test_sse_wire_format(http):
    with http.stream("POST", CHAT, json={**GOOD, "stream": True, "max_tokens": 6}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_health_and_metrics(http):
    health = http.get("/health").json()
    assert health == {"status": "ok", "model": MODEL_ID, "engine": "running"}
    http.post(CHAT, json=GOOD)
    text = http.get("/metrics").text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    assert values['qwq_requests_total{route="/v1/chat/completions",status="200"}'] >= 1
    assert values["qwq_generation_tokens_total"] >= 4
    assert values["qwq_prompt_tokens_total"] > 0
    assert values["qwq_time_to_first_token_seconds_count"] >= 1
    for name in ("qwq_queue_waiting_requests", "qwq_batch_size", "qwq_kv_cache_blocks_used",
                 "qwq_kv_cache_sequences", "qwq_generation_tokens_per_second"):
        assert name in values
    assert "# TYPE qwq_time_to_first_token_seconds histogram" in text


def test_openapi_schema_matches_the_answers(http):
    schema = http.get("/openapi.json").json()
    chat = schema["paths"][CHAT]["post"]
    assert "422" not in chat["responses"] and "400" in chat["responses"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    names = schema["components"]["schemas"]
    for name in ("ChatCompletionRequest", "ChatCompletion", "ChatCompletionChunk", "ErrorResponse", "Usage"):
        assert name in names
    assert names["ChatCompletionRequest"]["additionalProperties"] is False
    assert "reasoning_content" in names["ResponseMessage"]["properties"]
    assert "thinking_budget" in names["ChatCompletionRequest"]["properties"]


def test_api_key(serve_ctx):
    from qwq.serve.app import create_app

    secured = dataclasses.replace(serve_ctx, metrics=type(serve_ctx.metrics)())  # same engine, own counters
    with live_server(create_app(secured, api_key="s3cret"), lifespan="off") as url:
        import openai

        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        ok = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert ok.models.list().data[0].id == MODEL_ID
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200  # health and the page stay public
        assert httpx.get(f"{url}/").status_code == 200
        schema = httpx.get(f"{url}/openapi.json").json()
        assert schema["paths"][CHAT]["post"]["security"] == [{"bearer": []}]


def test_page_and_static_files(http):
    page = http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js">' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        response = http.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]

"""64 concurrent streaming clients (more than the engine's batch: the rest queue), every stream complete and
well-formed; clients that disconnect mid-stream (streamed or not) are aborted and leave no KV cache behind."""

from __future__ import annotations

import asyncio
import time

import httpx

from chat_model import ADD_QUESTION, HELLO_QUESTION, LONG_QUESTION
from serve_helpers import MODEL_ID, wait_idle
from qwq.serve.loadgen import parse_metrics, run_load, summarize, wait_for_idle

QUESTIONS = [ADD_QUESTION, HELLO_QUESTION, LONG_QUESTION, "Tell me something new."]


def body(question: str, max_tokens: int, **extra) -> dict:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "stream_options": {"include_usage": True}, **extra}


def no_eos(engine) -> dict:
    """A logit_bias that bans the end-of-turn tokens: the generation runs to max_tokens."""
    return {str(t): -100 for t in engine.eos_token_ids}


def metric(base_url: str, name: str) -> float:
    return parse_metrics(httpx.get(f"{base_url}/metrics").text).get(name, 0.0)


def test_64_concurrent_streams_are_complete_and_well_formed(base_url, idle_engine):
    bodies = [body(QUESTIONS[i % len(QUESTIONS)], 32, seed=i) for i in range(64)]
    results, wall = asyncio.run(run_load(base_url, bodies))
    summary = summarize(results, wall)
    assert summary["errors"] == 0, summary["first_errors"]
    assert summary["complete"] == 64
    for result in results:
        assert 0 < result.completion_tokens <= 32
        assert result.finish_reasons[0] in ("stop", "length")
        assert result.ttft_s is not None
    scripted = [r for i, r in enumerate(results) if i % len(QUESTIONS) == 0]
    assert all(r.text[0].startswith("Two plus three") for r in scripted)
    asyncio.run(wait_for_idle(base_url))


def test_disconnecting_half_mid_stream_leaks_no_slots(base_url, idle_engine):
    aborted_before = metric(base_url, "qwq_requests_aborted_total")
    long_run = no_eos(idle_engine)
    bodies, disconnect = [], {}
    for i in range(64):
        if i % 2:  # these would generate 300 tokens each; they hang up after 3 deltas
            bodies.append(body(QUESTIONS[i % 4], 300, logit_bias=long_run, seed=i))
            disconnect[i] = 3
        else:
            bodies.append(body(QUESTIONS[i % 4], 24, seed=i))
    results, wall = asyncio.run(run_load(base_url, bodies, disconnect_after=disconnect))
    summary = summarize(results, wall)
    assert summary["errors"] == 0, summary["first_errors"]
    assert summary["disconnected"] == 32 and summary["complete"] == 32
    after = asyncio.run(wait_for_idle(base_url, timeout_s=60))
    assert after["qwq_kv_cache_sequences"] == 0 and after["qwq_kv_cache_blocks_used"] == 0
    assert after["qwq_requests_aborted_total"] - aborted_before == 32
    assert not idle_engine.cache.seqs and not idle_engine.scheduler.has_work()


def test_non_streamed_request_is_aborted_when_the_client_leaves(base_url, idle_engine):
    aborted_before = metric(base_url, "qwq_requests_aborted_total")
    request = body(LONG_QUESTION, 400, n=16, logit_bias=no_eos(idle_engine))  # 6,400 tokens: seconds of work
    request.pop("stream_options")
    start = time.monotonic()
    try:
        httpx.post(f"{base_url}/v1/chat/completions", json=request, timeout=0.5)
    except httpx.TimeoutException:
        pass
    else:
        raise AssertionError("the request finished before the client gave up; make it longer")
    wait_idle(idle_engine, timeout=20)
    assert metric(base_url, "qwq_requests_aborted_total") - aborted_before == 1
    assert not idle_engine.scheduler.requests  # nothing left in the scheduler
    assert time.monotonic() - start < 20

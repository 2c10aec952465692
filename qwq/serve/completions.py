"""POST /v1/completions: raw text in, raw text out (no chat template, no reasoning split), as OpenAI's legacy API.

`prompt` is a text, a list of texts, token ids, or a list of token-id lists; each prompt gets `n` choices, numbered
prompt-major (choice index = prompt index * n + sample). Several prompts run concurrently in the engine's batch.
`logprobs` (0..5) returns each token's logprob and that many alternatives (not with `stream`).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any, AsyncIterator

from qwq.serve.errors import bad_request
from qwq.serve.prepare import check_engine_fit, logit_bias_controller, max_new_tokens, sampling_params
from qwq.serve.protocol import CompletionRequest
from qwq.serve.service import ServeContext, run_watching_disconnect, sse, stream_error, token_text

MAX_PROMPTS = 64


def _prompts(ctx: ServeContext, request: CompletionRequest) -> list[list[int]]:
    prompt = request.prompt
    if isinstance(prompt, str):
        texts = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    elif prompt and all(isinstance(p, list) for p in prompt):
        if len(prompt) > MAX_PROMPTS:
            raise bad_request(f"at most {MAX_PROMPTS} prompts per request, got {len(prompt)}", "prompt")
        return [list(p) for p in prompt]
    else:
        texts = list(prompt)
    if len(texts) > MAX_PROMPTS:
        raise bad_request(f"at most {MAX_PROMPTS} prompts per request, got {len(texts)}", "prompt")
    out = []
    for text in texts:
        if not text:
            raise bad_request("a prompt is empty", "prompt")
        out.append(ctx.tokenizer.encode(text))
    return out


def _prepare(ctx: ServeContext, request: CompletionRequest):
    ctx.check_model(request.model)
    ctx.check_alive()
    if request.stream and request.logprobs is not None:
        raise bad_request("logprobs is not supported with stream=true on /v1/completions", "logprobs")
    prompts = _prompts(ctx, request)
    limit = ctx.engine.vocab_limit
    for ids in prompts:
        bad = [t for t in ids if not 0 <= t < limit]
        if bad:
            raise bad_request(f"prompt token id {bad[0]} is outside the vocabulary (0..{limit - 1})", "prompt")
    params = []
    for ids in prompts:
        max_new = max_new_tokens(request.max_tokens, len(ids), ctx.max_model_len, ctx.default_max_tokens)
        p = sampling_params(request, ctx.sampling_defaults, max_new_tokens=max_new,
                            logprobs=request.logprobs is not None, top_logprobs=request.logprobs or 0)
        check_engine_fit(ctx.engine, ids, p)
        params.append(p)
    bias = logit_bias_controller(request, limit)
    return prompts, params, [bias] if bias is not None else []


async def _merged(ctx: ServeContext, ids: list[str], prompts: list, params: list, controllers: list
                  ) -> AsyncIterator[tuple[int, Any]]:
    """Token events of several engine requests as they come: (prompt index, event)."""
    if len(prompts) == 1:
        async with aclosing(ctx.events(ids[0], prompts[0], params[0], controllers)) as events:
            async for event in events:
                yield 0, event
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(k: int) -> None:
        try:
            async with aclosing(ctx.events(ids[k], prompts[k], params[k], controllers)) as events:
                async for event in events:
                    queue.put_nowait((k, event))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            queue.put_nowait((k, exc))
        finally:
            queue.put_nowait((k, done))

    tasks = [asyncio.ensure_future(pump(k)) for k in range(len(prompts))]
    try:
        open_count = len(tasks)
        while open_count:
            k, item = await queue.get()
            if item is done:
                open_count -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield k, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _usage(prompts: list, tokens: int) -> dict:
    prompt_tokens = sum(len(p) for p in prompts)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens}


async def completion(ctx: ServeContext, request: CompletionRequest, http_request: Any):
    prompts, params, controllers = _prepare(ctx, request)
    base_id = ctx.new_id("cmpl")
    ids = [f"{base_id}-{k}" for k in range(len(prompts))]
    if request.stream:
        return stream_completion(ctx, request, base_id, ids, prompts, params, controllers)
    return await run_watching_disconnect(http_request, collect_completion(ctx, request, base_id, ids, prompts,
                                                                          params, controllers))


async def collect_completion(ctx: ServeContext, request: CompletionRequest, base_id: str, ids: list[str],
                             prompts: list, params: list, controllers: list) -> dict:
    n = request.n
    texts = [[[] for _ in range(n)] for _ in prompts]
    finish: dict[tuple[int, int], str | None] = {}
    tokens = 0
    start = time.perf_counter()
    first = None
    async with aclosing(_merged(ctx, ids, prompts, params, controllers)) as events:
        async for k, event in events:
            if event.token_id is not None:
                tokens += 1
                if first is None:
                    first = time.perf_counter()
                    ctx.metrics.ttft.observe(first - start)
            texts[k][event.sample_index].append(event.text_delta)
            if event.finished:
                finish[(k, event.sample_index)] = event.finish_reason
    ctx.metrics.latency.observe(time.perf_counter() - start)
    choices = []
    for k, prompt in enumerate(prompts):
        result = ctx.result(ids[k])
        echo = ctx.tokenizer.decode(prompt) if request.echo else ""
        for j in range(n):
            sample = result.samples[j] if result is not None else None
            choice = {"index": k * n + j, "text": echo + "".join(texts[k][j]),
                      "finish_reason": finish.get((k, j)), "logprobs": None,
                      "stop_reason": sample.stop_reason if sample is not None else None}
            if request.logprobs is not None and sample is not None:
                choice["logprobs"] = _completion_logprobs(ctx, sample, len(echo))
            choices.append(choice)
    return {"id": base_id, "object": "text_completion", "created": int(time.time()), "model": ctx.model_id,
            "choices": choices, "usage": _usage(prompts, tokens)}


def _completion_logprobs(ctx: ServeContext, sample: Any, offset: int) -> dict:
    tokens, logprobs, tops, offsets = [], [], [], []
    position = offset
    for k, token_id in enumerate(sample.token_ids):
        text, _ = token_text(ctx.tokenizer, token_id)
        tokens.append(text)
        offsets.append(position)
        position += len(text)
        logprobs.append(sample.logprobs[k] if sample.logprobs and k < len(sample.logprobs) else None)
        alternatives = sample.top_logprobs[k] if sample.top_logprobs and k < len(sample.top_logprobs) else None
        tops.append({token_text(ctx.tokenizer, t)[0]: lp for t, lp in alternatives} if alternatives else None)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}


async def stream_completion(ctx: ServeContext, request: CompletionRequest, base_id: str, ids: list[str],
                            prompts: list, params: list, controllers: list) -> AsyncIterator[str]:
    created = int(time.time())
    n = request.n
    include_usage = bool(request.stream_options and request.stream_options.include_usage)

    def chunk(index: int, text: str, finish: str | None = None) -> str:
        return sse({"id": base_id, "object": "text_completion", "created": created, "model": ctx.model_id,
                    "choices": [{"index": index, "text": text, "finish_reason": finish, "logprobs": None}]})

    if request.echo:
        for k, prompt in enumerate(prompts):
            for j in range(n):
                yield chunk(k * n + j, ctx.tokenizer.decode(prompt))
    tokens = 0
    try:
        async with aclosing(_merged(ctx, ids, prompts, params, controllers)) as events:
            async for k, event in events:
                tokens += event.token_id is not None
                if event.text_delta or event.finished:
                    yield chunk(k * n + event.sample_index, event.text_delta,
                                event.finish_reason if event.finished else None)
    except Exception as exc:
        yield sse(stream_error(exc))
        yield sse("[DONE]")
        return
    if include_usage:
        yield sse({"id": base_id, "object": "text_completion", "created": created, "model": ctx.model_id,
                   "choices": [], "usage": _usage(prompts, tokens)})
    yield sse("[DONE]")

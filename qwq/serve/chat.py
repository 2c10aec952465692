"""POST /v1/chat/completions: render -> engine -> stream router -> JSON or server-sent events.

Streaming sends, per choice, a first chunk with the role, then one chunk per delta (`reasoning_content`, `content`
or a complete `tool_calls` entry) as the tokens arrive, a final chunk with `finish_reason`, an optional usage chunk
(`stream_options.include_usage`) and `data: [DONE]`. When the client disconnects, Starlette cancels the body
iterator; the `aclosing` chain below then closes the engine stream at once, which aborts the request and frees its
KV cache. With a guard (`--guard`), the input is checked before generating and the output while it streams; a
refusal ends the choice with `finish_reason: "content_filter"`.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import Any, AsyncIterator

from qwq.serve.prepare import Prepared, prepare_chat
from qwq.serve.protocol import ChatCompletionRequest
from qwq.serve.service import ServeContext, run_watching_disconnect, sse, stream_error, token_text
from qwq.serve.stream import ChoiceRouter


def _usage(prompt_tokens: int, routers: list[ChoiceRouter], cached: int = 0) -> dict:
    completion = sum(r.state.tokens for r in routers)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": sum(r.state.reasoning_tokens for r in routers)},
            "prompt_tokens_details": {"cached_tokens": cached}}


def _logprob_entries(ctx: ServeContext, token_logprobs: list, tops: list | None = None) -> list[dict]:
    entries = []
    for k, item in enumerate(token_logprobs):
        text, raw = token_text(ctx.tokenizer, item.token_id)
        entry = {"token": text, "logprob": item.logprob if item.logprob is not None else float("-inf"),
                 "bytes": raw, "top_logprobs": []}
        if tops is not None and k < len(tops) and tops[k]:
            for token_id, logprob in tops[k]:
                t_text, t_raw = token_text(ctx.tokenizer, token_id)
                entry["top_logprobs"].append({"token": t_text, "logprob": logprob, "bytes": t_raw})
        entries.append(entry)
    return entries


class _OutputGuard:
    """Per-choice streaming output check (qwq.safety OutputStream); None when the server runs without a guard."""

    def __init__(self, ctx: ServeContext, prep: Prepared) -> None:
        from qwq.safety.guard import OutputStream

        self.streams = [OutputStream(ctx.guard, in_thinking=prep.starts_in_reasoning) for _ in range(prep.params.n)]

    def feed(self, index: int, text: str):
        return self.streams[index].feed(text) if text else None

    def finish(self, index: int):
        verdict = self.streams[index].finish()
        return verdict if verdict.refused else None


def _refusal(verdict: Any) -> str:
    from qwq.safety.guard import refusal_message

    return refusal_message(verdict)


def input_refusal(ctx: ServeContext, prep: Prepared) -> str | None:
    if ctx.guard is None:
        return None
    verdict = ctx.guard.check_input(prep.messages)
    return _refusal(verdict) if verdict.refused else None


async def chat_completion(ctx: ServeContext, request: ChatCompletionRequest, http_request: Any):
    """The JSON body of a non-streamed completion, or an async iterator of SSE strings when `stream` is set."""
    ctx.check_model(request.model)
    ctx.check_alive()
    prep = prepare_chat(request, ctx)
    request_id = ctx.new_id("chatcmpl")
    refusal = input_refusal(ctx, prep)
    if request.stream:
        return stream_chat(ctx, request, prep, request_id, refusal)
    if prep.self_consistency is not None and refusal is None:
        return await run_watching_disconnect(http_request, collect_voted(ctx, prep, request_id))
    return await run_watching_disconnect(http_request, collect_chat(ctx, request, prep, request_id, refusal))


def _routers(ctx: ServeContext, prep: Prepared) -> list[ChoiceRouter]:
    return [ChoiceRouter(i, starts_in_reasoning=prep.starts_in_reasoning, parse_tools=prep.parse_tools,
                         think_ids=ctx.engine.think_token_ids) for i in range(prep.params.n)]


def _refused_body(ctx: ServeContext, request_id: str, prep: Prepared, text: str) -> dict:
    choices = [{"index": i, "message": {"role": "assistant", "content": text, "refusal": text},
                "finish_reason": "content_filter", "logprobs": None} for i in range(prep.params.n)]
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": ctx.model_id,
            "choices": choices, "usage": _usage(len(prep.prompt_ids), [])}


async def collect_chat(ctx: ServeContext, request: ChatCompletionRequest, prep: Prepared, request_id: str,
                       refusal: str | None) -> dict:
    if refusal is not None:
        return _refused_body(ctx, request_id, prep, refusal)
    routers = _routers(ctx, prep)
    start, first = time.perf_counter(), None
    async with aclosing(ctx.events(request_id, prep.prompt_ids, prep.params, prep.controllers)) as events:
        async for event in events:
            if first is None and event.token_id is not None:
                first = time.perf_counter()
                ctx.metrics.ttft.observe(first - start)
            router = routers[event.sample_index]
            router.feed(event.token_id, event.text_delta, event.logprob)
            if event.finished:
                router.finish(event.finish_reason)
    ctx.metrics.latency.observe(time.perf_counter() - start)
    result = ctx.result(request_id)
    choices = []
    for router in routers:
        sample = result.samples[router.index] if result is not None else None
        message = router.message()
        finish = router.state.finish_reason
        if ctx.guard is not None:
            message, finish = _checked_output(ctx, message, finish)
        choice = {"index": router.index, "message": message, "finish_reason": finish, "logprobs": None,
                  "stop_reason": sample.stop_reason if sample is not None else None}
        if request.logprobs:
            tops = sample.top_logprobs if sample is not None else None
            choice["logprobs"] = {"content": _logprob_entries(ctx, router.state.logprobs, tops)}
        choices.append(choice)
    ctx.metrics.reasoning_tokens += sum(r.state.reasoning_tokens for r in routers)
    cached = result.timings.cached_prompt_tokens if result is not None else 0
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": ctx.model_id,
            "choices": choices, "usage": _usage(len(prep.prompt_ids), routers, cached)}


class _RoutedEngine:
    """What self_consistency_async drives: the server's event stream, routed per sample on the way (so usage and
    the winner's message come out exactly as for any other completion)."""

    def __init__(self, ctx: ServeContext, routers: list[ChoiceRouter]) -> None:
        self.ctx, self.routers, self.engine = ctx, routers, ctx.engine

    async def generate(self, prompt_ids: list[int], params: Any, request_id: str, controllers: Any = ()):
        async with aclosing(self.ctx.events(request_id, prompt_ids, params, controllers)) as events:
            async for event in events:
                router = self.routers[event.sample_index]
                router.feed(event.token_id, event.text_delta, event.logprob)
                if event.finished:
                    router.finish(event.finish_reason)
                yield event


async def collect_voted(ctx: ServeContext, prep: Prepared, request_id: str) -> dict:
    """self_consistency: n samples, majority vote over their final answers (stopping early once decided); the
    response's one choice is the winner's most confident sample, `self_consistency` holds the vote table."""
    from qwq.engine.self_consistency import self_consistency_async

    routers = _routers(ctx, prep)
    start = time.perf_counter()
    result = await self_consistency_async(_RoutedEngine(ctx, routers), prep.prompt_ids, prep.params,
                                          prep.self_consistency, request_id, prep.controllers)
    ctx.metrics.latency.observe(time.perf_counter() - start)
    for router in routers:
        if not router.finished:
            router.finish("abort")
    winner = routers[result.winner_index if result.winner_index is not None else 0]
    message, finish = winner.message(), winner.state.finish_reason
    if ctx.guard is not None:
        message, finish = _checked_output(ctx, message, finish)
    ctx.metrics.reasoning_tokens += sum(r.state.reasoning_tokens for r in routers)
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": ctx.model_id,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": _usage(len(prep.prompt_ids), routers), "self_consistency": result.to_dict()}


def _checked_output(ctx: ServeContext, message: dict, finish: str) -> tuple[dict, str]:
    verdict = ctx.guard.check_output(message.get("content") or "", reasoning=message.get("reasoning_content"))
    if verdict.refused:
        text = _refusal(verdict)
        return {"role": "assistant", "content": text, "refusal": text}, "content_filter"
    if verdict.action == "redact":
        details = verdict.details
        message = dict(message)
        if details.get("answer") is not None and message.get("content") is not None:
            message["content"] = details["answer"]
        if details.get("reasoning") is not None and message.get("reasoning_content") is not None:
            message["reasoning_content"] = details["reasoning"]
    return message, finish


async def stream_chat(ctx: ServeContext, request: ChatCompletionRequest, prep: Prepared, request_id: str,
                      refusal: str | None) -> AsyncIterator[str]:
    created = int(time.time())
    include_usage = bool(request.stream_options and request.stream_options.include_usage)

    def chunk(index: int, delta: dict, finish: str | None = None, logprobs: list | None = None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None if logprobs is None else {"content": logprobs},
                  "finish_reason": finish}
        body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": ctx.model_id,
                "choices": [choice]}
        if include_usage:
            body["usage"] = None
        return sse(body)

    for i in range(prep.params.n):
        yield chunk(i, {"role": "assistant", "content": ""})
    if refusal is not None:
        for i in range(prep.params.n):
            yield chunk(i, {"content": refusal, "refusal": refusal})
            yield chunk(i, {}, "content_filter")
        if include_usage:
            yield sse({"id": request_id, "object": "chat.completion.chunk", "created": created,
                       "model": ctx.model_id, "choices": [], "usage": _usage(len(prep.prompt_ids), [])})
        yield sse("[DONE]")
        return

    routers = _routers(ctx, prep)
    guard = _OutputGuard(ctx, prep) if ctx.guard is not None else None
    pending: list[list] = [[] for _ in routers]  # logprobs not yet attached to a chunk
    start, first = time.perf_counter(), None
    try:
        async with aclosing(ctx.events(request_id, prep.prompt_ids, prep.params, prep.controllers)) as events:
            async for event in events:
                if first is None and event.token_id is not None:
                    first = time.perf_counter()
                    ctx.metrics.ttft.observe(first - start)
                index = event.sample_index
                router = routers[index]
                if router.finished:
                    continue
                deltas = router.feed(event.token_id, event.text_delta, event.logprob)
                if request.logprobs and event.token_id is not None:
                    pending[index].extend(_logprob_entries(ctx, router.state.logprobs[-1:]))
                verdict = guard.feed(index, event.text_delta) if guard is not None else None
                for delta in deltas:
                    yield chunk(index, delta, logprobs=_take(pending, index) if request.logprobs else None)
                if verdict is not None:
                    router.finish("content_filter")
                    text = _refusal(verdict)
                    yield chunk(index, {"content": "\n\n" + text, "refusal": text}, "content_filter")
                    if all(r.finished for r in routers):
                        break
                    continue
                if event.finished:
                    for delta in router.finish(event.finish_reason):
                        yield chunk(index, delta)
                    final = guard.finish(index) if guard is not None else None
                    if final is not None:  # the whole text is refused: what was streamed cannot be unsent
                        router.state.finish_reason = "content_filter"
                        text = _refusal(final)
                        yield chunk(index, {"content": "\n\n" + text, "refusal": text})
                    yield chunk(index, {}, router.state.finish_reason,
                                logprobs=_take(pending, index) if request.logprobs and pending[index] else None)
    except Exception as exc:  # generation failed mid-stream: tell the client in the stream's own shape
        yield sse(stream_error(exc))
        yield sse("[DONE]")
        return
    ctx.metrics.latency.observe(time.perf_counter() - start)
    ctx.metrics.reasoning_tokens += sum(r.state.reasoning_tokens for r in routers)
    if include_usage:
        result = ctx.result(request_id)
        cached = result.timings.cached_prompt_tokens if result is not None else 0
        yield sse({"id": request_id, "object": "chat.completion.chunk", "created": created, "model": ctx.model_id,
                   "choices": [], "usage": _usage(len(prep.prompt_ids), routers, cached)})
    yield sse("[DONE]")


def _take(pending: list[list], index: int) -> list:
    items, pending[index] = pending[index], []
    return items

"""Evaluate any OpenAI-compatible chat endpoint (`qwq serve`, vLLM, SGLang, llama.cpp server...).

One request per sample, `n` = 1, sent concurrently up to a limit. Transport errors, HTTP 429 and 5xx are retried
with exponential back-off and jitter (a server's Retry-After is honoured); other 4xx answers are not retried.
A sample that still fails is reported with its error and left out of the results, so the next run retries it.

Reasoning: a server that separates the thinking returns it in `message.reasoning_content` (or `reasoning`). The
completion is then rebuilt as `<thinking>\\n</think>\\n\\n<content>`, read as starting inside the thinking; a
missing `content` (None) means the thinking never closed. Without a reasoning field the content is taken as it
is: it starts inside the thinking if it contains `</think>` (a raw QwQ server), unless `starts_in_reasoning` is
set explicitly (use True for a raw QwQ server whose outputs may be cut before `</think>`).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Sequence

from qwq.eval.backends import Backend, Completion, OnResult, Request, SamplingConfig, estimate_token_split
from qwq.utils.errors import UsageError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def completion_from_message(message: dict, finish_reason: str | None, usage: dict | None,
                            starts_in_reasoning: bool | None = None) -> Completion:
    """A chat-completion choice -> Completion (without key and latency)."""
    from qwq.tokenizer.reasoning import split_reasoning

    reasoning = message.get("reasoning_content")
    if reasoning is None:
        reasoning = message.get("reasoning")
    content = message.get("content")
    if reasoning:
        starts = True
        text = str(reasoning) if content is None else f"{reasoning}\n</think>\n\n{content}"
    else:
        text = "" if content is None else str(content)
        starts = ("</think>" in text) if starts_in_reasoning is None else bool(starts_in_reasoning)
    usage = usage or {}
    prompt_tokens = usage.get("prompt_tokens")
    total = usage.get("completion_tokens")
    details = usage.get("completion_tokens_details") or {}
    split = split_reasoning(text, starts_in_reasoning=starts)
    if total is None:
        return Completion("", text, starts, finish_reason or "", prompt_tokens, None, None, None, "missing")
    if details.get("reasoning_tokens") is not None:
        reasoning_tokens = int(details["reasoning_tokens"])
        return Completion("", text, starts, finish_reason or "", prompt_tokens, int(total), reasoning_tokens,
                          int(total) - reasoning_tokens, "server")
    r, a = estimate_token_split(int(total), split.reasoning, split.answer)
    return Completion("", text, starts, finish_reason or "", prompt_tokens, int(total), r, a, "estimated")


class EndpointBackend(Backend):
    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None, concurrency: int = 16,
                 max_retries: int = 5, backoff_s: float = 1.0, max_backoff_s: float = 60.0, timeout_s: float = 3600.0,
                 starts_in_reasoning: bool | None = None, send_extra_sampling: bool = True):
        if concurrency < 1:
            raise UsageError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise UsageError(f"retries must be >= 0, got {max_retries}")
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--endpoint must be an http(s) URL, got {url!r}")
        self.base = url if url.endswith("/v1") else f"{url}/v1"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff_s, self.max_backoff_s, self.timeout_s = backoff_s, max_backoff_s, timeout_s
        self.starts_in_reasoning = starts_in_reasoning
        self.send_extra_sampling = send_extra_sampling  # top_k / min_p: accepted by vLLM, SGLang, llama.cpp, qwq

    def describe(self) -> dict:
        if not self.model:
            self.model = self._first_model()
        return {"backend": "endpoint", "url": self.base, "model": self.model}

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def body(self, request: Request, sampling: SamplingConfig) -> dict:
        body = {"model": self.model, "messages": request.messages, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "max_tokens": sampling.max_tokens, "seed": request.seed, "n": 1}
        if sampling.presence_penalty:
            body["presence_penalty"] = sampling.presence_penalty
        if self.send_extra_sampling:
            body["top_k"] = sampling.top_k if sampling.top_k > 0 else -1
            body["min_p"] = sampling.min_p
        if sampling.thinking_budget is not None:
            body["thinking_budget"] = sampling.thinking_budget
        return body

    def _first_model(self) -> str:
        """The first model the server lists (asked once, before anything is generated)."""
        import httpx

        try:
            response = httpx.get(f"{self.base}/models", headers=self._headers(), timeout=30)
            response.raise_for_status()
            models = response.json().get("data") or []
        except (httpx.HTTPError, ValueError) as exc:
            raise UsageError(f"cannot list models at {self.base}/models ({type(exc).__name__}: {exc}); is the server "
                             "up? (or pass --endpoint-model NAME)") from None
        if not models or "id" not in models[0]:
            raise UsageError(f"{self.base}/models lists no model; pass --endpoint-model NAME")
        return str(models[0]["id"])

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass
        return min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)

    async def _one(self, client, semaphore: asyncio.Semaphore, request: Request, sampling: SamplingConfig) -> Completion:
        import httpx

        body = self.body(request, sampling)
        error = ""
        async with semaphore:
            start = time.perf_counter()
            for attempt in range(self.max_retries + 1):
                retry_after = None
                try:
                    response = await client.post(f"{self.base}/chat/completions", json=body, headers=self._headers())
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        try:
                            data = response.json()
                            choice = data["choices"][0]
                            done = completion_from_message(choice.get("message") or {}, choice.get("finish_reason"),
                                                           data.get("usage"), self.starts_in_reasoning)
                        except (ValueError, KeyError, IndexError, TypeError) as exc:
                            error = f"malformed response ({type(exc).__name__}: {exc}): {response.text[:200]}"
                        else:
                            done.key, done.latency_s = request.key, time.perf_counter() - start
                            return done
                    else:
                        error = f"HTTP {response.status_code}: {response.text[:300]}"
                        if response.status_code not in RETRY_STATUS:
                            break
                        retry_after = response.headers.get("retry-after")
                if attempt < self.max_retries:
                    await asyncio.sleep(self._delay(attempt, retry_after))
            return Completion(request.key, error=error or "failed", latency_s=time.perf_counter() - start)

    async def _run(self, requests: Sequence[Request], sampling: SamplingConfig, on_result: OnResult) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        if not self.model:
            self.model = self._first_model()
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            semaphore = asyncio.Semaphore(self.concurrency)
            tasks = [asyncio.create_task(self._one(client, semaphore, r, sampling)) for r in requests]
            try:
                for finished in asyncio.as_completed(tasks):
                    on_result(await finished)
            finally:
                for task in tasks:
                    task.cancel()

    def generate(self, requests: Sequence[Request], sampling: SamplingConfig, on_result: OnResult) -> None:
        if requests:
            asyncio.run(self._run(requests, sampling, on_result))

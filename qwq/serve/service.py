"""What every route shares: the async engine, the served model's identity and limits, metrics, the optional guard,
and the bookkeeping of requests in flight (so shutdown can abort them and a disconnect frees its cache)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Sequence

from qwq.serve.errors import SERVER_ERROR, APIError
from qwq.serve.metrics import Metrics

DEFAULT_MAX_TOKENS = 32768  # QwQ's card


@dataclass
class ServeContext:
    aengine: Any  # qwq.engine.AsyncEngine
    model_id: str
    tokenizer: Any
    template: Any
    max_model_len: int
    default_max_tokens: int = DEFAULT_MAX_TOKENS
    sampling_defaults: dict = field(default_factory=dict)
    guard: Any = None  # qwq.safety.guard.Guard
    metrics: Metrics = field(default_factory=Metrics)
    created: int = field(default_factory=lambda: int(time.time()))
    active: set = field(default_factory=set)

    @classmethod
    def from_engine(cls, engine: Any, model_id: str, **kwargs: Any) -> "ServeContext":
        from qwq.engine.async_engine import AsyncEngine

        if engine.tokenizer is None or engine.chat_template is None:
            from qwq.utils.errors import UsageError

            raise UsageError("the server needs a model with a tokenizer and a chat template")
        defaults = {k: v for k, v in (getattr(engine.config, "generation", None) or {}).items()
                    if k in ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty")}
        return cls(AsyncEngine(engine), model_id, engine.tokenizer, engine.chat_template, engine.max_model_len,
                   sampling_defaults=defaults, **kwargs)

    @property
    def engine(self) -> Any:
        return self.aengine.engine

    def check_model(self, name: str) -> None:
        if name != self.model_id:
            raise APIError(404, f"The model {name!r} does not exist (this server serves {self.model_id!r})",
                           "invalid_request_error", "model", "model_not_found")

    def check_alive(self) -> None:
        if self.aengine.error is not None:
            raise APIError(503, f"the engine stopped: {type(self.aengine.error).__name__}: {self.aengine.error}",
                           SERVER_ERROR, code="engine_stopped")

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex}"

    async def events(self, request_id: str, prompt_ids: list[int], params: Any, controllers: Sequence = ()
                     ) -> AsyncIterator[Any]:
        """The engine's token events for one request; leaving early (disconnect, guard) aborts it."""
        self.active.add(request_id)
        self.metrics.in_flight += 1
        self.metrics.prompt_tokens += len(prompt_ids)
        finished = False
        try:
            async with aclosing(self.aengine.generate(prompt_ids, params, request_id, controllers)) as stream:
                async for event in stream:
                    if event.finish_reason == "error":  # the engine failed on this request (and only on it)
                        raise APIError(500, f"generation failed: {event.error}", SERVER_ERROR,
                                       code="generation_failed")
                    if event.token_id is not None:
                        self.metrics.tokens_generated(1)
                    yield event
            finished = True
        finally:
            self.active.discard(request_id)
            self.metrics.in_flight -= 1
            if not finished:
                self.metrics.aborted += 1

    def result(self, request_id: str) -> Any:
        try:
            return self.aengine.result(request_id)
        except KeyError:
            return None

    async def abort_all(self) -> None:
        for request_id in list(self.active):
            await self.aengine.abort(request_id)


def stream_error(exc: Exception) -> dict:
    """The error event that ends a stream whose generation failed (the status line went out long ago)."""
    if isinstance(exc, APIError):
        return exc.body()
    return {"error": {"message": f"generation failed: {type(exc).__name__}: {exc}", "type": SERVER_ERROR,
                      "param": None, "code": "engine_error"}}


def sse(data: dict | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n"


async def run_watching_disconnect(request: Any, awaitable: Any, poll_s: float = 0.25) -> Any:
    """Run a non-streamed generation, cancelling it (so the engine aborts it) if the client goes away."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                raise ClientGone()
    finally:
        if not task.done():
            task.cancel()


class ClientGone(Exception):
    """The client disconnected before its response was ready."""


def token_text(tokenizer: Any, token_id: int) -> tuple[str, list[int]]:
    raw = tokenizer.token_bytes(token_id)
    return raw.decode("utf-8", errors="replace"), list(raw)

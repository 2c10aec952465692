"""Where an agent's completions come from: the local engine, any OpenAI-compatible endpoint, or a script.

Every backend returns a `Completion` whose `text` is what the model wrote in QwQ's format (thinking, `</think>`,
answer with `<tool_call>` blocks). An endpoint that returns native `tool_calls` / `reasoning_content` fields is
folded back into that format, so the loop parses one format whatever served it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from qwq.tokenizer.toolcall import format_tool_call
from qwq.utils.errors import QwqError, UsageError


class BackendError(QwqError):
    """A completion could not be obtained (endpoint down, bad response); names the backend and the cause."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    starts_in_reasoning: bool = True
    elapsed_s: float = 0.0
    raw: dict = field(default_factory=dict)


class Backend(Protocol):
    def complete(self, messages: Sequence[dict], tools: Sequence[dict] | None = None, *,
                 max_tokens: int | None = None) -> Completion: ...


class ScriptedBackend:
    """Replays fixed replies in order (strings, or callables of the messages), for tests and demos. Records every
    request it got in `requests`."""

    def __init__(self, replies: Sequence[str | Callable[[list[dict]], str]], *, tokens_per_char: float = 0.25,
                 starts_in_reasoning: bool = True):
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.tokens_per_char = tokens_per_char
        self.starts_in_reasoning = starts_in_reasoning

    def complete(self, messages, tools=None, *, max_tokens=None) -> Completion:
        self.requests.append({"messages": [dict(m) for m in messages], "tools": list(tools or []),
                              "max_tokens": max_tokens})
        if not self.replies:
            raise BackendError("scripted backend: no replies left")
        reply = self.replies.pop(0)
        text = reply(list(messages)) if callable(reply) else reply
        tokens = max(1, int(len(text) * self.tokens_per_char))
        finish = "stop"
        if max_tokens is not None and tokens > max_tokens:
            text, tokens, finish = text[: int(max_tokens / self.tokens_per_char)], max_tokens, "length"
        return Completion(text, 0, tokens, finish, self.starts_in_reasoning)


class EngineBackend:
    """The local engine (qwq.engine): renders the chat with tools through the model's template and samples."""

    def __init__(self, engine: Any, params: Any = None, **param_overrides):
        self.engine = engine
        self.params = params
        self.param_overrides = param_overrides

    def _params(self, max_tokens: int | None):
        from dataclasses import replace

        from qwq.engine.sampling import SamplingParams

        params = self.params or SamplingParams(**self.param_overrides)
        if max_tokens is not None and max_tokens < params.max_new_tokens:
            params = replace(params, max_new_tokens=max_tokens)
        return params

    def complete(self, messages, tools=None, *, max_tokens=None) -> Completion:
        t0 = time.perf_counter()
        out = self.engine.chat(list(messages), self._params(max_tokens), tools=list(tools) if tools else None)
        sample = out[0] if isinstance(out, (list, tuple)) else getattr(out, "samples", [out])[0] \
            if hasattr(out, "samples") else out
        text = getattr(sample, "raw_text", None) or getattr(sample, "text", None)
        if text is None:
            raise BackendError(f"engine result has no text: {type(sample).__name__}")
        prompt_ids = getattr(sample, "prompt_token_ids", None) or getattr(out, "prompt_token_ids", None) or []
        token_ids = getattr(sample, "token_ids", None) or []
        return Completion(text, len(prompt_ids), len(token_ids) or max(1, len(text) // 4),
                          str(getattr(sample, "finish_reason", "stop")), True, time.perf_counter() - t0)


class OpenAIBackend:
    """Any OpenAI-compatible `/chat/completions` endpoint, through httpx."""

    def __init__(self, base_url: str, model: str = "default", *, api_key: str | None = None,
                 temperature: float = 0.6, top_p: float = 0.95, max_tokens: int = 4096, timeout: float = 600.0,
                 extra_body: dict | None = None, client: Any = None):
        import httpx

        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1") and "/v1/" not in self.base_url + "/":
            self.base_url += "/v1"
        self.model = model
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, max_tokens
        self.extra_body = dict(extra_body or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=timeout, headers=headers)

    @staticmethod
    def _wire_messages(messages: Sequence[dict]) -> list[dict]:
        out = []
        for m in messages:
            m = {k: v for k, v in m.items() if k in ("role", "content", "tool_calls", "tool_call_id", "name")}
            if m.get("tool_calls"):
                m["tool_calls"] = [{"id": c.get("id", f"call_{i}"), "type": "function",
                                    "function": {"name": c["function"]["name"],
                                                 "arguments": c["function"]["arguments"]
                                                 if isinstance(c["function"]["arguments"], str)
                                                 else json.dumps(c["function"]["arguments"])}}
                                   for i, c in enumerate(m["tool_calls"])]
            out.append(m)
        return out

    def complete(self, messages, tools=None, *, max_tokens=None) -> Completion:
        import httpx

        body = {"model": self.model, "messages": self._wire_messages(messages), "temperature": self.temperature,
                "top_p": self.top_p, "max_tokens": min(max_tokens or self.max_tokens, self.max_tokens),
                **self.extra_body}
        if tools:
            body["tools"] = list(tools)
        t0 = time.perf_counter()
        try:
            resp = self.client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"endpoint {self.base_url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise BackendError(f"endpoint {self.base_url}: HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            data = resp.json()
            choice = data["choices"][0]
            msg = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(f"endpoint {self.base_url}: not a chat completion: {resp.text[:300]}") from None
        content = msg.get("content") or ""
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        text = f"{reasoning}\n</think>\n\n{content}" if reasoning else content
        starts_in_reasoning = bool(reasoning) or "</think>" in content
        for call in msg.get("tool_calls") or []:
            fn = call.get("function", {})
            args = fn.get("arguments", {})
            try:
                args = json.loads(args) if isinstance(args, str) else args
                text += "\n" + format_tool_call(fn.get("name", ""), args)
            except (json.JSONDecodeError, TypeError):
                text += f"\n<tool_call>\n{{\"name\": \"{fn.get('name', '')}\", \"arguments\": {args}}}\n</tool_call>"
        usage = data.get("usage") or {}
        return Completion(text, int(usage.get("prompt_tokens") or 0),
                          int(usage.get("completion_tokens") or max(1, len(text) // 4)),
                          str(choice.get("finish_reason") or "stop"), starts_in_reasoning, time.perf_counter() - t0,
                          raw=data)


def backend_from_spec(*, model: str | None = None, endpoint: str | None = None, endpoint_model: str = "default",
                      api_key: str | None = None, temperature: float = 0.6, top_p: float = 0.95,
                      max_tokens: int = 4096, seed: int | None = None) -> Backend:
    """-m MODEL (local engine) or --endpoint URL (OpenAI-compatible), as the CLIs take them."""
    if bool(model) == bool(endpoint):
        raise UsageError("give exactly one of -m/--model or --endpoint")
    if endpoint:
        return OpenAIBackend(endpoint, endpoint_model, api_key=api_key, temperature=temperature, top_p=top_p,
                             max_tokens=max_tokens)
    try:
        from qwq.engine import Engine
        from qwq.engine.sampling import SamplingParams
    except ImportError as exc:
        raise UsageError(f"the local engine is not available ({exc}); use --endpoint") from None
    engine = Engine.from_spec(model) if hasattr(Engine, "from_spec") else Engine(model)
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_tokens, seed=seed,
                            **({"top_k": 1} if temperature == 0 else {}))
    return EngineBackend(engine, params)

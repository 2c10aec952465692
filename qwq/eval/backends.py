"""What the harness asks of a model: chat messages in, completions out, with token counts.

    backend.generate(requests, sampling, on_result)   # on_result(Completion) as each sample finishes

`Completion.text` is the model's output after the prompt, thinking included. `starts_in_reasoning` says whether
the prompt left the model inside a thinking block (QwQ's generation prompt ends with `<think>\\n`), which decides
how the verifiers read the text: a QwQ completion without `</think>` never finished thinking and has no answer.

Backends: `LocalEngineBackend` (qwq.engine, batched by its scheduler) here, `EndpointBackend` (any
OpenAI-compatible server) in endpoint.py, and `ScriptedBackend` (answers from a function: tests and dry runs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from qwq.eval.tasks.base import PROTOCOL_SAMPLING
from qwq.utils.errors import UsageError


@dataclass(frozen=True)
class SamplingConfig:
    """QwQ's protocol by default (model card). temperature 0 = greedy."""

    temperature: float = PROTOCOL_SAMPLING["temperature"]
    top_p: float = PROTOCOL_SAMPLING["top_p"]
    top_k: int = PROTOCOL_SAMPLING["top_k"]
    min_p: float = PROTOCOL_SAMPLING["min_p"]
    presence_penalty: float = 0.0
    max_tokens: int = PROTOCOL_SAMPLING["max_tokens"]
    seed: int = 0
    thinking_budget: int | None = None  # tokens of thinking before the answer is forced (None: unlimited)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise UsageError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise UsageError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 <= self.min_p < 1:
            raise UsageError(f"min_p must be in [0, 1), got {self.min_p}")
        if self.max_tokens < 1:
            raise UsageError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.thinking_budget is not None and self.thinking_budget < 0:
            raise UsageError(f"thinking budget must be >= 0, got {self.thinking_budget}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    key: str  # unique in an eval: "<run>/<item id>/<sample>"
    messages: list[dict]
    seed: int
    task: str = ""
    item_id: str = ""
    sample: int = 0


@dataclass
class Completion:
    key: str
    text: str = ""
    starts_in_reasoning: bool = False
    finish_reason: str = ""  # "stop" | "length" | ...
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    token_counts: str = "exact"  # "exact" (from token ids) | "server" (usage fields) | "estimated" (by characters)
    latency_s: float | None = None
    error: str | None = None  # set when the sample could not be generated (it is retried on the next run)
    prompt_text: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("prompt_text")
        return data


OnResult = Callable[[Completion], None]


class Backend:
    """Turns requests into completions; subclasses implement `generate` and `describe`."""

    def describe(self) -> dict:
        raise NotImplementedError

    def generate(self, requests: Sequence[Request], sampling: SamplingConfig, on_result: OnResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def split_token_counts(token_ids: Sequence[int], close_id: int | None, starts_in_reasoning: bool,
                       open_id: int | None = None) -> tuple[int, int]:
    """(reasoning tokens, answer tokens) of a completion: everything up to and including `</think>` is reasoning;
    a completion that never closes its thinking is all reasoning. Without a thinking prompt, only a completion
    that opens `<think>` itself has reasoning."""
    ids = list(token_ids)
    thinking = starts_in_reasoning or (open_id is not None and bool(ids) and ids[0] == open_id)
    if not thinking:
        return 0, len(ids)
    if close_id is not None and close_id in ids:
        end = ids.index(close_id) + 1
        return end, len(ids) - end
    return len(ids), 0


def estimate_token_split(total: int, reasoning_text: str, answer_text: str) -> tuple[int, int]:
    """Split a token total in proportion to characters (for servers that do not report reasoning tokens)."""
    chars = len(reasoning_text) + len(answer_text)
    reasoning = round(total * len(reasoning_text) / chars) if chars else 0
    return reasoning, total - reasoning


class ScriptedBackend(Backend):
    """Answers each request with `script(request) -> str` (or a Completion). For tests and dry runs: the token
    counts are whitespace word counts."""

    def __init__(self, script: Callable[[Request], Any], starts_in_reasoning: bool = True, name: str = "scripted"):
        self.script, self.starts_in_reasoning, self.name = script, starts_in_reasoning, name
        self.calls: list[Request] = []

    def describe(self) -> dict:
        return {"backend": "scripted", "model": self.name, "starts_in_reasoning": self.starts_in_reasoning}

    def generate(self, requests: Sequence[Request], sampling: SamplingConfig, on_result: OnResult) -> None:
        from qwq.tokenizer.reasoning import split_reasoning

        for request in requests:
            self.calls.append(request)
            start = time.perf_counter()
            out = self.script(request)
            if isinstance(out, Completion):
                out.key = request.key
                on_result(out)
                continue
            text = str(out)
            split = split_reasoning(text, starts_in_reasoning=self.starts_in_reasoning)
            reasoning_tokens = len(split.reasoning.split()) + (1 if split.finished and self.starts_in_reasoning else 0)
            answer_tokens = len(split.answer.split())
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.messages)
            on_result(Completion(request.key, text, self.starts_in_reasoning, "stop", prompt_tokens,
                                 reasoning_tokens + answer_tokens, reasoning_tokens, answer_tokens, "estimated",
                                 time.perf_counter() - start))

"""What the engine hands back: per-token events while streaming, and whole results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FINISH_REASONS = ("stop", "length", "abort", "error")  # error: the engine failed on this request (see TokenEvent.error)


@dataclass(frozen=True)
class TokenEvent:
    """One token appended to one sample (or, with token_id None, a sample finishing without a new token)."""

    request_id: str
    sample_index: int
    token_id: int | None
    text_delta: str  # newly decoded text that can be shown (UTF-8 complete, never part of a stop string)
    finished: bool = False
    finish_reason: str | None = None
    logprob: float | None = None
    forced: bool = False  # inserted by a controller rather than sampled
    error: str | None = None  # with finish_reason "error": what failed ("ExceptionType: message")


@dataclass
class Timings:
    queued_s: float = 0.0  # waiting for a batch slot
    prefill_s: float = 0.0
    decode_s: float = 0.0
    time_to_first_token_s: float | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # served from the prefix cache
    generated_tokens: int = 0  # over all samples

    @property
    def decode_tokens_per_s(self) -> float:
        return self.generated_tokens / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def prefill_tokens_per_s(self) -> float:
        computed = self.prompt_tokens - self.cached_prompt_tokens
        return computed / self.prefill_s if self.prefill_s > 0 else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["decode_tokens_per_s"] = round(self.decode_tokens_per_s, 3)
        data["prefill_tokens_per_s"] = round(self.prefill_tokens_per_s, 3)
        return data


@dataclass
class Sample:
    index: int
    token_ids: list[int]  # every generated token, in order (including a final EOS / stop token)
    text: str  # decoded text, cut before a matched stop string (unless asked to keep it)
    finish_reason: str  # "stop" | "length" | "abort" | "error"
    stop_reason: str | int | None = None  # the stop string or token id that ended it, a controller's reason, or
    # (finish_reason "error") what failed
    logprobs: list[float] | None = None  # raw-model logprob of each token of token_ids
    top_logprobs: list[list[tuple[int, float]]] | None = None
    forced_mask: list[bool] | None = None  # True where a controller inserted the token (None: none did)
    seed: int | None = None  # the seed its generator got (reproduces the sample)
    controls: dict[str, Any] = field(default_factory=dict)  # per-controller counters / details

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerationResult:
    request_id: str
    prompt_token_ids: list[int]
    samples: list[Sample]
    timings: Timings

    @property
    def text(self) -> str:
        """The first sample's text (the common n=1 case)."""
        return self.samples[0].text

    def to_dict(self) -> dict:
        return {"request_id": self.request_id, "prompt_token_ids": self.prompt_token_ids,
                "samples": [s.to_dict() for s in self.samples], "timings": self.timings.to_dict()}

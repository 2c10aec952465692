"""Overthinking control: answer-stabilisation early exit.

Every `every` thinking tokens the controller probes the sample's current best answer. When `patience` probes in a
row agree (after normalisation), more thinking is unlikely to change the answer, so the thinking is closed and the
model answers. Two probes:

- "text" (free): the latest answer the thinking itself stated (`\\boxed{}` or "the answer is ..."), read with the
  verify layer's extractor. It only fires once the model has written down an answer and kept thinking for
  `patience * every` tokens without writing a different one.
- `model_probe(engine)`: asks the model (the probe-in-the-middle idea of Dynasor): the thinking so far, then a
  short sentence that opens `\\boxed{`, decoded greedily until the box closes. It runs on a side engine that shares
  the weights and whose prefix cache keeps the sample's earlier blocks, so a probe costs the new tokens since the
  previous probe plus a few decode steps.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from qwq.engine.controls.settings import EarlyExitSettings
from qwq.engine.controls.tracking import tracker_for
from qwq.engine.hooks import Action, BaseController, SampleState

ProbeFn = Callable[[Sequence[int], Sequence[int]], "str | None"]
PROBE_SUFFIX = "\n\nSo far, my best answer is \\boxed{"


def _normalise(answer: str | None) -> str | None:
    if not answer:
        return None
    from qwq.verify.normalize import normalize_answer_text

    return normalize_answer_text(answer) or None


def stated_answer(thinking: str) -> str | None:
    """The latest answer written in `thinking` (a `\\boxed{}` or "the answer is ..." in its last paragraph that has
    one), None when there is none."""
    from qwq.verify.extract import extract_math_answer

    for paragraph in reversed(thinking.split("\n\n")):
        extraction = extract_math_answer(paragraph)
        if extraction.source in ("boxed", "answer is") and extraction.answer:
            return extraction.answer
    return None


class AnswerStabilisation(BaseController):
    name = "early_exit"

    def __init__(self, settings: EarlyExitSettings, state: SampleState) -> None:
        self.settings = settings
        tracker_for(state)
        self.probes: list[str | None] = []
        self.probe_at: list[int] = []
        self.next_probe = max(settings.min_tokens, settings.every)
        self.exited_at: int | None = None

    def _probe(self, state: SampleState, tracker: Any) -> str | None:
        probe = self.settings.probe
        if callable(probe):
            return _normalise(probe(state.prompt_ids, list(state.generated_ids)))
        return _normalise(stated_answer(tracker.reasoning))

    def before_sample(self, state: SampleState, logits: Any) -> Action | None:
        tracker = tracker_for(state)
        if self.exited_at is not None or not tracker.in_thinking or tracker.thinking_tokens < self.next_probe:
            return None
        s = self.settings
        self.next_probe = tracker.thinking_tokens + s.every
        answer = self._probe(state, tracker)
        self.probes.append(answer)
        self.probe_at.append(tracker.thinking_tokens)
        recent = self.probes[-s.patience:]
        if answer is None or len(recent) < s.patience or any(a != answer for a in recent):
            return None
        self.exited_at = tracker.thinking_tokens
        return Action(force=tracker.close_thinking_ids(s.exit_text))

    def details(self) -> dict:
        return {"probes": len(self.probes), "exited": self.exited_at is not None,
                "exited_at_thinking_tokens": self.exited_at,
                "last_probes": [{"at": at, "answer": a} for at, a in zip(self.probe_at[-5:], self.probes[-5:])]}


class _BoxCloser(BaseController):
    """Stops a probe as soon as the `\\boxed{` it was given is closed."""

    name = "probe_box"

    def __init__(self, state: SampleState) -> None:
        self.decoder = state.tokenizer.incremental_decoder(skip_special_tokens=True)
        self.depth = 1

    def on_token(self, state: SampleState, token_id: int, forced: bool) -> Action | None:
        for char in self.decoder.feed(token_id):
            self.depth += (char == "{") - (char == "}")
            if self.depth == 0:
                return Action(stop="box_closed")
        return None


def model_probe(engine: Any, suffix: str = PROBE_SUFFIX, max_tokens: int = 24,
                kv_cache_tokens: int | None = None) -> ProbeFn:
    """A probe that asks the model for its current answer, on a side engine sharing `engine`'s weights."""
    from qwq.engine.engine import Engine
    from qwq.engine.sampling import SamplingParams
    from qwq.verify.extract import find_boxed

    side = Engine(engine.model, engine.tokenizer, engine.config, max_batch_size=1,
                  kv_cache_tokens=kv_cache_tokens or engine.options.kv_cache_tokens or 8192,
                  max_model_len=engine.max_model_len)
    suffix_ids = engine.tokenizer.encode(suffix)
    params = SamplingParams(temperature=0.0, max_new_tokens=max_tokens)

    def probe(prompt_ids: Sequence[int], generated_ids: Sequence[int]) -> str | None:
        ids = list(prompt_ids) + list(generated_ids) + suffix_ids
        if len(ids) + max_tokens > side.max_model_len:
            return None
        result = side.generate([ids], params, controllers=[lambda _, state: _BoxCloser(state)])[0]
        sample = result.samples[0]
        probe.calls += 1
        probe.decoded_tokens += len(sample.token_ids)
        probe.prefilled_tokens += result.timings.prompt_tokens - result.timings.cached_prompt_tokens
        if sample.stop_reason != "box_closed":
            return None
        boxed = find_boxed("\\boxed{" + sample.text)
        return boxed[0] if boxed and boxed[0] else None

    # What the probes cost (benchmarks report it): calls, tokens decoded, prompt tokens not served by the cache.
    probe.engine, probe.calls, probe.decoded_tokens, probe.prefilled_tokens = side, 0, 0, 0  # type: ignore
    return probe

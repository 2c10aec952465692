"""What every reasoning control needs to know about its sample: the decoded text, whether it is inside the
thinking, how many tokens went to thinking and to the answer, and how to write text into the stream.

The thinking state is read from the decoded text with the pure reasoning parser, so it works both with a vocabulary
that has `<think>` / `</think>` tokens (QwQ) and with one that spells them as several tokens (a model prompted to
think between text tags). One tracker is shared by all the controls of a sample (kept on the SampleState) and
catches up with `state.generated_ids` lazily, so it never counts a token twice or sees one that was replaced.
"""

from __future__ import annotations

import time
from typing import Any

from qwq.engine.hooks import BaseController, SampleState
from qwq.tokenizer.reasoning import THINK_CLOSE, ReasoningStreamParser, prompt_starts_in_reasoning

_TRACKER_ATTR = "_qwq_reasoning_tracker"


def thinking_start_override(state: SampleState) -> bool | None:
    """The request's `starts_in_thinking` (the `accounting` control carries it), None: read it from the prompt."""
    shared = state.params.controls.get("accounting")
    return shared.get("starts_in_thinking") if isinstance(shared, dict) else None


class ThinkingTracker:
    """Text, thinking state and token counts of one sample, updated from the tokens the engine appended."""

    def __init__(self, state: SampleState, starts_in_thinking: bool | None = None) -> None:
        self.tokenizer = state.tokenizer
        if self.tokenizer is None:
            from qwq.utils.errors import UsageError

            raise UsageError("reasoning controls need an engine with a tokenizer (they read and write text)")
        if starts_in_thinking is None:
            starts_in_thinking = _prompt_in_thinking(state)
        self.starts_in_thinking = starts_in_thinking
        self.parser = ReasoningStreamParser(starts_in_reasoning=starts_in_thinking)
        # Specials (<|im_end|>) are not text; QwQ's <think> tags are plain added tokens and stay in the text.
        self._decoder = self.tokenizer.incremental_decoder(skip_special_tokens=True)
        self.synced = 0  # generated tokens consumed
        self.thinking_tokens = 0  # tokens appended while the thinking was open (the closing tag included)
        self.answer_tokens = 0
        self.thinking_closed_at: int | None = None  # generated-token index at which the thinking closed
        self.started = time.perf_counter()
        self.first_answer_s: float | None = None  # from the sample's start to its first answer text
        self.phases = bytearray()  # per generated token: 1 when it was part of the thinking
        self.reasoning_deltas: list[str] = []  # the thinking text as it came (readers keep their own offset)

    @property
    def in_thinking(self) -> bool:
        return self.parser.in_reasoning

    @property
    def reasoning(self) -> str:
        return self.parser.reasoning

    @property
    def answer(self) -> str:
        return self.parser.content

    def sync(self, state: SampleState) -> None:
        ids = state.generated_ids
        while self.synced < len(ids):
            token = ids[self.synced]
            was_thinking = self.parser.in_reasoning
            deltas = self.parser.feed(self._decoder.feed(token))
            self.reasoning_deltas.extend(d.text for d in deltas if d.kind == "reasoning")
            if was_thinking:
                self.thinking_tokens += 1
                if not self.parser.in_reasoning and self.thinking_closed_at is None:
                    self.thinking_closed_at = self.synced
            else:
                self.answer_tokens += 1
            self.phases.append(1 if was_thinking else 0)
            if self.first_answer_s is None and any(d.kind == "content" for d in deltas):
                self.first_answer_s = time.perf_counter() - self.started
            self.synced += 1

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text)) if text else []

    def close_thinking_ids(self, lead_in: str) -> list[int]:
        """Tokens that end the thinking: `lead_in`, `</think>` (one token when the vocabulary has it), a blank line.
        A newline goes before `</think>` unless the lead-in or the thinking already ends with one."""
        text = lead_in
        if not (text or self.reasoning).endswith("\n"):
            text += "\n"
        return self.encode(text + THINK_CLOSE + "\n\n")


def _prompt_in_thinking(state: SampleState) -> bool:
    open_id, close_id = state.think_token_ids
    if open_id is not None:  # the vocabulary has the tags: the ids decide (as the engine does)
        for token in reversed(state.prompt_ids):
            if token == close_id:
                return False
            if token == open_id:
                return True
        return False
    return prompt_starts_in_reasoning(state.tokenizer.decode(state.prompt_ids))


def tracker_for(state: SampleState) -> ThinkingTracker:
    """The sample's shared tracker (created by the first control that asks), caught up with the appended tokens."""
    tracker = getattr(state, _TRACKER_ATTR, None)
    if tracker is None:
        tracker = ThinkingTracker(state, thinking_start_override(state))
        setattr(state, _TRACKER_ATTR, tracker)
    tracker.sync(state)
    return tracker


def stop_token_ids(state: SampleState) -> frozenset[int]:
    """Tokens that would end the sample (EOS of the tokenizer unless ignored, and the request's stop ids)."""
    ids = set(state.params.stop_token_ids)
    if not state.params.ignore_eos:
        ids.update(getattr(state.tokenizer, "eos_token_ids", ()) or ())
    return frozenset(ids)


class Accounting(BaseController):
    """Reasoning / answer token counts and the time to the first answer text, per sample."""

    name = "accounting"

    def __init__(self, state: SampleState) -> None:
        self.state = state
        self.tracker = tracker_for(state)

    def before_sample(self, state: SampleState, logits: Any) -> None:
        # keep up token by token, so the time to the first answer text is measured when that text came (the other
        # controls may leave the tracker idle for a while)
        self.tracker.sync(state)

    def details(self) -> dict[str, Any]:
        self.tracker.sync(self.state)
        t = self.tracker
        return {"prompt_tokens": len(self.state.prompt_ids), "reasoning_tokens": t.thinking_tokens,
                "answer_tokens": t.answer_tokens, "thinking_closed": not t.in_thinking,
                "first_answer_s": None if t.first_answer_s is None else round(t.first_answer_s, 6)}

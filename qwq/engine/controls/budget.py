"""Thinking budget (a hard cap on thinking, then a bounded answer) and budget forcing (a floor on thinking)."""

from __future__ import annotations

from typing import Any

from qwq.engine.controls.settings import BudgetForcingSettings, ThinkingBudgetSettings
from qwq.engine.controls.tracking import stop_token_ids, tracker_for
from qwq.engine.hooks import Action, BaseController, SampleState

# A close that the model keeps undoing (it reopens `<think>` each time) is not worth more attempts.
MAX_FORCED_CLOSES = 3


class ThinkingBudget(BaseController):
    """After `max_thinking_tokens` thinking tokens, inject the wrap-up sentence and `</think>`; the model then
    answers, within `answer_tokens` if set (stop reason "answer_budget" when the answer runs out of it)."""

    name = "thinking_budget"

    def __init__(self, settings: ThinkingBudgetSettings, state: SampleState) -> None:
        self.settings = settings
        tracker_for(state)
        self.forced_at: list[int] = []  # thinking tokens spent when each close was injected
        self.answer_capped = False

    def before_sample(self, state: SampleState, logits: Any) -> Action | None:
        tracker = tracker_for(state)
        s = self.settings
        if tracker.in_thinking:
            if tracker.thinking_tokens < s.max_thinking_tokens:
                return None
            if len(self.forced_at) >= MAX_FORCED_CLOSES:
                return Action(stop="thinking_budget")
            self.forced_at.append(tracker.thinking_tokens)
            return Action(force=tracker.close_thinking_ids(s.wrap_up))
        if s.answer_tokens is not None and tracker.answer_tokens >= s.answer_tokens:
            self.answer_capped = True
            return Action(stop="answer_budget")
        return None

    def details(self) -> dict:
        return {"max_thinking_tokens": self.settings.max_thinking_tokens, "forced_close": bool(self.forced_at),
                "forced_at_thinking_tokens": self.forced_at[0] if self.forced_at else None,
                "answer_capped": self.answer_capped}


class BudgetForcing(BaseController):
    """s1-style minimum thinking: while the thinking is shorter than `min_tokens`, a sampled `</think>` (or an
    end-of-sequence token inside the thinking) is replaced by the `wait` text, at most `max_extensions` times.

    With a vocabulary that spells `</think>` as several tokens only the end-of-sequence attempts can be caught:
    the tag's first pieces are already in the text when its last piece is sampled."""

    name = "min_thinking_tokens"

    def __init__(self, settings: BudgetForcingSettings, state: SampleState) -> None:
        self.settings = settings
        tracker = tracker_for(state)
        self.wait_ids = tracker.encode(settings.wait)
        close = state.think_token_ids[1]
        self.attempt_ids = stop_token_ids(state) | ({close} if close is not None else set())
        self.extensions = 0
        self.extended_at: list[int] = []

    def on_token(self, state: SampleState, token_id: int, forced: bool) -> Action | None:
        if forced or token_id not in self.attempt_ids or self.extensions >= self.settings.max_extensions:
            return None
        tracker = tracker_for(state)
        if not tracker.in_thinking or tracker.thinking_tokens >= self.settings.min_tokens:
            return None
        self.extensions += 1
        self.extended_at.append(tracker.thinking_tokens)
        return Action(replace=self.wait_ids)

    def details(self) -> dict:
        return {"min_tokens": self.settings.min_tokens, "extensions": self.extensions,
                "extended_at_thinking_tokens": list(self.extended_at)}

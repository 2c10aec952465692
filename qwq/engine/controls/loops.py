"""Loop breaker: find exact and near-exact cycles in the generated tokens, then end the thinking (the model answers)
or stop the sample.

Two detectors, both incremental (a few vectorised operations per token whatever the output length):

- Suffix periodicity. For every period p <= max_period, a sliding window counts how many of the last W_p tokens
  equal the token p positions earlier, W_p = max(min_span, (min_repeats - 1) * p). When at least
  (1 - tolerance) * W_p of them match, the output has repeated itself min_repeats times with small variations
  (a counter that changes, a word swapped). The smallest such p is reported as the period.
- Repeated n-gram. A `ngram`-token sequence seen `ngram_repeats` times without overlapping itself: circular
  reasoning that comes back to the same sentence with different text in between, which has no fixed period.

Detection restarts when the sample moves from thinking to answer, so an answer that restates the thinking's last
lines does not count them twice.

Neither detector can fire before `earliest` tokens (the shortest evidence either needs), and most samples end
sooner, so the detector only stores tokens until then and catches up in one go when they reach it; the loop
breaker likewise leaves the thinking tracker alone until its detector could have that many tokens.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from qwq.engine.controls.settings import LoopBreakerSettings
from qwq.engine.controls.tracking import tracker_for
from qwq.engine.hooks import Action, BaseController, SampleState


@dataclass(frozen=True)
class Loop:
    kind: str  # "period" | "ngram"
    at_token: int  # index (among the tokens fed to the detector) of the token that completed the evidence
    period: int  # the cycle length in tokens (ngram: distance between the last two occurrences)
    span: int  # tokens covered by the repetition

    def to_dict(self) -> dict:
        return {"kind": self.kind, "at_token": self.at_token, "period": self.period, "span": self.span}


@functools.lru_cache(maxsize=16)
def _period_tables(max_period: int, min_repeats: int, min_span: int, tolerance: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per period p: window W_p, matches needed in it, column index; and the fewest tokens any period needs.
    Shared by every detector with these settings (read-only)."""
    periods = np.arange(1, max_period + 1)
    windows = np.maximum(min_span, (min_repeats - 1) * periods)
    needed = np.ceil((1.0 - tolerance) * windows - 1e-9).astype(np.int64)
    for table in (windows, needed):
        table.flags.writeable = False
    columns = np.arange(max_period)
    columns.flags.writeable = False
    return windows, needed, columns, int((windows + periods).min())


class LoopDetector:
    """Feed tokens one at a time; `push` returns a Loop once the evidence is there (and keeps returning one)."""

    def __init__(self, max_period: int = 256, min_repeats: int = 3, min_span: int = 48, tolerance: float = 0.1,
                 ngram: int = 24, ngram_repeats: int = 5) -> None:
        if max_period < 1 or min_repeats < 2 or min_span < 2 or not 0 <= tolerance < 1 or ngram < 1 \
                or ngram_repeats < 2:
            raise ValueError("bad loop detector settings")
        self.max_period, self.ngram, self.ngram_repeats = max_period, ngram, ngram_repeats
        self.windows, self.needed, self._columns, shortest = _period_tables(max_period, min_repeats, min_span,
                                                                            tolerance)
        self.ring_size = int(self.windows[-1])  # W_p grows with p
        self.ring: np.ndarray | None = None  # match bits of the last tokens (allocated when first needed)
        self.sums = np.zeros(max_period, dtype=np.int64)
        self.history = np.zeros(256, dtype=np.int64)
        self.count = 0
        self._seen: dict[int, list[int]] = {}  # n-gram hash -> positions where it ended
        self.loop: Loop | None = None
        # fewest tokens with which either test can pass: a full window W_p plus its lag p, or ngram_repeats
        # non-overlapping n-grams
        self.earliest = min(shortest, ngram * ngram_repeats)
        self.examined = 0  # tokens the tests have looked at (the others wait in `history`)

    def push(self, token: int) -> Loop | None:
        t = self.count
        if t >= len(self.history):
            self.history = np.concatenate([self.history, np.zeros_like(self.history)])
        self.history[t] = token
        self.count += 1
        while self.loop is None and self.count >= self.earliest and self.examined < self.count:
            t = self.examined
            self.loop = self._periodic(t, int(self.history[t])) or self._repeated_ngram(t)
            self.examined += 1
        return self.loop

    def _periodic(self, t: int, token: int) -> Loop | None:
        p_max = self.max_period
        if self.ring is None:
            self.ring = np.zeros((self.ring_size, p_max), dtype=np.bool_)
        lagged = np.full(p_max, -1, dtype=np.int64)  # lagged[p - 1] = token at t - p (-1 before the start)
        available = min(t, p_max)
        if available:
            lagged[:available] = self.history[t - available:t][::-1]
        match = lagged == token
        leaving_time = t - self.windows
        leaving = np.zeros(p_max, dtype=np.bool_)
        old = leaving_time >= 0
        if old.any():
            leaving[old] = self.ring[leaving_time[old] % self.ring_size, self._columns[old]]
        self.sums += match.astype(np.int64) - leaving
        self.ring[t % self.ring_size] = match
        # A window is full once all its W_p comparisons had a token p earlier: t + 1 - p >= W_p.
        full = (t + 1 - (self._columns + 1)) >= self.windows
        hits = np.flatnonzero(full & (self.sums >= self.needed))
        if hits.size == 0:
            return None
        p = int(hits[0]) + 1
        return Loop("period", t, p, int(self.windows[p - 1]) + p)

    def _repeated_ngram(self, t: int) -> Loop | None:
        n = self.ngram
        if t + 1 < n:
            return None
        key = hash(self.history[t + 1 - n:t + 1].tobytes())
        ends = self._seen.setdefault(key, [])
        if ends and t - ends[-1] < n:  # overlapping occurrences are a short cycle: the periodicity test's case
            return None
        ends.append(t)
        if len(ends) < self.ngram_repeats:
            return None
        first = ends[-self.ngram_repeats]
        return Loop("ngram", t, t - ends[-2], t - first + n)


def detector_from(settings: LoopBreakerSettings) -> LoopDetector:
    return LoopDetector(settings.max_period, settings.min_repeats, settings.min_span, settings.tolerance,
                        settings.ngram, settings.ngram_repeats)


class LoopBreaker(BaseController):
    """Watches the sample's tokens; on a loop in the thinking, `action` "answer" closes the thinking (the model then
    answers within `answer_tokens`) and "stop" ends the sample (stop reason "loop"). A loop in the answer stops."""

    name = "loop_breaker"

    def __init__(self, settings: LoopBreakerSettings, state: SampleState) -> None:
        self.settings = settings
        tracker_for(state)
        self.detector = detector_from(settings)
        self.fed = 0  # generated tokens given to the detector
        self.detector_start = 0  # the first generated token the current detector sees (or will see)
        self.phase_start = 0  # generated-token index where the current phase (thinking / answer) began
        self.phase: int | None = None
        self.loops: list[dict] = []
        self.broke_at: int | None = None  # answer tokens allowed from here (after a forced close)
        self.outcome: str | None = None  # "answered" | "stopped" | "answer_budget"

    def _feed(self, tracker: Any, ids: list[int]) -> Loop | None:
        """Give the detector the tokens appended since the last call; the loop found, if any."""
        while self.fed < tracker.synced:
            phase = tracker.phases[self.fed]
            if phase != self.phase:  # a new phase starts with a fresh detector
                self.phase, self.phase_start = phase, self.fed
                if self.detector.count:
                    self.detector = detector_from(self.settings)
                self.detector_start = self.fed
            self.detector.push(ids[self.fed])
            self.fed += 1
        return self.detector.loop

    def before_sample(self, state: SampleState, logits: Any) -> Action | None:
        if self.broke_at is None and state.num_generated - self.detector_start < self.detector.earliest:
            return None  # too few tokens for any loop yet (the tracker would only tell us their phases)
        tracker = tracker_for(state)
        loop = self._feed(tracker, state.generated_ids)
        if self.broke_at is not None and not tracker.in_thinking and self.settings.answer_tokens is not None \
                and tracker.answer_tokens - self.broke_at >= self.settings.answer_tokens:
            self.outcome = "answer_budget"
            return Action(stop="answer_budget")
        if loop is None:
            return None
        record = loop.to_dict() | {"phase": "thinking" if self.phase else "answer",
                                   "at_token": self.phase_start + loop.at_token}
        self.loops.append(record)
        self.detector = detector_from(self.settings)  # the evidence is spent; a new loop needs new evidence
        self.detector_start = self.fed
        self.phase = None
        if tracker.in_thinking and self.settings.action == "answer":
            self.outcome = "answered"
            self.broke_at = tracker.answer_tokens
            return Action(force=tracker.close_thinking_ids(self.settings.exit_text))
        self.outcome = "stopped"
        return Action(stop="loop")

    def details(self) -> dict:
        return {"action": self.settings.action, "fired": len(self.loops), "loops": list(self.loops),
                "outcome": self.outcome}


def detect_loop(tokens: list[int], settings: LoopBreakerSettings | None = None) -> Loop | None:
    """The first loop in a token sequence (offline use: benchmarks, analysis of saved outputs)."""
    detector = detector_from(settings or LoopBreakerSettings())
    for token in tokens:
        loop = detector.push(int(token))
        if loop is not None:
            return loop
    return None


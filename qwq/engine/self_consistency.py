"""Self-consistency: sample n answers to one prompt, extract each final answer, vote.

    result = self_consistency(engine, prompt_ids, SamplingParams(temperature=0.6, max_new_tokens=4096),
                              SelfConsistencySettings(n=8, consensus=0.6))
    result.answer, result.table        # the winning answer; [{answer, votes, samples, mean_logprob}, ...]

- Answers are read with the verify layer's extractors from the answer region (after `</think>`; an unfinished
  thinking has no answer and casts no vote): "math" (`\\boxed{}`, "the answer is") or "choice" (a letter).
- Votes are grouped by equivalence: "cheap" (default) merges answers with the same normalised text or the same
  exact number (1/2, 0.5 and \\frac{1}{2} ... as far as the verifier decides in-process); "math" also asks the
  symbolic verifier (subprocess pool, with its timeout) for answers the cheap checks cannot tell apart.
- The most votes wins; a tie goes to the group whose samples have the highest mean token logprob.
- Early stop: the request is aborted as soon as the outcome can no longer change (the leader is ahead of the
  runner-up by more than the samples still running), or the leader has `consensus * n` votes.

`VoteTally` is the pure part (feed finished samples, ask `decided()`), shared by the sync driver here and the
asynchronous one the server uses (`self_consistency_async` over an AsyncEngine).
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Sequence

from qwq.utils.errors import UsageError

EXTRACTORS = ("math", "choice")
EQUIVALENCES = ("cheap", "math")


@dataclass(frozen=True)
class SelfConsistencySettings:
    n: int
    consensus: float | None = None  # stop once the leader has ceil(consensus * n) votes (None: only when decided)
    extract: str = "math"
    letters: str = "ABCD"
    equivalence: str = "cheap"
    starts_in_thinking: bool | None = None  # does the output start inside `<think>`? None: read it from the prompt

    @classmethod
    def parse(cls, value: Any) -> "SelfConsistencySettings":
        if not isinstance(value, dict):
            value = {"n": value}
        known = {"n", "consensus", "extract", "letters", "equivalence", "starts_in_thinking"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise UsageError(f"control 'self_consistency': unknown field {unknown[0]!r} "
                             f"(known: {', '.join(sorted(known))})")
        settings = cls(**value)
        settings.check()
        return settings

    def check(self) -> None:
        def bad(field_name: str, expected: str, got: Any) -> UsageError:
            return UsageError(f"control 'self_consistency': field {field_name!r} must be {expected}, got {got!r}")

        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= 4096:
            raise bad("n", "an integer in 1..4096", self.n)
        if self.consensus is not None and (isinstance(self.consensus, bool) or
                                           not isinstance(self.consensus, (int, float)) or
                                           not 0 < self.consensus <= 1):
            raise bad("consensus", "a number in (0, 1] or null", self.consensus)
        if self.extract not in EXTRACTORS:
            raise bad("extract", "one of " + ", ".join(EXTRACTORS), self.extract)
        if self.equivalence not in EQUIVALENCES:
            raise bad("equivalence", "one of " + ", ".join(EQUIVALENCES), self.equivalence)
        if not isinstance(self.letters, str) or not self.letters.isalpha() or len(set(self.letters.upper())) < 2:
            raise bad("letters", "at least two distinct letters", self.letters)
        if self.starts_in_thinking is not None and not isinstance(self.starts_in_thinking, bool):
            raise bad("starts_in_thinking", "true, false or null", self.starts_in_thinking)


@dataclass
class Ballot:
    index: int
    answer: str | None  # None: no answer could be read (it casts no vote)
    mean_logprob: float | None
    finish_reason: str | None = None
    tokens: int = 0


@dataclass
class _Group:
    answer: str  # the first spelling seen
    key: str
    members: list[Ballot] = field(default_factory=list)

    @property
    def votes(self) -> int:
        return len(self.members)

    @property
    def mean_logprob(self) -> float:
        values = [b.mean_logprob for b in self.members if b.mean_logprob is not None]
        return sum(values) / len(values) if values else float("-inf")


def extract_answer(text: str, settings: SelfConsistencySettings) -> str | None:
    from qwq.verify.extract import answer_region, extract_choice, extract_math_answer

    starts = True if settings.starts_in_thinking is None else settings.starts_in_thinking
    region = answer_region(text, starts_in_reasoning=starts)
    if not region.finished:
        return None
    if settings.extract == "choice":
        return extract_choice(region.text, settings.letters).answer
    return extract_math_answer(region.text).answer


class VoteTally:
    """Ballots in, groups of equivalent answers out. `decided()` says whether more ballots could change the winner."""

    def __init__(self, settings: SelfConsistencySettings, math_pool: Any = None) -> None:
        self.settings = settings
        self.groups: list[_Group] = []
        self.ballots: list[Ballot] = []
        self._pool = math_pool

    def add(self, index: int, text: str, mean_logprob: float | None, finish_reason: str | None = None,
            tokens: int = 0) -> Ballot:
        ballot = Ballot(index, extract_answer(text, self.settings), mean_logprob, finish_reason, tokens)
        self.ballots.append(ballot)
        if ballot.answer is not None:
            self._group_for(ballot.answer).members.append(ballot)
        return ballot

    def _group_for(self, answer: str) -> _Group:
        from qwq.verify.normalize import normalize_answer_text, plain_numbers_equal

        key = normalize_answer_text(answer)
        if self.settings.extract == "choice":
            key = key.upper()
        for group in self.groups:
            if group.key == key:
                return group
        if self.settings.extract == "math":
            for group in self.groups:
                if plain_numbers_equal(group.answer, answer):
                    return group
            if self.settings.equivalence == "math" and self.groups:
                from qwq.verify.math import compare_math_answers

                verdicts = compare_math_answers([answer] * len(self.groups), [g.answer for g in self.groups],
                                                pool=self._pool)
                for group, verdict in zip(self.groups, verdicts):
                    if verdict.correct:
                        return group
        group = _Group(answer, key)
        self.groups.append(group)
        return group

    def ranked(self) -> list[_Group]:
        return sorted(self.groups, key=lambda g: (-g.votes, -g.mean_logprob))

    def decided(self, remaining: int) -> bool:
        """True when `remaining` more ballots cannot change the winner, or the consensus threshold is met."""
        ranked = self.ranked()
        if not ranked:
            return remaining == 0
        lead = ranked[0].votes
        runner_up = ranked[1].votes if len(ranked) > 1 else 0
        if lead > runner_up + remaining:
            return True
        consensus = self.settings.consensus
        return consensus is not None and lead >= math.ceil(consensus * self.settings.n - 1e-9)

    def table(self) -> list[dict]:
        return [{"answer": g.answer, "votes": g.votes, "samples": [b.index for b in g.members],
                 "mean_logprob": None if g.mean_logprob == float("-inf") else round(g.mean_logprob, 6)}
                for g in self.ranked()]


@dataclass
class SelfConsistencyResult:
    answer: str | None
    table: list[dict]
    ballots: list[Ballot]
    n: int
    stopped_early: bool
    generated_tokens: int
    texts: dict[int, str] = field(default_factory=dict)

    @property
    def winner_index(self) -> int | None:
        """The sample to show for the winning answer: its most confident one (highest mean logprob)."""
        if not self.table:
            return None
        members = [b for b in self.ballots if b.index in self.table[0]["samples"]]
        return max(members, key=lambda b: float("-inf") if b.mean_logprob is None else b.mean_logprob).index

    def to_dict(self) -> dict:
        return {"answer": self.answer, "winner_index": self.winner_index, "votes": self.table, "n": self.n, "completed": len(self.ballots),
                "stopped_early": self.stopped_early, "generated_tokens": self.generated_tokens,
                "no_answer": [b.index for b in self.ballots if b.answer is None]}


class _SampleBuffers:
    """Per-sample text and logprobs rebuilt from token events (what both drivers receive)."""

    def __init__(self) -> None:
        self.text: dict[int, list[str]] = {}
        self.logprobs: dict[int, list[float]] = {}
        self.tokens: dict[int, int] = {}

    def push(self, event: Any) -> None:
        i = event.sample_index
        self.text.setdefault(i, []).append(event.text_delta)
        if event.token_id is not None:
            self.tokens[i] = self.tokens.get(i, 0) + 1
            if event.logprob is not None and math.isfinite(event.logprob):
                self.logprobs.setdefault(i, []).append(event.logprob)

    def finished(self, i: int) -> tuple[str, float | None, int]:
        values = self.logprobs.get(i, [])
        return "".join(self.text.get(i, [])), (sum(values) / len(values) if values else None), self.tokens.get(i, 0)


def _params_for(params: Any, settings: SelfConsistencySettings) -> Any:
    return params.replace(n=settings.n, logprobs=True)


def _resolved(settings: SelfConsistencySettings, engine: Any, prompt_ids: Sequence[int]) -> SelfConsistencySettings:
    """Settings with `starts_in_thinking` read from the prompt when not given (QwQ: its last `<think>` is open)."""
    settings.check()
    if settings.starts_in_thinking is not None or getattr(engine, "tokenizer", None) is None:
        return settings
    import dataclasses

    from qwq.tokenizer.reasoning import prompt_starts_in_reasoning

    inside = prompt_starts_in_reasoning(engine.tokenizer.decode(list(prompt_ids)))
    return dataclasses.replace(settings, starts_in_thinking=inside)


def _result(tally: VoteTally, buffers: _SampleBuffers, settings: SelfConsistencySettings,
            aborted: bool) -> SelfConsistencyResult:
    ranked = tally.ranked()
    return SelfConsistencyResult(answer=ranked[0].answer if ranked else None, table=tally.table(),
                                 ballots=list(tally.ballots), n=settings.n, stopped_early=aborted,
                                 generated_tokens=sum(buffers.tokens.values()),
                                 texts={i: "".join(t) for i, t in buffers.text.items()})


def self_consistency(engine: Any, prompt_ids: Sequence[int], params: Any, settings: SelfConsistencySettings,
                     controllers: Sequence[Any] = (), math_pool: Any = None) -> SelfConsistencyResult:
    """Run n samples of one prompt on `engine` (continuously batched), vote, stop early once decided."""
    settings = _resolved(settings, engine, prompt_ids)
    tally, buffers = VoteTally(settings, math_pool), _SampleBuffers()
    open_samples, aborted = settings.n, False
    with closing(engine.stream(prompt_ids, _params_for(params, settings), controllers=controllers)) as events:
        for event in events:
            buffers.push(event)
            if not event.finished:
                continue
            open_samples -= 1
            if event.finish_reason in ("abort", "error"):  # no answer to count
                continue
            text, mean_logprob, tokens = buffers.finished(event.sample_index)
            tally.add(event.sample_index, text, mean_logprob, event.finish_reason, tokens)
            if open_samples and tally.decided(open_samples):
                aborted = True
                break
    return _result(tally, buffers, settings, aborted)


async def self_consistency_async(aengine: Any, prompt_ids: Sequence[int], params: Any,
                                 settings: SelfConsistencySettings, request_id: str | None = None,
                                 controllers: Sequence[Any] = (), math_pool: Any = None) -> SelfConsistencyResult:
    """The same over an AsyncEngine (leaving its event stream early aborts the request's remaining samples)."""
    settings = _resolved(settings, aengine.engine, prompt_ids)
    tally, buffers = VoteTally(settings, math_pool), _SampleBuffers()
    open_samples, aborted = settings.n, False
    stream = aengine.generate(prompt_ids, _params_for(params, settings), request_id, controllers)
    try:
        async for event in stream:
            buffers.push(event)
            if not event.finished:
                continue
            open_samples -= 1
            if event.finish_reason in ("abort", "error"):  # no answer to count
                continue
            text, mean_logprob, tokens = buffers.finished(event.sample_index)
            tally.add(event.sample_index, text, mean_logprob, event.finish_reason, tokens)
            if open_samples and tally.decided(open_samples):
                aborted = True
                break
    finally:
        await stream.aclose()
    return _result(tally, buffers, settings, aborted)

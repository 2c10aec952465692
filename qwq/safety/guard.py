"""Guards: one interface for the rule layer, a model-based classifier and any dedicated guard model.

A guard answers two questions. `check_input(messages)`: may the model be asked this (the last user turn, read with
the turns before it)? `check_output(text, reasoning=...)`: may this response be shown? The reasoning is checked on
its own: harmful content that only appears in the thinking is withheld (redact) while a safe answer still goes out;
harmful content in the answer refuses the whole response. Personal data in an answer is masked (redact).

Hooks: the engine's per-request controller feeds generated text to `OutputStream` (which can stop generation
early), the server and the agent call `check_input` before generating and `check_output` after.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from qwq.safety import rules
from qwq.safety.pii import redact_pii
from qwq.safety.verdict import ALLOW, CATEGORIES, PII, Verdict, most_severe

Messages = Sequence[Mapping]
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@runtime_checkable
class Guard(Protocol):
    name: str

    def check_input(self, messages: Messages | str) -> Verdict: ...

    def check_output(self, text: str, *, reasoning: str | None = None, messages: Messages | None = None) -> Verdict: ...


def as_messages(messages: Messages | str) -> list[dict]:
    """A bare string is one user turn."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


def split_thinking(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a raw QwQ completion. Without `</think>` a completion that opened with `<think>` is all
    (unfinished) reasoning; any other text is taken as the answer, the stricter reading."""
    if THINK_CLOSE in text:
        head, _, tail = text.partition(THINK_CLOSE)
        head = head.split(THINK_OPEN, 1)[-1]
        return head.strip("\n"), tail.lstrip("\n")
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        return stripped[len(THINK_OPEN):].lstrip("\n"), ""
    return None, text


def withheld_reasoning(category: str | None) -> str:
    return f"[reasoning withheld by the safety guard: {category or 'unsafe'}]"


class NullGuard:
    """Allows everything (the guard-off arm of the red-team measurement)."""

    name = "none"

    def check_input(self, messages: Messages | str) -> Verdict:
        return ALLOW

    def check_output(self, text: str, *, reasoning: str | None = None, messages: Messages | None = None) -> Verdict:
        return ALLOW


class RuleGuard:
    """The rule layer: windowed category scoring (see qwq.safety.rules) plus personal-data masking."""

    name = "rules"

    def __init__(self, *, threshold_shift: float = 0.0, redact_personal_data: bool = True):
        self.threshold_shift = threshold_shift
        self.redact_personal_data = redact_personal_data

    def _flagged(self, scores: dict[str, rules.CategoryScore]) -> rules.CategoryScore | None:
        hits = [s for s in scores.values() if s.score >= rules.threshold(s.category) + self.threshold_shift]
        return max(hits, key=lambda s: s.score - rules.threshold(s.category)) if hits else None

    def check_input(self, messages: Messages | str) -> Verdict:
        hit = self._flagged(rules.score_conversation(as_messages(messages)))
        if hit is None:
            return ALLOW
        return Verdict("refuse", hit.category, f"request matches {hit.category}", hit.score, self.name,
                       details={"evidence": hit.evidence})

    def check_output(self, text: str, *, reasoning: str | None = None, messages: Messages | None = None) -> Verdict:
        if reasoning is None:
            reasoning, answer = split_thinking(text)
        else:
            answer = text
        hit = self._flagged(rules.score_output(answer))
        if hit is not None:
            return Verdict("refuse", hit.category, f"response contains {hit.category} content", hit.score,
                           self.name, details={"evidence": hit.evidence, "part": "answer"})
        parts, category, score, evidence = [], None, 0.0, []
        shown_reasoning = reasoning
        if reasoning:
            rhit = self._flagged(rules.score_output(reasoning))
            if rhit is not None:
                shown_reasoning = withheld_reasoning(rhit.category)
                parts.append("reasoning")
                category, score, evidence = rhit.category, rhit.score, rhit.evidence
        shown_answer = answer
        if self.redact_personal_data:
            shown_answer, kinds = redact_pii(answer)
            if kinds:
                parts.append("answer")
                category = category or PII
                evidence = evidence + [f"pii:{k}" for k in kinds]
        if not parts:
            return ALLOW
        redacted = shown_answer if shown_reasoning is None else f"{THINK_OPEN}\n{shown_reasoning}\n{THINK_CLOSE}\n\n{shown_answer}"
        return Verdict("redact", category, f"withheld: {', '.join(parts)}", score, self.name, redacted=redacted,
                       details={"evidence": evidence, "parts": parts, "reasoning": shown_reasoning,
                                "answer": shown_answer})


class CompositeGuard:
    """Several guards behind the one interface; the strictest verdict wins. Guards run in order and a refusal stops
    the chain, so put the cheap rule layer first and a model classifier after it."""

    def __init__(self, guards: Iterable[Guard]):
        self.guards = list(guards)
        self.name = "+".join(g.name for g in self.guards) or "none"

    def check_input(self, messages: Messages | str) -> Verdict:
        verdicts = []
        for g in self.guards:
            v = g.check_input(messages)
            verdicts.append(v)
            if v.refused:
                break
        return most_severe(verdicts)

    def check_output(self, text: str, *, reasoning: str | None = None, messages: Messages | None = None) -> Verdict:
        verdicts = []
        for g in self.guards:
            v = g.check_output(text, reasoning=reasoning, messages=messages)
            verdicts.append(v)
            if v.refused:
                break
        return most_severe(verdicts)


class OutputStream:
    """Incremental output check for a generating request: feed text deltas, get a refusal as soon as the rule layer
    sees one (the engine then stops generating), and the final verdict (with redaction) at the end.

    Harmful thinking also stops the stream (`stop_on_reasoning`), since thinking already shown cannot be withheld;
    a whole-text check (`check_output`) redacts it instead. Only the tail of the text (`window` characters) is rescored each `check_every` characters, so cost per token
    stays flat however long the completion grows.
    """

    def __init__(self, guard: Guard, *, check_every: int = 256, window: int = 3000, in_thinking: bool = True,
                 stop_on_reasoning: bool = True):
        self.guard = guard
        self.stop_on_reasoning = stop_on_reasoning
        self.check_every = check_every
        self.window = window
        self.text = THINK_OPEN + "\n" if in_thinking else ""
        self._start = len(self.text)
        self._since = 0
        self.verdict: Verdict | None = None

    def feed(self, delta: str) -> Verdict | None:
        """A refusal verdict when the text so far must not continue, else None."""
        if self.verdict is not None and self.verdict.refused:
            return self.verdict
        self.text += delta
        self._since += len(delta)
        if self._since < self.check_every:
            return None
        self._since = 0
        reasoning, answer = split_thinking(self.text)
        v = self.guard.check_output(answer[-self.window:], reasoning=(reasoning or "")[-self.window:])
        if not v.refused and self.stop_on_reasoning and "reasoning" in v.details.get("parts", ()):
            # streamed thinking cannot be withdrawn once sent: harmful thinking ends the generation too
            v = Verdict("refuse", v.category, "thinking contains harmful content", v.score, v.source,
                        details={**v.details, "part": "reasoning"})
        if v.refused:
            self.verdict = v
            return v
        return None

    def finish(self) -> Verdict:
        if self.verdict is not None and self.verdict.refused:
            return self.verdict
        self.verdict = self.guard.check_output(self.text)
        return self.verdict

    @property
    def completion(self) -> str:
        """The generated text fed so far (without the implicit opening `<think>`)."""
        return self.text[self._start:]


def refusal_message(verdict: Verdict) -> str:
    """What the user sees instead of a refused response."""
    if verdict.category == "self_harm":
        return ("I can't help with that, but I'm concerned about how you're feeling. You don't have to go through this "
                "alone: please reach out to someone you trust or a local crisis line (in the US, call or text 988; "
                "elsewhere, findahelpline.com lists free services).")
    what = CATEGORIES.get(verdict.category or "", "content that could cause serious harm")
    return f"I can't help with that request. It falls under a safety policy ({verdict.category}: {what})."


DEFAULT_GUARD = "rules+learned"


def build_guard(spec: str = DEFAULT_GUARD, *, classifier_complete: Callable[[str], str] | None = None) -> Guard:
    """`none`, or parts joined by `+`: `rules` (the rule layer), `learned` (the shipped linear classifier, see
    qwq.safety.learned), `model` (a guard prompt on a generative model; needs `classifier_complete`: prompt -> text).
    Parts run in the order given; the strictest verdict wins."""
    from qwq.safety.model_guard import ModelClassifier
    from qwq.utils.errors import UsageError

    parts = [p for p in spec.split("+") if p]
    if not parts or parts == ["none"]:
        return NullGuard()
    guards: list[Guard] = []
    for p in parts:
        if p == "rules":
            guards.append(RuleGuard())
        elif p == "learned":
            from qwq.safety.learned import LearnedGuard

            guards.append(LearnedGuard())
        elif p == "model":
            if classifier_complete is None:
                raise UsageError("guard 'model' needs a model to classify with (-m/--model or an endpoint)")
            guards.append(ModelClassifier(classifier_complete))
        else:
            raise UsageError(f"unknown guard {p!r}: expected none or parts rules, learned, model joined by '+'")
    return guards[0] if len(guards) == 1 else CompositeGuard(guards)

"""Settings of the reasoning controls: what a request may say, validated into frozen dataclasses.

Every control accepts a short form (a number, a mode string, `true`) and a full object; a bad value is a
UsageError naming the field (the CLI turns it into exit 2, the server into a 400).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from qwq.utils.errors import UsageError

# The sentence a thinking budget injects before closing the thinking. It tells the model (and a reader) why the
# thinking stops mid-way, so that the answer is written from what is already there rather than continued.
DEFAULT_WRAP_UP = "\n\nI have used up my thinking budget, so I will stop here and answer from what I have so far."
# What the loop breaker injects before `</think>`: a loop is not a budget problem, and saying so helps the model
# not to resume the loop in its answer.
DEFAULT_LOOP_EXIT = "\n\nI am going around in circles, so I will stop thinking here and give my best answer."
DEFAULT_WAIT = "\nWait"


def _fail(control: str, field: str, expected: str, value: Any) -> UsageError:
    return UsageError(f"control {control!r}: field {field!r} must be {expected}, got {value!r}")


def _int(control: str, field: str, value: Any, lo: int, hi: int = 1 << 24, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(control, field, f"an integer in {lo}..{hi}", value)
    return value


def _float(control: str, field: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise _fail(control, field, f"a number in {lo}..{hi}", value)
    return float(value)


def _choice(control: str, field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(control, field, "one of " + ", ".join(choices), value)
    return value


def _text(control: str, field: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty) or len(value) > 1000:
        raise _fail(control, field, "a non-empty string of at most 1000 characters", value)
    return value


def _object(control: str, value: Any, cls: type) -> dict:
    """The setting as a dict of known fields (unknown fields are an error: a typo must not be ignored)."""
    if not isinstance(value, dict):
        raise UsageError(f"control {control!r} must be a number, a mode or an object, got {value!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise UsageError(f"control {control!r}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return value


def _thinking_start(control: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _fail(control, "starts_in_thinking", "true, false or null", value)
    return value


@dataclass(frozen=True)
class ThinkingBudgetSettings:
    """Hard cap: after `max_thinking_tokens` thinking tokens, inject `wrap_up` + `</think>`; then allow at most
    `answer_tokens` answer tokens (None: up to max_new_tokens)."""

    max_thinking_tokens: int
    answer_tokens: int | None = None
    wrap_up: str = DEFAULT_WRAP_UP

    @classmethod
    def parse(cls, value: Any) -> "ThinkingBudgetSettings":
        name = "thinking_budget"
        if not isinstance(value, dict):
            value = {"max_thinking_tokens": value}
        value = _object(name, value, cls)
        return cls(max_thinking_tokens=_int(name, "max_thinking_tokens", value.get("max_thinking_tokens"), 0),
                   answer_tokens=_int(name, "answer_tokens", value.get("answer_tokens"), 1, optional=True),
                   wrap_up=_text(name, "wrap_up", value.get("wrap_up", DEFAULT_WRAP_UP), allow_empty=True))


@dataclass(frozen=True)
class BudgetForcingSettings:
    """Minimum thinking (s1): while fewer than `min_tokens` thinking tokens were spent, an attempt to close the
    thinking (`</think>`, or an end-of-sequence token inside the thinking) is replaced by `wait`, at most
    `max_extensions` times."""

    min_tokens: int
    max_extensions: int = 8
    wait: str = DEFAULT_WAIT

    @classmethod
    def parse(cls, value: Any) -> "BudgetForcingSettings":
        name = "min_thinking_tokens"
        if not isinstance(value, dict):
            value = {"min_tokens": value}
        value = _object(name, value, cls)
        return cls(min_tokens=_int(name, "min_tokens", value.get("min_tokens"), 1),
                   max_extensions=_int(name, "max_extensions", value.get("max_extensions", 8), 1, 1024),
                   wait=_text(name, "wait", value.get("wait", DEFAULT_WAIT)))


LOOP_ACTIONS = ("answer", "stop")


@dataclass(frozen=True)
class LoopBreakerSettings:
    """Detect cycles in the generated tokens. Two detectors (either fires):

    - periodicity: the last `min_repeats` periods of some period p <= `max_period` agree token for token with the
      period before them, up to a `tolerance` fraction of mismatches (near-exact cycles, e.g. a changing counter),
      and the repeated span is at least `min_span` tokens;
    - repeated n-gram: one `ngram`-token sequence has occurred `ngram_repeats` times (loops whose period drifts).

    On a loop inside the thinking, `action` "answer" injects `exit_text` + `</think>` and lets the model answer (at
    most `answer_tokens` tokens); "stop" ends the sample. A loop in the answer always stops the sample."""

    action: str = "answer"
    max_period: int = 256
    min_repeats: int = 3
    min_span: int = 48
    tolerance: float = 0.1
    ngram: int = 24
    ngram_repeats: int = 5
    answer_tokens: int | None = 1024
    exit_text: str = DEFAULT_LOOP_EXIT

    @classmethod
    def parse(cls, value: Any) -> "LoopBreakerSettings":
        name = "loop_breaker"
        if value is True:
            value = {}
        elif isinstance(value, str):
            value = {"action": value}
        value = _object(name, value, cls)
        d = cls()
        return cls(action=_choice(name, "action", value.get("action", d.action), LOOP_ACTIONS),
                   max_period=_int(name, "max_period", value.get("max_period", d.max_period), 1, 4096),
                   min_repeats=_int(name, "min_repeats", value.get("min_repeats", d.min_repeats), 2, 1000),
                   min_span=_int(name, "min_span", value.get("min_span", d.min_span), 2, 1 << 16),
                   tolerance=_float(name, "tolerance", value.get("tolerance", d.tolerance), 0.0, 0.5),
                   ngram=_int(name, "ngram", value.get("ngram", d.ngram), 4, 4096),
                   ngram_repeats=_int(name, "ngram_repeats", value.get("ngram_repeats", d.ngram_repeats), 2, 1000),
                   answer_tokens=_int(name, "answer_tokens", value.get("answer_tokens", d.answer_tokens), 1,
                                      optional=True),
                   exit_text=_text(name, "exit_text", value.get("exit_text", d.exit_text), allow_empty=True))


LANGUAGE_MODES = ("report", "penalize", "mask")


@dataclass(frozen=True)
class LanguageGuardSettings:
    """Keep the thinking in the user's script. `language`: an ISO 639-1 code, a script name, or "auto" (the script
    of the prompt's last user turn). `mode`: "report" (metric only), "penalize" (subtract `penalty` from the logits
    of other-script tokens while thinking) or "mask" (forbid them while thinking). `min_run`: how many consecutive
    other-script words (CJK: characters) make a switch."""

    mode: str = "report"
    language: str = "auto"
    penalty: float = 5.0
    min_run: int = 4

    @classmethod
    def parse(cls, value: Any) -> "LanguageGuardSettings":
        name = "language_guard"
        if value is True:
            value = {}
        elif isinstance(value, str):
            value = {"mode": value}
        value = _object(name, value, cls)
        d = cls()
        language = value.get("language", d.language)
        if language != "auto":
            from qwq.verify.rules import script_for_language

            try:
                script_for_language(language if isinstance(language, str) else "")
            except ValueError:
                raise _fail(name, "language", "'auto', an ISO 639-1 code or a script name", language) from None
        return cls(mode=_choice(name, "mode", value.get("mode", d.mode), LANGUAGE_MODES), language=language,
                   penalty=_float(name, "penalty", value.get("penalty", d.penalty), 0.0, 100.0),
                   min_run=_int(name, "min_run", value.get("min_run", d.min_run), 1, 1000))


@dataclass(frozen=True)
class EarlyExitSettings:
    """Answer-stabilisation early exit: every `every` thinking tokens (after `min_tokens`), probe the current best
    answer; once `patience` probes in a row give the same answer, inject `exit_text` + `</think>`.
    `probe` "text" reads the latest answer stated in the thinking (free); a Python caller may pass a callable
    `probe(prompt_ids, generated_ids) -> str | None` instead (e.g. `model_probe(engine)`)."""

    every: int = 64
    patience: int = 3
    min_tokens: int = 64
    probe: Any = "text"
    exit_text: str = "\n\nMy answer has stayed the same for a while, so I will stop here."

    @classmethod
    def parse(cls, value: Any) -> "EarlyExitSettings":
        name = "early_exit"
        if value is True:
            value = {}
        value = _object(name, value, cls)
        d = cls()
        probe = value.get("probe", d.probe)
        if not callable(probe) and probe != "text":
            raise _fail(name, "probe", "'text' or a callable", probe)
        return cls(every=_int(name, "every", value.get("every", d.every), 1),
                   patience=_int(name, "patience", value.get("patience", d.patience), 1, 1000),
                   min_tokens=_int(name, "min_tokens", value.get("min_tokens", d.min_tokens), 0),
                   probe=probe, exit_text=_text(name, "exit_text", value.get("exit_text", d.exit_text),
                                                allow_empty=True))


@dataclass(frozen=True)
class AccountingSettings:
    """Per-sample token accounting (added with any other control by `controls_from_request`).
    `starts_in_thinking` says whether the output starts inside the thinking, for every control of the request
    (None: read from the prompt, whose last `<think>` is open with QwQ's generation prompt)."""

    starts_in_thinking: bool | None = None

    @classmethod
    def parse(cls, value: Any) -> "AccountingSettings":
        if value is True:
            value = {}
        value = _object("accounting", value, cls)
        return cls(starts_in_thinking=_thinking_start("accounting", value.get("starts_in_thinking")))

"""Reasoning controls: per-request guards against a reasoning model's failure modes, run through the engine's
per-sample controller hook (qwq.engine.hooks). All are off unless a request asks for them.

Request fields (the server's names; the same keys go in `SamplingParams.controls`, see `controls_from_request`):

    thinking_budget      int N | {"max_thinking_tokens": N, "answer_tokens": A, "wrap_up": str}
                         after N thinking tokens inject a wrap-up sentence + `</think>`; the answer then gets at
                         most A tokens (stop reason "answer_budget").
    min_thinking_tokens  int M | {"min_tokens": M, "max_extensions": K, "wait": str}
                         budget forcing: a `</think>` (or EOS) before M thinking tokens becomes "Wait", <= K times.
    loop_breaker         true | "answer" | "stop" | {"action", "max_period", "min_repeats", "min_span",
                         "tolerance", "ngram", "ngram_repeats", "answer_tokens", "exit_text"}
                         cycle detection; "answer" closes the thinking so the model answers, "stop" ends the sample
                         (stop reason "loop").
    language_guard       "report" | "penalize" | "mask" | {"mode", "language": "auto" | ISO 639-1 | script,
                         "penalty", "min_run"}: script switches in the thinking; metric target_share.
    early_exit           true | {"every", "patience", "min_tokens"}: answer-stabilisation early exit.
    self_consistency     int n | {"n", "consensus", "extract": "math" | "choice", "letters", "equivalence"}:
                         n samples, majority vote (not a per-sample control: see qwq.engine.self_consistency).
    starts_in_thinking   true | false | null: override whether the output starts inside the thinking (null: read
                         from the prompt; QwQ's generation prompt ends inside `<think>`).

Each control reports in `Sample.controls[name]`; an `accounting` entry (reasoning / answer tokens, time to the
first answer text) comes with any of them. Controls that insert text (`</think>`, "Wait") encode it with the
engine's tokenizer: with QwQ's vocabulary `</think>` is one token, with others it is spelled out as text.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from qwq.engine.controls.settings import (AccountingSettings, BudgetForcingSettings, EarlyExitSettings,
                                          LanguageGuardSettings, LoopBreakerSettings, ThinkingBudgetSettings)
from qwq.engine.hooks import SampleState, register_controller
from qwq.utils.errors import UsageError

# Request field -> (settings parser, controller class path). Order = the order controllers run in: accounting
# first, then the ones that replace or force tokens, the logit bias last.
CONTROL_FIELDS = ("min_thinking_tokens", "loop_breaker", "early_exit", "thinking_budget", "language_guard")
REQUEST_FIELDS = CONTROL_FIELDS + ("self_consistency", "starts_in_thinking")


def _accounting(setting: Any, state: SampleState):
    from qwq.engine.controls.tracking import Accounting

    AccountingSettings.parse(setting)  # validated here; the shared tracker reads starts_in_thinking itself
    return Accounting(state)


def _factory(parse: Callable[[Any], Any], module: str, cls: str):
    def build(setting: Any, state: SampleState):
        import importlib

        return getattr(importlib.import_module(module), cls)(parse(setting), state)

    return build


_FACTORIES = {
    "accounting": _accounting,
    "min_thinking_tokens": _factory(BudgetForcingSettings.parse, "qwq.engine.controls.budget", "BudgetForcing"),
    "loop_breaker": _factory(LoopBreakerSettings.parse, "qwq.engine.controls.loops", "LoopBreaker"),
    "early_exit": _factory(EarlyExitSettings.parse, "qwq.engine.controls.early_exit", "AnswerStabilisation"),
    "thinking_budget": _factory(ThinkingBudgetSettings.parse, "qwq.engine.controls.budget", "ThinkingBudget"),
    "language_guard": _factory(LanguageGuardSettings.parse, "qwq.engine.controls.language", "LanguageGuard"),
}
for _name, _build in _FACTORIES.items():
    register_controller(_name, _build)

_PARSERS = {"min_thinking_tokens": BudgetForcingSettings.parse, "loop_breaker": LoopBreakerSettings.parse,
            "early_exit": EarlyExitSettings.parse, "thinking_budget": ThinkingBudgetSettings.parse,
            "language_guard": LanguageGuardSettings.parse}


def controls_from_request(fields: Mapping[str, Any]) -> dict:
    """`SamplingParams.controls` for a request's fields (the names above; other keys are ignored). Settings are
    validated now, so a bad one is a UsageError before anything is queued. `self_consistency` is not a per-sample
    control: read it with `self_consistency_from_request`."""
    if not isinstance(fields, Mapping):
        raise UsageError(f"reasoning controls must be an object, got {type(fields).__name__}")
    controls: dict[str, Any] = {}
    for name in CONTROL_FIELDS:
        value = fields.get(name)
        if value is None or value is False:
            continue
        _PARSERS[name](value)
        controls[name] = value
    start = fields.get("starts_in_thinking")
    if start is not None and not isinstance(start, bool):
        raise UsageError(f"field 'starts_in_thinking' must be true, false or null, got {start!r}")
    if controls or start is not None:
        controls = {"accounting": {"starts_in_thinking": start}, **controls}
    self_consistency_from_request(fields)  # validated with the rest
    return controls


def self_consistency_from_request(fields: Mapping[str, Any]):
    """The request's self-consistency settings (None when it asks for none)."""
    from qwq.engine.self_consistency import SelfConsistencySettings

    value = fields.get("self_consistency")
    if value is None or value is False:
        return None
    settings = SelfConsistencySettings.parse(value)
    start = fields.get("starts_in_thinking")
    if settings.starts_in_thinking is None and isinstance(start, bool):  # the request-wide setting applies
        import dataclasses

        settings = dataclasses.replace(settings, starts_in_thinking=start)
    return settings


__all__ = ["CONTROL_FIELDS", "REQUEST_FIELDS", "controls_from_request", "self_consistency_from_request"]

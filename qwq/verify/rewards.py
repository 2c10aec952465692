"""The built-in rewards (registered by name; see registry.py for the calling convention).

| name                 | example fields used                          | value                                      |
|----------------------|----------------------------------------------|--------------------------------------------|
| math_accuracy        | answer (or `gold_field`)                      | 1 / 0 / None (cannot judge)                |
| choice_accuracy      | answer (the letter)                           | 1 / 0 / None (gold is not a letter)        |
| format               | -                                             | 1 / 0                                      |
| language_consistency | language, else the prompt's script, else en   | share of target-script letters, 0..1       |
| overlong             | completion_ids (token lengths) unless chars   | 0 .. -1 (DAPO soft overlong punishment)    |
| repetition           | -                                             | -(share of repeated n-grams), 0 .. -1      |
| ifeval               | instruction_id_list, kwargs, prompt           | 1 / 0 (all followed) or followed fraction  |
| code_tests           | tests (see code.py)                           | 1 / 0, or pass fraction; None on sandbox error |

Answers are read after `</think>`; with `starts_in_reasoning=True` (QwQ's template, the default) a completion
that never closes its thinking has no answer and scores 0 on the answer-based rewards.
"""

from __future__ import annotations

from typing import Any, Sequence

from qwq.verify.choice import verify_choice_batch
from qwq.verify.extract import answer_region
from qwq.verify.ifeval import evaluate_ifeval
from qwq.verify.math import DEFAULT_TIMEOUT_S, verify_math_batch
from qwq.verify.registry import RewardError, completion_texts, field_values, register_reward
from qwq.verify.rules import (check_format, dominant_script, language_consistency, ngram_repetition,
                              overlong_penalty)


@register_reward("math_accuracy")
def math_accuracy(completions: Sequence[Any], *, gold_field: str = "answer", starts_in_reasoning: bool = True,
                  timeout: float = DEFAULT_TIMEOUT_S, **fields) -> list[float | None]:
    texts = completion_texts(completions)
    golds = field_values(fields, gold_field, len(texts))
    results = verify_math_batch(texts, [str(g) if g is not None else "" for g in golds],
                                starts_in_reasoning=starts_in_reasoning, timeout=timeout)
    return [r.score for r in results]


@register_reward("choice_accuracy")
def choice_accuracy(completions: Sequence[Any], *, gold_field: str = "answer", letters: str = "ABCD",
                    starts_in_reasoning: bool = True, **fields) -> list[float | None]:
    texts = completion_texts(completions)
    golds = field_values(fields, gold_field, len(texts))
    return [r.score for r in verify_choice_batch(texts, [str(g) for g in golds], letters=letters,
                                                 starts_in_reasoning=starts_in_reasoning)]


@register_reward("format")
def format_reward(completions: Sequence[Any], *, require_boxed: bool = False, starts_in_reasoning: bool = True,
                  **_fields) -> list[float]:
    return [check_format(t, starts_in_reasoning=starts_in_reasoning, require_boxed=require_boxed).score
            for t in completion_texts(completions)]


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):  # chat messages: the user turns carry the language
        return "\n".join(str(m.get("content") or "") for m in prompt if isinstance(m, dict) and
                         m.get("role", "user") == "user")
    return ""


@register_reward("language_consistency")
def language_consistency_reward(completions: Sequence[Any], *, target_language: str | None = None,
                                starts_in_reasoning: bool = True, **fields) -> list[float]:
    """Target: the `target_language` param, else the `language` field, else the prompt's main script, else
    English (ISO 639-1 codes or script names).
    A completion without letters (pure math) has nothing to mix and scores 1."""
    texts = completion_texts(completions)
    n = len(texts)
    languages = field_values(fields, "language", n, required=False)
    prompts = fields.get("prompts", fields.get("prompt"))
    prompts = field_values({"prompt": prompts}, "prompt", n, required=False)
    scores = []
    for text, lang, prompt in zip(texts, languages, prompts):
        target = target_language or lang or dominant_script(_prompt_text(prompt)) or "en"
        share = language_consistency(text, target, starts_in_reasoning=starts_in_reasoning)
        scores.append(1.0 if share is None else share)
    return scores


@register_reward("overlong")
def overlong_reward(completions: Sequence[Any], *, max_length: int, buffer: int, length_unit: str = "tokens",
                    **fields) -> list[float]:
    texts = completion_texts(completions)
    if length_unit == "tokens":
        if fields.get("completion_ids") is None:
            raise RewardError("overlong with length_unit='tokens' needs the completion_ids field "
                              "(token ids per completion), or set length_unit='chars'")
        lengths = [len(ids) for ids in field_values(fields, "completion_ids", len(texts))]
    elif length_unit == "chars":
        lengths = [len(t) for t in texts]
    else:
        raise RewardError(f"overlong: length_unit must be 'tokens' or 'chars', got {length_unit!r}")
    return [overlong_penalty(n, int(max_length), int(buffer)) for n in lengths]


@register_reward("repetition")
def repetition_reward(completions: Sequence[Any], *, n: int = 4, **_fields) -> list[float]:
    texts = [t.replace("<think>", " ").replace("</think>", " ") for t in completion_texts(completions)]
    return [-ngram_repetition(t, n=int(n)) for t in texts]


@register_reward("ifeval")
def ifeval_reward(completions: Sequence[Any], *, mode: str = "strict", aggregate: str = "all",
                  starts_in_reasoning: bool = True, **fields) -> list[float]:
    if mode not in ("strict", "loose") or aggregate not in ("all", "fraction"):
        raise RewardError(f"ifeval: mode must be strict|loose and aggregate all|fraction, got {mode!r}, {aggregate!r}")
    texts = completion_texts(completions)
    n = len(texts)
    ids = field_values(fields, "instruction_id_list", n)
    kwargs = field_values(fields, "kwargs", n, required=False)
    prompts = fields.get("prompt", fields.get("prompts"))
    prompts = [_prompt_text(p) for p in field_values({"p": prompts}, "p", n, required=False, default="")]
    scores = []
    for text, id_list, kw, prompt in zip(texts, ids, kwargs, prompts):
        region = answer_region(text, starts_in_reasoning=starts_in_reasoning)
        if not region.finished:
            scores.append(0.0)
            continue
        result = evaluate_ifeval(region.text, id_list, kw, prompt=prompt)
        followed = result.strict if mode == "strict" else result.loose
        scores.append(float(all(followed)) if aggregate == "all" else sum(followed) / max(1, len(followed)))
    return scores

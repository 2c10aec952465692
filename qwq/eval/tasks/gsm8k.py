"""GSM8K test (1,319 grade-school word problems): the question plus the model-card math instruction; the gold is
the number after `####` in the reference solution."""

from __future__ import annotations

from qwq.eval.tasks.base import MATH_INSTRUCTION, EvalItem, TaskError, data_file, read_jsonl, user_turn
from qwq.eval.tasks.math_common import MathTask


class GSM8KTask(MathTask):
    name = "gsm8k"
    default_n = 1
    description = "GSM8K test (1,319 grade-school word problems)"
    required_files = ("gsm8k/test.jsonl",)

    def load_items(self) -> list[EvalItem]:
        from qwq.verify.extract import gsm8k_answer

        path = data_file(self.data_root, self.required_files[0], self.name)
        items = []
        for index, row in enumerate(read_jsonl(path, ("question", "answer"), self.name)):
            gold = gsm8k_answer(str(row["answer"]))
            if gold is None:
                raise TaskError(f"task {self.name}: {path}:{index + 1}: the solution has no '#### answer' line")
            items.append(EvalItem(str(index), user_turn(f"{row['question']}\n{MATH_INSTRUCTION}"), {"answer": gold}))
        return items

"""MATH-500 (the PRM800K split of MATH): the question plus the model-card math instruction; the gold is the last
`\\boxed{}` of the reference solution."""

from __future__ import annotations

from qwq.eval.tasks.base import MATH_INSTRUCTION, EvalItem, TaskError, data_file, read_jsonl, user_turn
from qwq.eval.tasks.math_common import MathTask


class Math500Task(MathTask):
    name = "math500"
    default_n = 4
    description = "MATH-500 (500 competition problems, free-form answers)"
    required_files = ("math500/test.jsonl",)

    def load_items(self) -> list[EvalItem]:
        from qwq.verify.extract import find_boxed

        path = data_file(self.data_root, self.required_files[0], self.name)
        items = []
        for index, row in enumerate(read_jsonl(path, ("question", "answer"), self.name)):
            boxed = find_boxed(str(row["answer"]))
            if not boxed or not boxed[-1]:
                raise TaskError(f"task {self.name}: {path}:{index + 1}: the solution has no \\boxed{{}} answer")
            items.append(EvalItem(str(index), user_turn(f"{row['question']}\n{MATH_INSTRUCTION}"),
                                  {"answer": boxed[-1]}))
        return items

